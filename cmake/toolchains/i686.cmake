# i686: i686-linux-gnu gcc from Debian, tests under qemu-i386 with the Debian sysroot.
set(CMAKE_SYSTEM_PROCESSOR i686)
set(XMMAP_TRIPLE i686-linux-gnu)
set(XMMAP_QEMU qemu-i386)
include(${CMAKE_CURRENT_LIST_DIR}/linux-qemu.cmake)
