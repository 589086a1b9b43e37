# The public headers as their contract promises: no compiler extension, clean as C and as C++.
# Compiles consumer.c (which uses every inline function and macro of xmmap.h) with each given
# compiler: as C11 with the C compilers, as C++11, C++17 and C++20 with the C++ compilers, under
#   -Wall -Wextra -Wpedantic -Wcast-qual -Wsign-conversion -Werror
#   C++ also: -Wold-style-cast -Wzero-as-null-pointer-constant; g++ also: -Wuseless-cast
# and consumer.cpp (every template and inline function of xmmap.hpp) as C++17 and C++20 with the
# C++ compilers, with -Wconversion -Wshadow -Wundef -fno-exceptions -fno-rtti on top (emulators
# build without exceptions and RTTI).
# A compiler that was not found at configure time is a failure, not a skip.
#
# usage: cmake -DINCLUDE_DIR=<include> -DWORK_DIR=<dir> -DC_COMPILERS=<a|b> -DCXX_COMPILERS=<a|b>
#              -P check.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var INCLUDE_DIR WORK_DIR C_COMPILERS CXX_COMPILERS)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "header check: -D${var}=... is required")
  endif()
endforeach()
string(REPLACE "|" ";" C_COMPILERS "${C_COMPILERS}")
string(REPLACE "|" ";" CXX_COMPILERS "${CXX_COMPILERS}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(common -O2 -Wall -Wextra -Wpedantic -Wcast-qual -Wsign-conversion -Werror "-I${INCLUDE_DIR}")
set(failures "")
set(passed 0)

# Compiles a consumer with one compiler and language standard; a failure is collected.
# language: c, c++ (consumer.c as C++) or hpp (consumer.cpp).
function(compile compiler language std)
  get_filename_component(name "${compiler}" NAME)
  set(flags ${common} "-std=${std}")
  set(source "${CMAKE_CURRENT_LIST_DIR}/consumer.c")
  if(language STREQUAL "hpp")
    set(source "${CMAKE_CURRENT_LIST_DIR}/consumer.cpp")
    list(APPEND flags -Wconversion -Wshadow -Wundef -fno-exceptions -fno-rtti)
  endif()
  if(language STREQUAL "c++" OR language STREQUAL "hpp")
    list(APPEND flags -x c++ -Wold-style-cast -Wzero-as-null-pointer-constant)
    execute_process(COMMAND "${compiler}" --version OUTPUT_VARIABLE version ERROR_QUIET)
    if(NOT version MATCHES "clang")
      list(APPEND flags -Wuseless-cast)
    endif()
  else()
    list(APPEND flags -x c)
  endif()
  set(object "${WORK_DIR}/${name}-${language}-${std}.o")
  execute_process(COMMAND "${compiler}" ${flags} -c "${source}" -o "${object}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  list(JOIN flags " " shown)
  if(rc EQUAL 0 AND EXISTS "${object}")
    message(STATUS "ok: ${name} -std=${std} (${source})")
    math(EXPR n "${passed} + 1")
    set(passed ${n} PARENT_SCOPE)
  else()
    set(failures "${failures}\n${compiler} ${shown} -c ${source}:\n${out}" PARENT_SCOPE)
  endif()
endfunction()

# Compiles with each compiler of a list in each standard; a compiler that is missing is a failure.
function(compile_with compilers language)
  foreach(compiler IN LISTS compilers)
    if(NOT compiler OR NOT EXISTS "${compiler}")
      set(failures "${failures}\n${language} compiler not found: '${compiler}' (scripts/deps.sh installs it)")
      continue()
    endif()
    foreach(std IN LISTS ARGN)
      compile("${compiler}" ${language} ${std})
    endforeach()
  endforeach()
  set(failures "${failures}" PARENT_SCOPE)
  set(passed ${passed} PARENT_SCOPE)
endfunction()

compile_with("${C_COMPILERS}" c c11)
compile_with("${CXX_COMPILERS}" c++ c++11 c++17 c++20)
compile_with("${CXX_COMPILERS}" hpp c++17 c++20)

if(failures)
  message(FATAL_ERROR "header check: ${passed} compilations passed; these failed:${failures}")
endif()
message(STATUS "header check: xmmap.h and xmmap.hpp are clean in all ${passed} compilations")
