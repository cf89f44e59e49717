# FindMicroHTTPD: libmicrohttpd (Debian: libmicrohttpd-dev)
include(${CMAKE_CURRENT_LIST_DIR}/GaleFindLibrary.cmake)
gale_find_library(NAME MicroHTTPD HEADER microhttpd.h LIBRARY microhttpd PKGCONFIG libmicrohttpd)
