# The format check (a CTest test of the host build): every C and C++ source and header must be
# exactly what clang-format makes of it with the repository's .clang-format. Fix with
# `scripts/format.sh`. Run as: cmake -DCLANG_FORMAT=<exe> -DSOURCE_DIR=<repo> -P format-check.cmake
if(NOT CLANG_FORMAT)
  message(FATAL_ERROR "format check: clang-format not found (scripts/deps.sh installs it)")
endif()
file(GLOB_RECURSE files LIST_DIRECTORIES false RELATIVE "${SOURCE_DIR}"
  "${SOURCE_DIR}/include/*.h" "${SOURCE_DIR}/include/*.hpp" "${SOURCE_DIR}/src/*.[ch]" "${SOURCE_DIR}/tests/*.[ch]"
  "${SOURCE_DIR}/tests/*.cpp" "${SOURCE_DIR}/tools/*.[ch]" "${SOURCE_DIR}/tools/*.cpp" "${SOURCE_DIR}/examples/*.[ch]")
list(FILTER files EXCLUDE REGEX "^tests/consumer/build")
list(LENGTH files total)
# One clang-format run for all files; it names each file that differs.
execute_process(COMMAND "${CLANG_FORMAT}" --style=file --dry-run --Werror ${files}
  WORKING_DIRECTORY "${SOURCE_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE diagnostics OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  string(REGEX MATCHALL "[^\n]+: error: code should be clang-formatted" lines "${diagnostics}")
  set(bad "")
  foreach(l ${lines})
    string(REGEX REPLACE ":[0-9]+:[0-9]+: error: .*" "" f "${l}")
    list(APPEND bad "${f}")
  endforeach()
  list(REMOVE_DUPLICATES bad)
  list(JOIN bad "\n  " shown)
  message(FATAL_ERROR "format check: these files are not formatted (run scripts/format.sh):\n  ${shown}")
endif()
message(STATUS "format check: ${total} files formatted")
