# gale_find_library(NAME <Pkg> HEADER <h> LIBRARY <lib> PKGCONFIG <module> [HINTS <dirs>])
# The body shared by gale's Find modules: pkg-config gives a hint, then header and library
# are looked up directly (so a prefix unpacked from .deb files, whose .pc files may name
# absent dependencies, still works). Sets <Pkg>_FOUND and the imported target <Pkg>::<Pkg>.
include(FindPackageHandleStandardArgs)
find_package(PkgConfig QUIET)

macro(gale_find_library)
  cmake_parse_arguments(GFL "" "NAME;HEADER;LIBRARY;PKGCONFIG" "HINTS" ${ARGN})
  if(PkgConfig_FOUND)
    pkg_check_modules(PC_${GFL_NAME} QUIET ${GFL_PKGCONFIG})
  endif()
  find_path(${GFL_NAME}_INCLUDE_DIR NAMES ${GFL_HEADER}
            HINTS ${PC_${GFL_NAME}_INCLUDE_DIRS} ${GFL_HINTS} PATH_SUFFIXES include)
  find_library(${GFL_NAME}_LIBRARY NAMES ${GFL_LIBRARY}
               HINTS ${PC_${GFL_NAME}_LIBRARY_DIRS} ${GFL_HINTS} PATH_SUFFIXES lib lib64)
  find_package_handle_standard_args(${GFL_NAME}
    REQUIRED_VARS ${GFL_NAME}_LIBRARY ${GFL_NAME}_INCLUDE_DIR)
  if(${GFL_NAME}_FOUND AND NOT TARGET ${GFL_NAME}::${GFL_NAME})
    add_library(${GFL_NAME}::${GFL_NAME} UNKNOWN IMPORTED)
    set_target_properties(${GFL_NAME}::${GFL_NAME} PROPERTIES
      IMPORTED_LOCATION "${${GFL_NAME}_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${${GFL_NAME}_INCLUDE_DIR}")
  endif()
  mark_as_advanced(${GFL_NAME}_INCLUDE_DIR ${GFL_NAME}_LIBRARY)
endmacro()
