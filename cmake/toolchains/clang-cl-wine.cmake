# Shared by the msvc and msvc-arm64 toolchains: clang-cl and its companions from one LLVM install
# (the newest found), and Wine's Windows headers (libwine-dev). The including toolchain sets
# XMMAP_MSVC_LEG (its name, for messages) and XMMAP_MSVC_TARGET (clang's target triple) first.
# Afterwards: CMAKE_C_COMPILER / CMAKE_CXX_COMPILER / CMAKE_AR set; XMMAP_LLD_LINK, XMMAP_LLVM_RC,
# XMMAP_LLVM_MT and XMMAP_LLVM_NM found or NOTFOUND (each leg checks what it needs);
# XMMAP_WINE_INCLUDE_DIR; and _xm_cl_flags, the compile flags both legs share: the target, /Zl (no
# default CRT library asked for: libcmt.lib and oldnames.lib do not exist here), /GS- (no stack
# cookie checks, whose helper only an MSVC CRT has) and the header folders.

# ---- LLVM ------------------------------------------------------------------------------------------
file(GLOB _xm_llvm_dirs LIST_DIRECTORIES true /usr/lib/llvm-*/bin)
list(SORT _xm_llvm_dirs COMPARE NATURAL ORDER DESCENDING)
find_program(XMMAP_CLANG_CL NAMES clang-cl HINTS ${_xm_llvm_dirs} NO_CMAKE_FIND_ROOT_PATH)
if(NOT XMMAP_CLANG_CL)
  message(FATAL_ERROR "${XMMAP_MSVC_LEG} toolchain: clang-cl not found (scripts/deps.sh msvc installs it)")
endif()
get_filename_component(_xm_llvm_bin "${XMMAP_CLANG_CL}" DIRECTORY)
foreach(tool lld-link llvm-lib llvm-rc llvm-mt llvm-nm)
  string(TOUPPER "${tool}" var)
  string(REPLACE "-" "_" var "XMMAP_${var}")
  find_program(${var} NAMES ${tool} HINTS "${_xm_llvm_bin}" NO_CMAKE_FIND_ROOT_PATH)
endforeach()
if(NOT XMMAP_LLVM_LIB)
  message(FATAL_ERROR "${XMMAP_MSVC_LEG} toolchain: llvm-lib not found beside ${XMMAP_CLANG_CL}")
endif()
set(CMAKE_C_COMPILER "${XMMAP_CLANG_CL}")
set(CMAKE_CXX_COMPILER "${XMMAP_CLANG_CL}")
set(CMAKE_AR "${XMMAP_LLVM_LIB}")
if(XMMAP_LLVM_RC)
  set(CMAKE_RC_COMPILER "${XMMAP_LLVM_RC}")
endif()

# ---- Wine: the Windows headers -----------------------------------------------------------------
find_path(XMMAP_WINE_INCLUDE_DIR NAMES windows/windows.h msvcrt/stdio.h
  PATHS /usr/include/wine/wine /usr/include/wine /usr/local/include/wine/wine /usr/local/include/wine
        /opt/wine-stable/include/wine /opt/wine-devel/include/wine
  NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
if(NOT XMMAP_WINE_INCLUDE_DIR)
  message(FATAL_ERROR "${XMMAP_MSVC_LEG} toolchain: Wine's Windows headers not found (scripts/deps.sh msvc "
    "installs libwine-dev)")
endif()

set(_xm_cl_flags "--target=${XMMAP_MSVC_TARGET} /Zl /GS-"
  " -imsvc \"${XMMAP_WINE_INCLUDE_DIR}/msvcrt\" -imsvc \"${XMMAP_WINE_INCLUDE_DIR}/windows\"")
string(JOIN "" _xm_cl_flags ${_xm_cl_flags})
