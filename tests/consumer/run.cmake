# The consumer test (registered by cmake/XmmapInstall.cmake): installs this build tree into a
# temporary prefix and builds small programs against it the ways users do, then runs them (through
# qemu or Wine for cross builds):
#   1. the installed files are there, and the shared library exports only xm_* symbols (nm -D /
#      the DLL's export table) with the major version in its SONAME;
#   2. find_package(xmmap CONFIG REQUIRED): xmmap::xmmap (static) and xmmap::xmmap_shared;
#   3. pkg-config --cflags --libs xmmap with the plain compiler (MinGW: plus -static, which links
#      libxmmap.a; ELF: the shared library via -lxmmap, and `--static` flags with -static);
#   4. FetchContent of the source tree: the library only, no tests/tools/examples.
#
# usage: cmake -DXMMAP_SOURCE_DIR=... -DXMMAP_BUILD_DIR=... -DWORK_DIR=... -DGENERATOR=... [more] -P run.cmake
# (see the add_test call in cmake/XmmapInstall.cmake for every variable)
cmake_minimum_required(VERSION 3.25)

foreach(var XMMAP_SOURCE_DIR XMMAP_BUILD_DIR WORK_DIR GENERATOR LIBDIR BINDIR PKGCONFIGDIR CMAKEDIR
            STATIC_LIB_NAME SHARED_LIB_NAME SYSTEM_NAME)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "consumer: -D${var}=... is required")
  endif()
endforeach()
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
set(windows OFF)
if(NOT DEFINED MSVC_FRONTEND)
  set(MSVC_FRONTEND OFF) # a compiler with cl's options (cl, clang-cl)
endif()
if(SYSTEM_NAME STREQUAL "Windows")
  set(windows ON)
endif()
set(prefix "${WORK_DIR}/prefix")
set(app "${CMAKE_CURRENT_LIST_DIR}/app")

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Runs a command; stops the test with its output when it fails. The output is left in <out_var>.
function(step name out_var)
  message(STATUS "consumer: ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out
    WORKING_DIRECTORY "${WORK_DIR}")
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " cmd)
    message(FATAL_ERROR "consumer: ${name} failed (${rc}):\n${cmd}\n${out}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# Runs a built program (through the emulator) and checks that it says ok.
function(run_program name program)
  step("run ${name}" out ${EMULATOR} "${program}")
  if(NOT out MATCHES "consumer: xmmap [0-9.]+, [a-z]+ back end: ok")
    message(FATAL_ERROR "consumer: ${name} did not report ok:\n${out}")
  endif()
  string(STRIP "${out}" out)
  message(STATUS "consumer:   ${out}")
endfunction()

# ---- 1. install ------------------------------------------------------------------------------
set(config_args)
if(BUILD_TYPE)
  set(config_args --config "${BUILD_TYPE}")
endif()
step("cmake --install ${XMMAP_BUILD_DIR} --prefix ${prefix}" out
  "${CMAKE_COMMAND}" --install "${XMMAP_BUILD_DIR}" --prefix "${prefix}" ${config_args})

set(expected include/xmmap/xmmap.h include/xmmap/version.h include/xmmap/xmmap.hpp include/xmmap/xmmap_core.hpp
  "${LIBDIR}/${STATIC_LIB_NAME}"
  "${CMAKEDIR}/xmmapConfig.cmake" "${CMAKEDIR}/xmmapConfigVersion.cmake" "${CMAKEDIR}/xmmapTargets.cmake"
  "${PKGCONFIGDIR}/xmmap.pc")
if(windows)
  set(shared_lib "${prefix}/${BINDIR}/${SHARED_LIB_NAME}")
  list(APPEND expected "${BINDIR}/${SHARED_LIB_NAME}" "${LIBDIR}/${IMPORT_LIB_NAME}")
else()
  set(shared_lib "${prefix}/${LIBDIR}/${SHARED_LIB_NAME}")
  list(APPEND expected "${LIBDIR}/${SHARED_LIB_NAME}" "${LIBDIR}/${SONAME}" "${LIBDIR}/libxmmap.so")
endif()
foreach(file ${expected})
  if(NOT EXISTS "${prefix}/${file}")
    file(GLOB_RECURSE installed RELATIVE "${prefix}" "${prefix}/*")
    list(JOIN installed "\n  " installed)
    message(FATAL_ERROR "consumer: ${file} was not installed; the prefix holds:\n  ${installed}")
  endif()
endforeach()
file(READ "${prefix}/include/xmmap/version.h" version_h)
if(NOT version_h MATCHES "#define XMMAP_VERSION_MAJOR [0-9]+")
  message(FATAL_ERROR "consumer: the installed version.h has no XMMAP_VERSION_MAJOR")
endif()

# Only xm_* symbols leave the shared library.
set(exports)
if(windows)
  if(NOT OBJDUMP)
    message(FATAL_ERROR "consumer: no objdump to read the DLL's export table (-DOBJDUMP=)")
  endif()
  step("objdump -p ${SHARED_LIB_NAME}" dump "${OBJDUMP}" -p "${shared_lib}")
  # The export name table, after its heading: lines like "	[   3] xm_builder_new".
  string(FIND "${dump}" "[Ordinal/Name Pointer] Table" at)
  if(at LESS 0)
    message(FATAL_ERROR "consumer: ${SHARED_LIB_NAME} has no export name table:\n${dump}")
  endif()
  string(SUBSTRING "${dump}" ${at} -1 names)
  string(REGEX MATCHALL "\n\t\\[ *[0-9]+\\] [^\n]+" rows "${names}")
  foreach(row ${rows})
    string(REGEX REPLACE "^\n\t\\[ *[0-9]+\\] " "" name "${row}")
    list(APPEND exports "${name}")
  endforeach()
  # Nothing the DLL needs at run time beyond Windows itself (no MinGW runtime DLLs).
  string(REGEX MATCHALL "DLL Name: [^\n]+" needed "${dump}")
  foreach(dll ${needed})
    if(dll MATCHES "libgcc|libwinpthread|libstdc")
      message(FATAL_ERROR "consumer: ${SHARED_LIB_NAME} needs a MinGW runtime DLL: ${dll}")
    endif()
  endforeach()
else()
  if(NOT NM)
    find_program(NM nm)
  endif()
  step("nm -D ${SHARED_LIB_NAME}" dump "${NM}" -D --defined-only "${shared_lib}")
  string(REPLACE "\n" ";" lines "${dump}")
  foreach(line ${lines})
    if(line MATCHES "([^ ]+)$")
      list(APPEND exports "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  if(OBJDUMP)
    step("objdump -p ${SHARED_LIB_NAME}" dump "${OBJDUMP}" -p "${shared_lib}")
    if(NOT dump MATCHES "SONAME +${SONAME}")
      message(FATAL_ERROR "consumer: ${SHARED_LIB_NAME} lacks SONAME ${SONAME}:\n${dump}")
    endif()
  endif()
endif()
# Symbols the linker itself defines in every ELF shared object.
set(linker_symbols _init _fini _edata _end __bss_start _fbss _fdata _ftext __end__ _etext .TOC.)
set(stray)
set(count 0)
foreach(name ${exports})
  string(REGEX REPLACE "@.*$" "" name "${name}")
  if(name MATCHES "^xm_")
    math(EXPR count "${count} + 1")
  elseif(NOT name IN_LIST linker_symbols)
    list(APPEND stray "${name}")
  endif()
endforeach()
if(stray)
  message(FATAL_ERROR "consumer: ${SHARED_LIB_NAME} exports symbols outside xm_*: ${stray}")
endif()
if(count LESS 50 OR NOT "xm_builder_build" IN_LIST exports)
  message(FATAL_ERROR "consumer: ${SHARED_LIB_NAME} exports only ${count} xm_* symbols: ${exports}")
endif()
message(STATUS "consumer:   ${SHARED_LIB_NAME} exports ${count} symbols, all xm_*")

# ---- 2. find_package ---------------------------------------------------------------------------
set(configure_args -G "${GENERATOR}")
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(TOOLCHAIN_FILE)
  # A cross toolchain re-roots package searches under its sysroot: name the package directly.
  list(APPEND configure_args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}" "-Dxmmap_DIR=${prefix}/${CMAKEDIR}")
elseif(C_COMPILER)
  list(APPEND configure_args "-DCMAKE_C_COMPILER=${C_COMPILER}")
endif()
if(BUILD_TYPE)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
endif()

step("configure (find_package)" out "${CMAKE_COMMAND}" -S "${app}" -B "${WORK_DIR}/package" ${configure_args}
  "-DCMAKE_PREFIX_PATH=${prefix}" -DXMMAP_CONSUMER_MODE=package)
step("build (find_package)" out "${CMAKE_COMMAND}" --build "${WORK_DIR}/package")
set(exe "")
if(windows)
  set(exe ".exe")
endif()
run_program("find_package, xmmap::xmmap" "${WORK_DIR}/package/consumer_static${exe}")
run_program("find_package, xmmap::xmmap_shared" "${WORK_DIR}/package/consumer_shared${exe}")
# The shared program really uses the shared library, the static one does not.
if(OBJDUMP)
  step("objdump -p consumer_shared" dump "${OBJDUMP}" -p "${WORK_DIR}/package/consumer_shared${exe}")
  if(windows)
    set(needs "DLL Name: ${SHARED_LIB_NAME}")
  else()
    set(needs "NEEDED +${SONAME}")
  endif()
  if(NOT dump MATCHES "${needs}")
    message(FATAL_ERROR "consumer: consumer_shared does not load ${SHARED_LIB_NAME}:\n${dump}")
  endif()
  step("objdump -p consumer_static" dump "${OBJDUMP}" -p "${WORK_DIR}/package/consumer_static${exe}")
  if(dump MATCHES "${needs}")
    message(FATAL_ERROR "consumer: consumer_static loads ${SHARED_LIB_NAME}")
  endif()
endif()

# ---- 3. pkg-config ----------------------------------------------------------------------------
if(MSVC_FRONTEND)
  # pkg-config speaks -L/-l, not cl and link: MSVC users take the CMake package (step 2).
  message(STATUS "consumer:   (no pkg-config step: the compiler takes MSVC's options)")
else()
  if(NOT PKG_CONFIG)
    message(FATAL_ERROR "consumer: pkg-config not found (scripts/deps.sh installs it)")
  endif()
  # Only this prefix's .pc files: a cross build must not see the build machine's.
  set(ENV{PKG_CONFIG_PATH} "${prefix}/${PKGCONFIGDIR}")
  set(ENV{PKG_CONFIG_LIBDIR} "${prefix}/${PKGCONFIGDIR}")
  unset(ENV{PKG_CONFIG_SYSROOT_DIR})
  step("pkg-config --cflags --libs xmmap" flags "${PKG_CONFIG}" --cflags --libs xmmap)
  string(STRIP "${flags}" flags)
  message(STATUS "consumer:   pkg-config: ${flags}")
  separate_arguments(flags UNIX_COMMAND "${flags}")
  set(cc "${C_COMPILER}")
  set(strict -std=c11 -Wall -Wextra -Wpedantic -Werror)
  if(windows)
    # -lxmmap finds libxmmap.a (the DLL's import library is named differently); -static also
    # takes MinGW's runtime in, so the program needs no DLL at all.
    step("cc main.c $(pkg-config --cflags --libs xmmap) -static" out "${cc}" ${strict} "${app}/main.c" ${flags}
      -static -o "${WORK_DIR}/consumer_pc.exe")
    run_program("pkg-config" "${WORK_DIR}/consumer_pc.exe")
  else()
    # -lxmmap finds the shared library, which an rpath locates at run time.
    step("cc main.c $(pkg-config --cflags --libs xmmap)" out "${cc}" ${strict} "${app}/main.c" ${flags}
      "-Wl,-rpath,${prefix}/${LIBDIR}" -o "${WORK_DIR}/consumer_pc")
    run_program("pkg-config (shared)" "${WORK_DIR}/consumer_pc")
    # Fully static: `--static` adds Libs.private (-pthread). Sanitizer runtimes cannot link -static.
    if(SANITIZE)
      message(STATUS "consumer:   (no fully static program: the library is built with -fsanitize=${SANITIZE})")
    else()
      step("pkg-config --static --cflags --libs xmmap" flags "${PKG_CONFIG}" --static --cflags --libs xmmap)
      string(STRIP "${flags}" flags)
      message(STATUS "consumer:   pkg-config --static: ${flags}")
      separate_arguments(flags UNIX_COMMAND "${flags}")
      step("cc main.c $(pkg-config --static --cflags --libs xmmap) -static" out "${cc}" ${strict} "${app}/main.c"
        ${flags} -static -o "${WORK_DIR}/consumer_pc_static")
      run_program("pkg-config (static)" "${WORK_DIR}/consumer_pc_static")
    endif()
  endif()
endif()

# ---- 4. FetchContent / add_subdirectory -----------------------------------------------------------
set(fetch_args ${configure_args})
list(FILTER fetch_args EXCLUDE REGEX "^-Dxmmap_DIR=")
step("configure (FetchContent)" out "${CMAKE_COMMAND}" -S "${app}" -B "${WORK_DIR}/fetch" ${fetch_args}
  -DXMMAP_CONSUMER_MODE=fetch "-DXMMAP_SOURCE_DIR=${XMMAP_SOURCE_DIR}")
step("build (FetchContent)" out "${CMAKE_COMMAND}" --build "${WORK_DIR}/fetch")
run_program("FetchContent" "${WORK_DIR}/fetch/consumer_fetch${exe}")

message(STATUS "consumer: all passed")
