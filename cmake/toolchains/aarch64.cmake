# aarch64: aarch64-linux-gnu gcc from Debian, tests under qemu-aarch64 with the Debian sysroot.
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(XMMAP_TRIPLE aarch64-linux-gnu)
set(XMMAP_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-qemu.cmake)
