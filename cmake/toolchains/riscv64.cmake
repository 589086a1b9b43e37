# riscv64: riscv64-linux-gnu gcc from Debian, tests under qemu-riscv64 with the Debian sysroot.
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(XMMAP_TRIPLE riscv64-linux-gnu)
set(XMMAP_QEMU qemu-riscv64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-qemu.cmake)
