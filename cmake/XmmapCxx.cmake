# The optional C++ parts of the build: the C++ consumer test (tests/cxx) and the bench's C++ rows
# (tools/bench_cxx.cpp). They need a C++ compiler for the same target as the C compiler, so only
# its sibling is taken: g++ beside gcc, clang++ beside clang, <triple>-g++ beside <triple>-gcc (a
# bare `c++` could be the host's compiler in a cross build). -DCMAKE_CXX_COMPILER=... overrides.
# Sets XMMAP_CXX (ON when C++ is enabled) and XMMAP_CXX_20 (the compiler knows C++20).
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
  set(XMMAP_CXX ON)
  if("cxx_std_20" IN_LIST CMAKE_CXX_COMPILE_FEATURES)
    set(XMMAP_CXX_20 ON)
  endif()
  message(STATUS "xmmap: C++ parts with ${CMAKE_CXX_COMPILER} (C++20: ${XMMAP_CXX_20})")
else()
  message(STATUS "xmmap: no C++ compiler beside ${CMAKE_C_COMPILER}: the C++ test and bench rows are skipped")
endif()

# What xmmap.hpp promises its users: clean under these warnings, without exceptions or RTTI.
set(XMMAP_CXX_STRICT_FLAGS -Wall -Wextra -Wpedantic -Wcast-qual -Wconversion -Wsign-conversion -Wshadow
  -Wundef -Wold-style-cast -Wzero-as-null-pointer-constant -Werror -fno-exceptions -fno-rtti)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  list(APPEND XMMAP_CXX_STRICT_FLAGS -Wuseless-cast)
endif()
