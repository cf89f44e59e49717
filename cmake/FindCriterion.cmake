# FindCriterion: the Criterion test framework (Debian: libcriterion-dev)
include(${CMAKE_CURRENT_LIST_DIR}/GaleFindLibrary.cmake)
gale_find_library(NAME Criterion HEADER criterion/criterion.h LIBRARY criterion PKGCONFIG criterion)
