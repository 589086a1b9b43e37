# Cross toolchain for msvc-arm64: Windows on ARM64 with the MSVC ABI (aarch64-pc-windows-msvc),
# compiled only. clang-cl from LLVM with Wine's Windows headers (libwine-dev) compiles every source
# of the library, the tests, the tool and the examples under the warnings the msvc leg uses
# (/W4 /WX with XMMAP_WERROR); nothing is linked or run, because there are no ARM64 import
# libraries or CRT here and nothing could run the programs.
#
# Compile only means:
#   - try_compile builds static libraries (CMAKE_TRY_COMPILE_TARGET_TYPE), never programs;
#   - static libraries are real archives (llvm-lib), so the library itself is checked whole;
#   - programs and DLLs are "linked" by cmake/compile-only-rules.cmake, which writes an empty file
#     for each: their objects are compiled, the build graph stays as on every other target, and
#     the preset has no test step (scripts/test.sh reports the objects compiled instead).
#
# Wine's winnt.h defines an inline InterlockedCompareExchange128 under the name
# _InterlockedCompareExchange128 for every compiler but cl.exe; for ARM64 clang treats that name as
# a builtin and refuses the definition ("definition of builtin function"). Every file is therefore
# compiled with _InterlockedCompareExchange128 defined to another name, which only renames Wine's
# inline copy (nothing here calls it). A Windows SDK's headers need no such define.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR ARM64)
set(XMMAP_MSVC_TARGET aarch64-pc-windows-msvc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# ---- LLVM: clang-cl and its companions from one LLVM install, the newest found ------------------
file(GLOB _xm_llvm_dirs LIST_DIRECTORIES true /usr/lib/llvm-*/bin)
list(SORT _xm_llvm_dirs COMPARE NATURAL ORDER DESCENDING)
find_program(XMMAP_CLANG_CL NAMES clang-cl HINTS ${_xm_llvm_dirs} NO_CMAKE_FIND_ROOT_PATH)
if(NOT XMMAP_CLANG_CL)
  message(FATAL_ERROR "msvc-arm64 toolchain: clang-cl not found (install clang)")
endif()
get_filename_component(_xm_llvm_bin "${XMMAP_CLANG_CL}" DIRECTORY)
find_program(XMMAP_LLVM_LIB NAMES llvm-lib HINTS "${_xm_llvm_bin}" NO_CMAKE_FIND_ROOT_PATH)
find_program(XMMAP_LLD_LINK NAMES lld-link HINTS "${_xm_llvm_bin}" NO_CMAKE_FIND_ROOT_PATH)
find_program(XMMAP_LLVM_RC NAMES llvm-rc HINTS "${_xm_llvm_bin}" NO_CMAKE_FIND_ROOT_PATH)
if(NOT XMMAP_LLVM_LIB OR NOT XMMAP_LLD_LINK)
  message(FATAL_ERROR "msvc-arm64 toolchain: llvm-lib or lld-link not found beside ${XMMAP_CLANG_CL}")
endif()
set(CMAKE_C_COMPILER "${XMMAP_CLANG_CL}")
set(CMAKE_CXX_COMPILER "${XMMAP_CLANG_CL}")
set(CMAKE_AR "${XMMAP_LLVM_LIB}")
set(CMAKE_LINKER "${XMMAP_LLD_LINK}") # never run: see compile-only-rules.cmake
if(XMMAP_LLVM_RC)
  set(CMAKE_RC_COMPILER "${XMMAP_LLVM_RC}")
endif()

# ---- Wine: the Windows headers -------------------------------------------------------------------
find_path(XMMAP_WINE_INCLUDE_DIR NAMES windows/windows.h msvcrt/stdio.h
  PATHS /usr/include/wine/wine /usr/include/wine /usr/local/include/wine/wine /usr/local/include/wine
        /opt/wine-stable/include/wine /opt/wine-devel/include/wine
  NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
if(NOT XMMAP_WINE_INCLUDE_DIR)
  message(FATAL_ERROR "msvc-arm64 toolchain: Wine's Windows headers not found (install libwine-dev)")
endif()

# /Zl and /GS-: objects that ask for no default CRT library and no stack-cookie helper, as the msvc
# leg builds them (only the compile matters here).
set(_xm_cl_flags "--target=${XMMAP_MSVC_TARGET} /Zl /GS-"
  " -imsvc \"${XMMAP_WINE_INCLUDE_DIR}/msvcrt\" -imsvc \"${XMMAP_WINE_INCLUDE_DIR}/windows\""
  " /D_InterlockedCompareExchange128=xm_wine_InterlockedCompareExchange128")
string(JOIN "" _xm_cl_flags ${_xm_cl_flags})
set(CMAKE_C_FLAGS_INIT "${_xm_cl_flags}")
set(CMAKE_CXX_FLAGS_INIT "${_xm_cl_flags}")

set(CMAKE_USER_MAKE_RULES_OVERRIDE "${CMAKE_CURRENT_LIST_DIR}/../compile-only-rules.cmake")
set(CMAKE_USER_MAKE_RULES_OVERRIDE_CXX "${CMAKE_CURRENT_LIST_DIR}/../compile-only-rules.cmake")

# Without linking, check_function_exists finds every function it is asked about. The POSIX ones
# that cmocka's configure asks for (cmocka is built with this toolchain for its header and objects)
# do not exist on Windows: answer them here.
foreach(_xm_missing HAVE_SIGLONGJMP HAVE_STRSIGNAL HAVE_CLOCK_GETTIME)
  set(${_xm_missing} "" CACHE INTERNAL "compile-only build: not on Windows")
endforeach()
