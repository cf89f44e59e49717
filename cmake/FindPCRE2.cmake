# FindPCRE2: PCRE2 with 8-bit code units (Debian: libpcre2-dev)
include(${CMAKE_CURRENT_LIST_DIR}/GaleFindLibrary.cmake)
gale_find_library(NAME PCRE2 HEADER pcre2.h LIBRARY pcre2-8 PKGCONFIG libpcre2-8)
