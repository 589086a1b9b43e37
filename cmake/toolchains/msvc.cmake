# Cross toolchain for msvc: the MSVC ABI (x86_64-pc-windows-msvc) with clang-cl and lld-link from
# LLVM, Wine's Windows headers and import libraries (libwine-dev) in place of a Windows SDK and CRT,
# tests run under Wine.
#
# What a Visual Studio install would provide and Wine's development files lack is made here, once
# per build tree, in <build>/msvc-support/ (re-used by CMake's try_compile projects):
#   - <name>.lib for every Wine import library lib<name>.a, so that the names MSVC projects link
#     (kernel32.lib, ucrtbase.lib, ...) resolve;
#   - crt_support.obj from cmake/msvc/crt_support.c, what an MSVC CRT's static part has and Wine
#     lacks (the thread-local directory, atexit), linked into every executable and DLL (see there).
# The CRT is Wine's ucrtbase.dll, entered through libwinecrt0.a / libucrtbase.a's mainCRTStartup
# and DllMainCRTStartup. /Zl keeps objects from asking for libcmt.lib and oldnames.lib (absent
# here); /GS- drops the stack cookie checks, whose __security_check_cookie only an MSVC CRT has.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(XMMAP_MSVC_TARGET x86_64-pc-windows-msvc)

set(XMMAP_MSVC_LEG msvc)
include("${CMAKE_CURRENT_LIST_DIR}/clang-cl-wine.cmake")
foreach(var XMMAP_LLD_LINK XMMAP_LLVM_RC XMMAP_LLVM_MT XMMAP_LLVM_NM)
  if(NOT ${var})
    message(FATAL_ERROR "msvc toolchain: ${var} not found beside ${XMMAP_CLANG_CL}")
  endif()
endforeach()
set(CMAKE_LINKER "${XMMAP_LLD_LINK}")
set(CMAKE_MT "${XMMAP_LLVM_MT}")
# The consumer test reads the DLL's export and import tables in GNU objdump's words (binutils on an
# x86-64 Debian host reads PE files).
find_program(XMMAP_PE_OBJDUMP NAMES objdump x86_64-w64-mingw32-objdump NO_CMAKE_FIND_ROOT_PATH)
set(CMAKE_OBJDUMP "${XMMAP_PE_OBJDUMP}")
set(CMAKE_NM "${XMMAP_LLVM_NM}")

# ---- Wine: PE import libraries ------------------------------------------------------------------
file(GLOB _xm_wine_lib_dirs LIST_DIRECTORIES true
  /usr/lib/*/wine/x86_64-windows /usr/lib/wine/x86_64-windows /usr/lib64/wine/x86_64-windows
  /usr/local/lib/wine/x86_64-windows /opt/wine-*/lib*/wine/x86_64-windows)
find_path(XMMAP_WINE_LIB_DIR NAMES libkernel32.a PATHS ${_xm_wine_lib_dirs}
  NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
if(NOT XMMAP_WINE_LIB_DIR)
  message(FATAL_ERROR "msvc toolchain: Wine's x86_64-windows import libraries not found; "
    "scripts/deps.sh msvc installs libwine-dev")
endif()

set(CMAKE_C_FLAGS_INIT "${_xm_cl_flags}")
set(CMAKE_CXX_FLAGS_INIT "${_xm_cl_flags}")

# ---- the support directory: .lib names and the CRT support object -------------------------------
# The first configure makes it in its build tree; try_compile projects inherit its path. The object
# is rebuilt by the configure after crt_support.c changes; programs linked before keep the old one
# until they are linked again (it is no build dependency of theirs).
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES XMMAP_MSVC_SUPPORT_DIR)
if(NOT XMMAP_MSVC_SUPPORT_DIR)
  set(XMMAP_MSVC_SUPPORT_DIR "${CMAKE_BINARY_DIR}/msvc-support")
endif()
set(_xm_crt_source "${CMAKE_CURRENT_LIST_DIR}/../msvc/crt_support.c")
set(_xm_crt_object "${XMMAP_MSVC_SUPPORT_DIR}/crt_support.obj")
if(NOT EXISTS "${XMMAP_MSVC_SUPPORT_DIR}/kernel32.lib" OR "${_xm_crt_source}" IS_NEWER_THAN "${_xm_crt_object}")
  file(MAKE_DIRECTORY "${XMMAP_MSVC_SUPPORT_DIR}")
  file(GLOB _xm_wine_libs "${XMMAP_WINE_LIB_DIR}/lib*.a")
  foreach(lib ${_xm_wine_libs})
    get_filename_component(name "${lib}" NAME_WE)
    string(REGEX REPLACE "^lib" "" name "${name}")
    file(CREATE_LINK "${lib}" "${XMMAP_MSVC_SUPPORT_DIR}/${name}.lib" SYMBOLIC)
  endforeach()
  separate_arguments(_xm_cl_args WINDOWS_COMMAND "${_xm_cl_flags}")
  execute_process(
    COMMAND "${XMMAP_CLANG_CL}" ${_xm_cl_args} /nologo /c /O2 /W4 /WX "/Tc${_xm_crt_source}"
            "/Fo${_xm_crt_object}"
    RESULT_VARIABLE _xm_rc OUTPUT_VARIABLE _xm_out ERROR_VARIABLE _xm_out)
  if(NOT _xm_rc EQUAL 0)
    message(FATAL_ERROR "msvc toolchain: compiling ${_xm_crt_source} failed:\n${_xm_out}")
  endif()
endif()

# Every program and DLL: the CRT (Wine's ucrtbase and crt_support.obj) and the Windows libraries
# CMake gives MSVC programs by default (MinGW's gcc links most of them by default too). The manifest
# tool is not needed (llvm-mt may lack libxml2): no manifests.
set(_xm_link_flags "/nodefaultlib /manifest:no /libpath:\"${XMMAP_MSVC_SUPPORT_DIR}\"")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_xm_link_flags} /entry:mainCRTStartup")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${_xm_link_flags} /entry:DllMainCRTStartup")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "${_xm_link_flags} /entry:DllMainCRTStartup")
set(CMAKE_C_STANDARD_LIBRARIES "\"${_xm_crt_object}\" winecrt0.lib ucrtbase.lib kernel32.lib user32.lib \
gdi32.lib winspool.lib shell32.lib ole32.lib oleaut32.lib uuid.lib comdlg32.lib advapi32.lib"
  CACHE STRING "Libraries linked by every C program and DLL (Wine's CRT, the TLS directory)" FORCE)
set(CMAKE_CXX_STANDARD_LIBRARIES "${CMAKE_C_STANDARD_LIBRARIES}"
  CACHE STRING "Libraries linked by every C++ program and DLL" FORCE)

# Debian's 64-bit Wine loader, as for mingw64 (cmake/XmmapTesting.cmake adds the prefix and server).
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/lib/wine/wine64)
