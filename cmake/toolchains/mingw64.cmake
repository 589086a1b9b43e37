# Cross toolchain for mingw64: MinGW-w64 gcc (win32 threads) from Debian, tests run under Wine.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(XMMAP_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${XMMAP_TRIPLE}-gcc)
set(CMAKE_RC_COMPILER ${XMMAP_TRIPLE}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${XMMAP_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Programs are linked statically (libgcc and friends included) so that they need no MinGW DLL at
# run time, under Wine or copied to a real Windows machine.
set(CMAKE_EXE_LINKER_FLAGS_INIT -static)

# Debian's 64-bit Wine loader is not on PATH (/usr/bin/wine is a wrapper that also hints about
# wine32). cmake/XmmapTesting.cmake gives every Windows test a private WINEPREFIX and a persistent
# wineserver through a CTest fixture (see cmake/wine-server.sh).
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/lib/wine/wine64)
