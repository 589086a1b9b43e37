# Test registration: cmocka for this target, xmmap_add_cmocka_test() and xmmap_add_program_test().
#
# cmocka comes from Debian for every target:
# - native builds use the host's libcmocka-dev;
# - cross builds (or -DXMMAP_CMOCKA_FROM_SOURCE=ON) link a static cmocka built with this build's own
#   toolchain from Debian's cmocka source package, which scripts/deps.sh fetches once with
#   `apt-get source cmocka` into a machine-wide cache (read-only here). The library is configured
#   and built at configure time (~3 s) into <build>/_deps/cmocka-<version>-<system>-<key>/, where
#   <key> hashes the compiler, its version, the flags and the toolchain file: a toolchain change
#   rebuilds it, a re-configure reuses it.
#
# Cross-built tests run through CMAKE_CROSSCOMPILING_EMULATOR (qemu-<arch> or Wine). Windows tests
# get a private WINEPREFIX under the build tree and a persistent wineserver started by a CTest
# fixture (cmake/wine-server.sh), which keeps Wine's background processes off CTest's pipes.
#
# Every test binary's path is written to ${CMAKE_BINARY_DIR}/xmmap-binaries/<test>.txt so that
# scripts/test.sh can report the architecture of what actually ran.
include_guard(GLOBAL)

if(CMAKE_CROSSCOMPILING)
  set(_xm_cmocka_from_source_default ON)
else()
  set(_xm_cmocka_from_source_default OFF)
endif()
option(XMMAP_CMOCKA_FROM_SOURCE "Build a static cmocka from Debian's source package (cross builds)"
  ${_xm_cmocka_from_source_default})
set(XMMAP_CMOCKA_SOURCE_DIR "" CACHE PATH
  "Debian's unpacked cmocka source; empty: look in the scripts/deps.sh cache")

# Debian's cmocka source: XMMAP_CMOCKA_SOURCE_DIR, else the caches scripts/deps.sh fills.
function(_xmmap_find_cmocka_source out)
  set(candidates)
  if(XMMAP_CMOCKA_SOURCE_DIR)
    list(APPEND candidates "${XMMAP_CMOCKA_SOURCE_DIR}")
  endif()
  if(DEFINED ENV{XMMAP_DEPS_DIR} AND NOT "$ENV{XMMAP_DEPS_DIR}" STREQUAL "")
    list(APPEND candidates "$ENV{XMMAP_DEPS_DIR}/cmocka")
  endif()
  list(APPEND candidates /var/cache/xmmap-deps/cmocka)
  if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
    list(APPEND candidates "$ENV{XDG_CACHE_HOME}/xmmap-deps/cmocka")
  elseif(DEFINED ENV{HOME})
    list(APPEND candidates "$ENV{HOME}/.cache/xmmap-deps/cmocka")
  endif()
  foreach(dir IN LISTS candidates)
    if(EXISTS "${dir}/CMakeLists.txt" AND EXISTS "${dir}/include/cmocka.h")
      get_filename_component(dir "${dir}" REALPATH)
      set(${out} "${dir}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  list(JOIN candidates "\n  " tried)
  message(FATAL_ERROR
    "xmmap: Debian's cmocka source was not found; looked in:\n  ${tried}\n"
    "Run scripts/deps.sh <target> (it runs `apt-get source cmocka` into the cache), "
    "or set -DXMMAP_CMOCKA_SOURCE_DIR=<dir>.")
endfunction()

# Configure and build cmocka-static with this build's toolchain, once per toolchain; sets
# <prefix>_LIBRARY, <prefix>_INCLUDE_DIR and <prefix>_LINK_LIBRARIES.
function(_xmmap_build_static_cmocka prefix)
  _xmmap_find_cmocka_source(src)
  get_filename_component(src_name "${src}" NAME)

  # Everything that changes the binary goes into the key, so a toolchain upgrade rebuilds it.
  set(key_text "recipe 1|${src}|${CMAKE_GENERATOR}|${CMAKE_C_COMPILER}|${CMAKE_C_COMPILER_ID}"
    "|${CMAKE_C_COMPILER_VERSION}|${CMAKE_SYSTEM_NAME}|${CMAKE_SYSTEM_PROCESSOR}|${CMAKE_C_FLAGS}")
  if(CMAKE_TOOLCHAIN_FILE)
    get_filename_component(toolchain "${CMAKE_TOOLCHAIN_FILE}" ABSOLUTE BASE_DIR "${CMAKE_BINARY_DIR}")
    file(SHA256 "${toolchain}" toolchain_hash)
    string(APPEND key_text "|${toolchain_hash}")
  endif()
  string(SHA256 key "${key_text}")
  string(SUBSTRING "${key}" 0 12 key)
  string(TOLOWER "${CMAKE_SYSTEM_NAME}-${CMAKE_SYSTEM_PROCESSOR}" system)
  set(leaf "${src_name}-${system}-${key}")

  set(root "${CMAKE_BINARY_DIR}/_deps")
  set(prefix_dir "${root}/${leaf}")

  if(NOT EXISTS "${prefix_dir}/done.stamp")
    message(STATUS "xmmap: building static cmocka from ${src} for ${system}")
    set(work "${root}/${leaf}.work")
    file(REMOVE_RECURSE "${work}" "${prefix_dir}")
    set(args -S "${src}" -B "${work}" -G "${CMAKE_GENERATOR}"
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON
      -DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF -DPICKY_DEVELOPER=OFF
      "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}" "-DCMAKE_C_FLAGS=${CMAKE_C_FLAGS}")
    if(CMAKE_MAKE_PROGRAM)
      list(APPEND args "-DCMAKE_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}")
    endif()
    if(CMAKE_TOOLCHAIN_FILE)
      list(APPEND args "-DCMAKE_TOOLCHAIN_FILE=${toolchain}")
    else()
      list(APPEND args "-DCMAKE_SYSTEM_NAME=${CMAKE_SYSTEM_NAME}"
        "-DCMAKE_SYSTEM_PROCESSOR=${CMAKE_SYSTEM_PROCESSOR}")
    endif()
    execute_process(COMMAND "${CMAKE_COMMAND}" ${args}
      RESULT_VARIABLE rc OUTPUT_VARIABLE log ERROR_VARIABLE log)
    if(rc EQUAL 0)
      execute_process(COMMAND "${CMAKE_COMMAND}" --build "${work}" --target cmocka-static
        RESULT_VARIABLE rc OUTPUT_VARIABLE log ERROR_VARIABLE log)
    endif()
    file(GLOB lib "${work}/src/*cmocka-static${CMAKE_STATIC_LIBRARY_SUFFIX}")
    if(NOT rc EQUAL 0 OR NOT lib)
      message(FATAL_ERROR "xmmap: building cmocka for ${system} failed (${rc}):\n${log}")
    endif()
    # cmocka's own link needs (librt where clock_gettime lives there).
    file(STRINGS "${work}/CMakeCache.txt" libs REGEX "^CMOCKA_REQUIRED_LIBRARIES:")
    string(REGEX REPLACE "^[^=]*=" "" libs "${libs}")
    file(MAKE_DIRECTORY "${prefix_dir}/lib" "${prefix_dir}/include")
    file(COPY ${lib} DESTINATION "${prefix_dir}/lib")
    file(GLOB headers "${src}/include/*.h")
    file(COPY ${headers} DESTINATION "${prefix_dir}/include")
    file(WRITE "${prefix_dir}/link-libraries.txt" "${libs}")
    file(WRITE "${prefix_dir}/done.stamp" "${key_text}\n")
    file(REMOVE_RECURSE "${work}")
  endif()

  file(GLOB lib "${prefix_dir}/lib/*cmocka-static${CMAKE_STATIC_LIBRARY_SUFFIX}")
  file(READ "${prefix_dir}/link-libraries.txt" libs)
  set(${prefix}_LIBRARY "${lib}" PARENT_SCOPE)
  set(${prefix}_INCLUDE_DIR "${prefix_dir}/include" PARENT_SCOPE)
  set(${prefix}_LINK_LIBRARIES "${libs}" PARENT_SCOPE)
endfunction()

if(XMMAP_CMOCKA_FROM_SOURCE)
  _xmmap_build_static_cmocka(_xm_cmocka)
  add_library(xmmap_cmocka STATIC IMPORTED GLOBAL)
  set_target_properties(xmmap_cmocka PROPERTIES
    IMPORTED_LOCATION "${_xm_cmocka_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${_xm_cmocka_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${_xm_cmocka_LINK_LIBRARIES}")
  message(STATUS "xmmap: cmocka (static, from Debian's source): ${_xm_cmocka_LIBRARY}")
else()
  find_path(XMMAP_CMOCKA_INCLUDE NAMES cmocka.h)
  find_library(XMMAP_CMOCKA_LIBRARY NAMES cmocka)
  if(NOT XMMAP_CMOCKA_INCLUDE OR NOT XMMAP_CMOCKA_LIBRARY)
    message(FATAL_ERROR "xmmap: cmocka not found: run scripts/deps.sh host (installs libcmocka-dev)")
  endif()
  add_library(xmmap_cmocka INTERFACE)
  target_include_directories(xmmap_cmocka INTERFACE "${XMMAP_CMOCKA_INCLUDE}")
  target_link_libraries(xmmap_cmocka INTERFACE "${XMMAP_CMOCKA_LIBRARY}")
  message(STATUS "xmmap: cmocka: ${XMMAP_CMOCKA_LIBRARY}")
endif()

# Wine: Windows programs built on a non-Windows host run under the emulator with a private prefix.
set(XMMAP_TEST_ENVIRONMENT)
if(WIN32 AND CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
  set(XMMAP_WINEPREFIX "${CMAKE_BINARY_DIR}/wineprefix")
  set(XMMAP_TEST_ENVIRONMENT "WINEPREFIX=${XMMAP_WINEPREFIX}" "WINEDEBUG=-all")
  list(GET CMAKE_CROSSCOMPILING_EMULATOR 0 _xm_wine)
  set(_xm_wine_server "${CMAKE_CURRENT_LIST_DIR}/wine-server.sh")
  # Once per ctest run: initialise the prefix (first time ~11 s) and start a detached persistent
  # wineserver with its stdio on /dev/null; every Windows test requires the fixture.
  add_test(NAME fixture.wine.start COMMAND sh "${_xm_wine_server}" start "${_xm_wine}")
  add_test(NAME fixture.wine.stop COMMAND sh "${_xm_wine_server}" stop "${_xm_wine}")
  set_tests_properties(fixture.wine.start PROPERTIES FIXTURES_SETUP xmmap_wine
    ENVIRONMENT "${XMMAP_TEST_ENVIRONMENT}" LABELS fixture TIMEOUT 300)
  set_tests_properties(fixture.wine.stop PROPERTIES FIXTURES_CLEANUP xmmap_wine
    ENVIRONMENT "${XMMAP_TEST_ENVIRONMENT}" LABELS fixture TIMEOUT 60)
endif()

# The manifest is rewritten by every configure, so a removed test leaves no stale entry.
file(REMOVE_RECURSE "${CMAKE_BINARY_DIR}/xmmap-binaries")

# What every test registered here shares: environment, fixture, binary manifest.
function(_xmmap_test_common name target)
  if(XMMAP_WINEPREFIX)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED xmmap_wine
      ENVIRONMENT "${XMMAP_TEST_ENVIRONMENT}")
  endif()
  file(GENERATE OUTPUT "${CMAKE_BINARY_DIR}/xmmap-binaries/${name}.txt"
    CONTENT "$<TARGET_FILE:${target}>\n")
endfunction()

# A cmocka test executable linked to the static library; runs through the emulator if any.
function(xmmap_add_cmocka_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE xmmap_testable xmmap_cmocka)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src)
  # XMMAP_TEST_HOOKS: the declarations of src/test/hooks.h, which xmmap_testable implements
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE _FILE_OFFSET_BITS=64 XMMAP_TEST_HOOKS)
  xmmap_set_warnings(${name})
  if(MINGW)
    # No MinGW DLL at run time: the same .exe runs under Wine and on real Windows (CI artifact).
    target_link_options(${name} PRIVATE -static)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS cmocka)
  _xmmap_test_common(${name} ${name})
endfunction()

# Run a program built here (an example, `xmmap selftest`, ...) as a test, through the emulator.
# xmmap_add_program_test(<test name> <executable target> [args...])
function(xmmap_add_program_test name target)
  add_test(NAME ${name} COMMAND ${target} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS program)
  _xmmap_test_common(${name} ${target})
endfunction()
