# Link rules of a compile-only build (cmake/toolchains/msvc-arm64.cmake): loaded after CMake's
# platform rules (CMAKE_USER_MAKE_RULES_OVERRIDE), it replaces every program and DLL link with an
# empty output file, so that the objects are compiled and nothing is linked. Static libraries keep
# their real rule (llvm-lib needs no import libraries).
foreach(_xm_lang C CXX)
  set(CMAKE_${_xm_lang}_LINK_EXECUTABLE "\"${CMAKE_COMMAND}\" -E touch <TARGET>")
  set(CMAKE_${_xm_lang}_CREATE_SHARED_LIBRARY "\"${CMAKE_COMMAND}\" -E touch <TARGET> <TARGET_IMPLIB>")
  set(CMAKE_${_xm_lang}_CREATE_SHARED_MODULE "\"${CMAKE_COMMAND}\" -E touch <TARGET>")
endforeach()
