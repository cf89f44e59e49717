# FindCJSON: the cJSON parser (Debian: libcjson-dev)
include(${CMAKE_CURRENT_LIST_DIR}/GaleFindLibrary.cmake)
gale_find_library(NAME CJSON HEADER cjson/cJSON.h LIBRARY cjson PKGCONFIG libcjson)
