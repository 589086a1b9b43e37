# armhf: arm-linux-gnueabihf gcc from Debian, tests under qemu-arm with the Debian sysroot.
set(CMAKE_SYSTEM_PROCESSOR arm)
set(XMMAP_TRIPLE arm-linux-gnueabihf)
set(XMMAP_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/linux-qemu.cmake)
