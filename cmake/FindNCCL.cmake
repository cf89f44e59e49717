# FindNCCL: NVIDIA NCCL (here it ships with the CUDA toolkit; Debian: libnccl-dev)
include(${CMAKE_CURRENT_LIST_DIR}/GaleFindLibrary.cmake)
gale_find_library(NAME NCCL HEADER nccl.h LIBRARY nccl PKGCONFIG nccl HINTS ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_INCLUDE_DIRS}/.. /usr/local/cuda)
