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

set(XMMAP_MSVC_LEG msvc-arm64)
include("${CMAKE_CURRENT_LIST_DIR}/clang-cl-wine.cmake")
set(CMAKE_LINKER "${XMMAP_LLD_LINK}") # never run: see compile-only-rules.cmake

# The shared flags (as the msvc leg builds objects; only the compile matters here) and the rename of
# Wine's _InterlockedCompareExchange128 (above).
string(APPEND _xm_cl_flags " /D_InterlockedCompareExchange128=xm_wine_InterlockedCompareExchange128")
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
