# Install rules and package files: the public headers (C and the optional C++ one), the static and the shared library (a .dll
# plus its import library on Windows), the `xmmap` tool, xmmapConfig.cmake + version file (imported
# targets xmmap::xmmap, static, and xmmap::xmmap_shared) and xmmap.pc (the static library).
# Also registers the consumer test (tests/consumer/run.cmake): install into a temporary prefix,
# then build small programs against it with find_package, pkg-config and FetchContent.
include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# A shipped libxmmap.dll must need nothing but Windows: thread-locals (the error messages) use
# MinGW's emulated TLS from libgcc, which would otherwise come as libgcc_s_seh-1.dll.
if(MINGW)
  target_link_options(xmmap_shared PRIVATE -static-libgcc)
endif()

option(XMMAP_INSTALL "Generate xmmap's install rules (default: when xmmap is the top-level project)"
  ${XMMAP_TOP_LEVEL})
if(NOT XMMAP_INSTALL)
  return()
endif()

set(XMMAP_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/xmmap" CACHE STRING
  "Where xmmapConfig.cmake goes, relative to the prefix")
set(XMMAP_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
  "Where xmmap.pc goes, relative to the prefix")

# xmmap.h and its parts, and the optional C++17 header xmmap.hpp with its parts.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/xmmap" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  COMPONENT development FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp")

# Export names: xmmap -> xmmap::xmmap, xmmap_shared -> xmmap::xmmap_shared. The shared target
# carries XMMAP_DLL as an INTERFACE definition (src/CMakeLists.txt), so dllimport just works.
install(TARGETS xmmap xmmap_shared EXPORT xmmapTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT development
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT runtime NAMELINK_COMPONENT development
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT runtime
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT xmmapTargets NAMESPACE xmmap:: DESTINATION "${XMMAP_INSTALL_CMAKEDIR}"
  FILE xmmapTargets.cmake COMPONENT development)

if(TARGET xmmap_tool)
  install(TARGETS xmmap_tool RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT tools)
endif()

# What the static library needs from its users' link: the thread library on POSIX.
if(WIN32)
  set(XMMAP_CONFIG_DEPENDENCIES "")
  set(XMMAP_PC_LIBS_PRIVATE "")
else()
  set(XMMAP_CONFIG_DEPENDENCIES "find_dependency(Threads)")
  set(XMMAP_PC_LIBS_PRIVATE "-pthread")
endif()

# A sanitized build's library needs the sanitizer runtime in every program that links it (the
# CMake targets carry the flag as a link option already).
set(XMMAP_PC_LIBS_EXTRA "")
if(XMMAP_SANITIZE)
  set(XMMAP_PC_LIBS_EXTRA " -fsanitize=${XMMAP_SANITIZE}")
endif()

configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/xmmapConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/xmmapConfig.cmake" INSTALL_DESTINATION "${XMMAP_INSTALL_CMAKEDIR}")
# 0.x releases break compatibility between minor versions; from 1.0 on, the major version counts.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_xm_compat SameMinorVersion)
else()
  set(_xm_compat SameMajorVersion)
endif()
write_basic_package_version_file("${PROJECT_BINARY_DIR}/xmmapConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${_xm_compat})
install(FILES "${PROJECT_BINARY_DIR}/xmmapConfig.cmake" "${PROJECT_BINARY_DIR}/xmmapConfigVersion.cmake"
  DESTINATION "${XMMAP_INSTALL_CMAKEDIR}" COMPONENT development)

# xmmap.pc is relocatable: its prefix is found from the .pc file's own place (${pcfiledir}), so
# `cmake --install --prefix <anywhere>` needs no reconfigure.
function(_xmmap_relative_to_prefix out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()
if(IS_ABSOLUTE "${XMMAP_INSTALL_PKGCONFIGDIR}")
  set(XMMAP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _xm_up "/_root/${XMMAP_INSTALL_PKGCONFIGDIR}" "/_root")
  string(REGEX REPLACE "/$" "" _xm_up "${_xm_up}")
  set(XMMAP_PC_PREFIX "\${pcfiledir}/${_xm_up}")
endif()
_xmmap_relative_to_prefix(XMMAP_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
_xmmap_relative_to_prefix(XMMAP_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
configure_file("${CMAKE_CURRENT_LIST_DIR}/xmmap.pc.in" "${PROJECT_BINARY_DIR}/xmmap.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/xmmap.pc" DESTINATION "${XMMAP_INSTALL_PKGCONFIGDIR}"
  COMPONENT development)

# ---- the consumer test --------------------------------------------------------------------------
# Top-level only (it installs this build tree); for every target, run through the same emulator as
# the other tests (Wine with the build's prefix, or qemu).
if(XMMAP_TOP_LEVEL AND (XMMAP_BUILD_TESTS OR XMMAP_BUILD_EXAMPLES) AND COMMAND xmmap_add_program_test)
  string(REPLACE ";" "|" _xm_emulator "${CMAKE_CROSSCOMPILING_EMULATOR}")
  set(_xm_toolchain "")
  if(CMAKE_TOOLCHAIN_FILE)
    get_filename_component(_xm_toolchain "${CMAKE_TOOLCHAIN_FILE}" ABSOLUTE BASE_DIR "${PROJECT_BINARY_DIR}")
  endif()
  find_program(XMMAP_PKG_CONFIG NAMES pkg-config pkgconf)
  if(WIN32)
    set(_xm_shared_names "-DIMPORT_LIB_NAME=$<TARGET_LINKER_FILE_NAME:xmmap_shared>")
  else()
    set(_xm_shared_names "-DSONAME=$<TARGET_SONAME_FILE_NAME:xmmap_shared>")
  endif()
  add_test(NAME consumer
    COMMAND "${CMAKE_COMMAND}"
      "-DXMMAP_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
      "-DXMMAP_BUILD_DIR=${PROJECT_BINARY_DIR}"
      "-DWORK_DIR=${PROJECT_BINARY_DIR}/consumer"
      "-DGENERATOR=${CMAKE_GENERATOR}"
      "-DMAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}"
      "-DC_COMPILER=${CMAKE_C_COMPILER}"
      "-DTOOLCHAIN_FILE=${_xm_toolchain}"
      "-DBUILD_TYPE=${CMAKE_BUILD_TYPE}"
      "-DEMULATOR=${_xm_emulator}"
      "-DSYSTEM_NAME=${CMAKE_SYSTEM_NAME}"
      "-DMSVC_FRONTEND=$<BOOL:${MSVC}>"
      "-DLIBDIR=${CMAKE_INSTALL_LIBDIR}"
      "-DBINDIR=${CMAKE_INSTALL_BINDIR}"
      "-DPKGCONFIGDIR=${XMMAP_INSTALL_PKGCONFIGDIR}"
      "-DCMAKEDIR=${XMMAP_INSTALL_CMAKEDIR}"
      "-DPKG_CONFIG=${XMMAP_PKG_CONFIG}"
      "-DSANITIZE=${XMMAP_SANITIZE}"
      "-DNM=${CMAKE_NM}"
      "-DOBJDUMP=${CMAKE_OBJDUMP}"
      "-DSHARED_LIB_NAME=$<TARGET_FILE_NAME:xmmap_shared>"
      "-DSTATIC_LIB_NAME=$<TARGET_FILE_NAME:xmmap>"
      "${_xm_shared_names}"
      -P "${PROJECT_SOURCE_DIR}/tests/consumer/run.cmake")
  # Configures and builds three small projects: give it room under qemu and Wine.
  set_tests_properties(consumer PROPERTIES LABELS consumer TIMEOUT 600)
  if(XMMAP_WINEPREFIX)
    set_tests_properties(consumer PROPERTIES FIXTURES_REQUIRED xmmap_wine
      ENVIRONMENT "${XMMAP_TEST_ENVIRONMENT}")
  endif()
endif()
