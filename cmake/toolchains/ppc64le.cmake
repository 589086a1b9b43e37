# ppc64le: powerpc64le-linux-gnu gcc from Debian, tests under qemu-ppc64le with the Debian sysroot.
set(CMAKE_SYSTEM_PROCESSOR ppc64le)
set(XMMAP_TRIPLE powerpc64le-linux-gnu)
set(XMMAP_QEMU qemu-ppc64le)
include(${CMAKE_CURRENT_LIST_DIR}/linux-qemu.cmake)
