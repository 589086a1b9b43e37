# Shared part of the Linux cross toolchains: Debian's <triple>-gcc and sysroot, tests under
# qemu user mode. The including file sets CMAKE_SYSTEM_PROCESSOR, XMMAP_TRIPLE and XMMAP_QEMU.
set(CMAKE_SYSTEM_NAME Linux)
set(XMMAP_SYSROOT /usr/${XMMAP_TRIPLE})
set(CMAKE_C_COMPILER ${XMMAP_TRIPLE}-gcc)

set(CMAKE_FIND_ROOT_PATH ${XMMAP_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# No binfmt_misc: qemu is named explicitly. -L picks the sysroot's loader and libc; -E keeps the
# sysroot's libraries first even when other builds of libc are installed (multiarch).
set(CMAKE_CROSSCOMPILING_EMULATOR ${XMMAP_QEMU} -L ${XMMAP_SYSROOT} -E LD_LIBRARY_PATH=${XMMAP_SYSROOT}/lib)
