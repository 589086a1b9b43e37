# Cross toolchain for armhf: arm-linux-gnueabihf gcc from Debian, tests run under qemu-arm with the Debian sysroot.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(XMMAP_TRIPLE arm-linux-gnueabihf)
set(XMMAP_SYSROOT /usr/${XMMAP_TRIPLE})
set(CMAKE_C_COMPILER ${XMMAP_TRIPLE}-gcc)

set(CMAKE_FIND_ROOT_PATH ${XMMAP_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# No binfmt_misc: qemu is named explicitly. -L picks the sysroot's loader and libc; -E keeps the
# sysroot's libraries first even when other builds of libc are installed (multiarch).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L ${XMMAP_SYSROOT} -E LD_LIBRARY_PATH=${XMMAP_SYSROOT}/lib)
