# Warnings for gale's own C code. CI builds with GALE_WERROR=ON (the default).
function(gale_set_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wshadow -Wstrict-prototypes -Wvla>
    $<$<AND:$<COMPILE_LANGUAGE:C>,$<BOOL:${GALE_WERROR}>>:-Werror>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
    $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${GALE_WERROR}>>:-Werror=all-warnings>)
endfunction()
