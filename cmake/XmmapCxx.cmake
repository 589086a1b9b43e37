# The optional C++ parts of the build: the C++ consumer test (tests/cxx) and the bench's C++ rows
# (tools/bench_cxx.cpp). They need a C++ compiler for the same target as the C compiler, so only
# its sibling is taken: g++ beside gcc, clang++ beside clang, <triple>-g++ beside <triple>-gcc, c++
# beside cc (a bare `c++` could be the host's compiler in a cross build). -DCMAKE_CXX_COMPILER=...
# or a toolchain file's choice is taken as it is, if it has a C++17 standard library.
# Sets XMMAP_CXX (ON when C++ is enabled and has its standard library) and XMMAP_CXX_20 (the
# compiler knows C++20).
include_guard(GLOBAL)

set(XMMAP_CXX OFF)
set(XMMAP_CXX_20 OFF)
if(NOT CMAKE_CXX_COMPILER)
  get_filename_component(_xm_c_dir "${CMAKE_C_COMPILER}" DIRECTORY)
  get_filename_component(_xm_c_name "${CMAKE_C_COMPILER}" NAME)
  set(_xm_cxx_name "")
  if(_xm_c_name MATCHES "^(.*)gcc(-[0-9.]+)?(-posix|-win32)?$")
    set(_xm_cxx_name "${CMAKE_MATCH_1}g++${CMAKE_MATCH_2}${CMAKE_MATCH_3}")
  elseif(_xm_c_name MATCHES "^(.*)clang(-[0-9.]+)?$")
    set(_xm_cxx_name "${CMAKE_MATCH_1}clang++${CMAKE_MATCH_2}")
  elseif(_xm_c_name STREQUAL "cc")
    set(_xm_cxx_name "c++")
  endif()
  if(_xm_cxx_name)
    find_program(XMMAP_CXX_SIBLING NAMES ${_xm_cxx_name} HINTS "${_xm_c_dir}" NO_CMAKE_FIND_ROOT_PATH)
    if(XMMAP_CXX_SIBLING)
      set(CMAKE_CXX_COMPILER "${XMMAP_CXX_SIBLING}")
    endif()
  endif()
endif()
if(CMAKE_CXX_COMPILER)
  enable_language(CXX)
  # A compiler alone is not enough: the header needs a C++17 standard library for the target (a
  # toolchain may name a C++ compiler that has none, e.g. clang-cl with only Wine's C headers).
  include(CheckCXXSourceCompiles)
  set(CMAKE_REQUIRED_QUIET ON)
  set(_xm_saved_std "${CMAKE_CXX_STANDARD}")
  set(CMAKE_CXX_STANDARD 17)
  check_cxx_source_compiles("#include <new>\n#include <string>\n#include <system_error>\nint main() { return 0; }"
    XMMAP_CXX_HAS_LIBRARY)
  set(CMAKE_CXX_STANDARD "${_xm_saved_std}")
  if(XMMAP_CXX_HAS_LIBRARY)
    set(XMMAP_CXX ON)
    if("cxx_std_20" IN_LIST CMAKE_CXX_COMPILE_FEATURES)
      set(XMMAP_CXX_20 ON)
    endif()
    message(STATUS "xmmap: C++ parts with ${CMAKE_CXX_COMPILER} (C++20: ${XMMAP_CXX_20})")
  else()
    message(STATUS "xmmap: ${CMAKE_CXX_COMPILER} has no C++17 standard library here: the C++ test and bench rows are skipped")
  endif()
else()
  message(STATUS "xmmap: no C++ compiler beside ${CMAKE_C_COMPILER}: the C++ test and bench rows are skipped")
endif()

# What xmmap.hpp promises its users: clean under these warnings, without exceptions or RTTI.
if(CMAKE_CXX_COMPILER_FRONTEND_VARIANT STREQUAL "MSVC")
  set(XMMAP_CXX_STRICT_FLAGS /W4 /WX /GR- /EHs-c- /D_HAS_EXCEPTIONS=0)
else()
  set(XMMAP_CXX_STRICT_FLAGS -Wall -Wextra -Wpedantic -Wcast-qual -Wconversion -Wsign-conversion -Wshadow
    -Wundef -Wold-style-cast -Wzero-as-null-pointer-constant -Werror -fno-exceptions -fno-rtti)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    list(APPEND XMMAP_CXX_STRICT_FLAGS -Wuseless-cast)
  endif()
endif()
