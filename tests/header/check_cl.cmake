# The header check of tests/header/check.cmake for a compiler with cl's options (clang-cl, the msvc
# leg): consumer.c (every inline function and macro of xmmap.h) as C11 and as C++14, C++17 and
# C++20 (cl's oldest C++ mode is 14), with the toolchain's flags, under
#   /W4 /WX -Wpedantic -Wcast-qual -Wsign-conversion; C++ also -Wold-style-cast -Wzero-as-null-pointer-constant
#
# usage: cmake -DINCLUDE_DIR=<include> -DWORK_DIR=<dir> -DCOMPILER=<clang-cl> -DFLAGS=<flags> -P check_cl.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var INCLUDE_DIR WORK_DIR COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "header check: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${COMPILER}")
  message(FATAL_ERROR "header check: compiler not found: '${COMPILER}'")
endif()
separate_arguments(FLAGS WINDOWS_COMMAND "${FLAGS}")
set(source "${CMAKE_CURRENT_LIST_DIR}/consumer.c")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
get_filename_component(name "${COMPILER}" NAME)

set(failures "")
set(passed 0)
# /Tc and /Tp name the language of the file that follows (a path starting with /w would otherwise
# read as an option).
foreach(std c11 c++14 c++17 c++20)
  set(flags ${FLAGS} /nologo /O2 /W4 /WX -Wpedantic -Wcast-qual -Wsign-conversion "-I${INCLUDE_DIR}" "/std:${std}")
  set(kind /Tc)
  if(std MATCHES "^c\\+\\+")
    list(APPEND flags -Wold-style-cast -Wzero-as-null-pointer-constant)
    set(kind /Tp)
  endif()
  set(object "${WORK_DIR}/${name}-${std}.obj")
  execute_process(COMMAND "${COMPILER}" ${flags} /c "${kind}${source}" "/Fo${object}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0 AND EXISTS "${object}")
    message(STATUS "ok: ${name} /std:${std}")
    math(EXPR passed "${passed} + 1")
  else()
    list(JOIN flags " " shown)
    string(APPEND failures "\n${COMPILER} ${shown} /c ${kind}${source}:\n${out}")
  endif()
endforeach()

if(failures)
  message(FATAL_ERROR "header check: ${passed} compilations passed; these failed:${failures}")
endif()
message(STATUS "header check: xmmap.h is clean in all ${passed} compilations")
