/* Guest memory as a VMM lays it out with xmmap: one shared-memory object is the guest's RAM,
 * mapped twice (the VMM's read-write view and a device process's read-only view), and an arena -
 * a reserved window of guest-physical address space - into which RAM, a scratch page and a
 * firmware file are mapped at fixed offsets and removed again.
 *
 * Portable to Linux and Windows: arena offsets are multiples of xm_allocation_granularity()
 * (64 KiB on Windows, the page size elsewhere), and on Windows xm_arena_add_fd takes a section
 * (file-mapping) handle, so the firmware file gets a section there. Exits non-zero on any failure.
 *
 * Build: cc -std=c11 guest_memory.c $(pkg-config --cflags --libs xmmap)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xmmap/xmmap.h>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <unistd.h>
#endif

/* Stops the program with the library's message when a call fails. */
static void check(int rc, const char *what) {
  if (rc != XM_OK) {
    fprintf(stderr, "guest_memory: %s failed: %s (%s)\n", what, xm_strerror(rc), xm_errmsg());
    exit(1);
  }
}

static void expect(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "guest_memory: %s\n", what);
    exit(1);
  }
}

/* A firmware image: a temporary file holding len bytes of data, deleted when closed. On Windows
   *section is a read-only section of it (what xm_arena_add_fd takes there); elsewhere the fd. */
static xm_descriptor open_firmware(const unsigned char *data, size_t len, xm_descriptor *section) {
#ifdef _WIN32
  char dir[MAX_PATH + 1], path[MAX_PATH + 1];
  DWORD n = GetTempPathA(sizeof dir, dir);
  expect(n > 0 && n < sizeof dir && GetTempFileNameA(dir, "fw", 0, path), "no temporary file name");
  HANDLE file = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE, NULL,
                            CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, NULL);
  expect(file != INVALID_HANDLE_VALUE, "cannot create the firmware file");
  DWORD done = 0;
  expect(WriteFile(file, data, (DWORD)len, &done, NULL) && done == len, "cannot write the firmware file");
  *section = CreateFileMappingA(file, NULL, PAGE_READONLY, 0, 0, NULL);
  expect(*section != NULL, "cannot create a section of the firmware file");
  return file;
#else
  const char *tmp = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/guest-firmware-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  expect(fd >= 0, "cannot create the firmware file");
  unlink(path); /* the descriptor keeps it alive */
  expect(write(fd, data, len) == (ssize_t)len, "cannot write the firmware file");
  *section = fd;
  return fd;
#endif
}

static void close_firmware(xm_descriptor file, xm_descriptor section) {
#ifdef _WIN32
  CloseHandle(section);
  CloseHandle(file);
#else
  (void)section;
  close(file);
#endif
}

int main(void) {
  const size_t unit = xm_allocation_granularity();
  const size_t ram_size = 8 * unit;
  printf("xmmap %s (%s back end): allocation granularity %zu bytes\n", xm_version(), xm_backend_name(), unit);

  /* 1. Guest RAM: one shared-memory object, mapped twice. */
  xm_shm *ram = NULL;
  check(xm_shm_new("guest-ram", ram_size, &ram), "xm_shm_new");

  xm_builder b = xm_builder_new(ram_size);
  xm_builder_from_shm(&b, ram);
  xm_mapping *vmm_view = NULL, *device_view = NULL;
  check(xm_builder_build(&b, &vmm_view), "mapping the VMM's view");
  xm_builder_protection(&b, XM_PROT_READ); /* the device process only reads */
  check(xm_builder_build(&b, &device_view), "mapping the device's view");

  const uint64_t boot_magic = 0x544f4f42u; /* "BOOT" */
  check(XM_WRITE_OBJ(vmm_view, 0x100, &boot_magic), "writing through the VMM's view");
  uint64_t seen = 0;
  check(XM_READ_OBJ(device_view, 0x100, &seen), "reading through the device's view");
  expect(seen == boot_magic, "the two views do not show the same memory");
  expect(XM_WRITE_OBJ(device_view, 0x100, &seen) == XM_E_ACCESS, "the read-only view accepted a write");
  printf("guest RAM: %zu bytes, one object mapped twice at %p and %p\n", ram_size, xm_mapping_ptr(vmm_view),
         xm_mapping_ptr(device_view));

  /* 2. A firmware image in a file. */
  unsigned char *firmware = malloc(2 * unit);
  expect(firmware != NULL, "out of memory");
  for (size_t i = 0; i < 2 * unit; i++)
    firmware[i] = (unsigned char)(i * 7 + 1);
  memcpy(firmware, "FIRMWARE", 8);
  xm_descriptor section;
  xm_descriptor fw_file = open_firmware(firmware, 2 * unit, &section);

  /* 3. The guest-physical window: RAM at 0, a scratch page after it, firmware at the top. */
  const size_t window = 16 * unit, ram_at = 0, scratch_at = 8 * unit, rom_at = 14 * unit;
  xm_arena *arena = NULL;
  check(xm_arena_new(window, &arena), "xm_arena_new");
  unsigned char *guest = xm_region_ptr(xm_arena_region(arena));
  check(xm_arena_add_fd(arena, ram_at, ram_size, xm_shm_descriptor(ram), 0, XM_PROT_READ_WRITE),
        "mapping guest RAM into the arena");
  check(xm_arena_add_anon(arena, scratch_at, unit, XM_PROT_READ_WRITE), "adding anonymous memory");
  check(xm_arena_add_fd(arena, rom_at, 2 * unit, section, 0, XM_PROT_READ), "mapping the firmware");

  uint64_t in_window;
  memcpy(&in_window, guest + ram_at + 0x100, sizeof in_window);
  expect(in_window == boot_magic, "the arena's RAM does not show the shared-memory object");
  memcpy(guest + ram_at + 0x200, "hello", 6); /* a guest write, seen by the VMM */
  char hello[6];
  check(xm_mapping_read_obj(vmm_view, hello, sizeof hello, 0x200), "reading the guest's write");
  expect(strcmp(hello, "hello") == 0, "the VMM does not see the guest's write");
  memset(guest + scratch_at, 0xcc, unit);
  expect(memcmp(guest + rom_at, firmware, 2 * unit) == 0, "the firmware in the arena differs from the file");
  printf("arena: %zu bytes at %p: RAM at +0x%zx, scratch at +0x%zx, firmware \"%.8s\" at +0x%zx\n", window,
         (void *)guest, ram_at, scratch_at, (const char *)(guest + rom_at), rom_at);

  /* Offsets must be multiples of the granularity; the error names the unit. */
  expect(xm_arena_add_anon(arena, scratch_at + 1, unit, XM_PROT_READ_WRITE) == XM_E_NOT_PAGE_ALIGNED,
         "an unaligned arena offset was accepted");

  /* 4. Hot-unplug: removed ranges become inaccessible reserved space again. */
  check(xm_arena_remove(arena, rom_at, 2 * unit), "removing the firmware");
  check(xm_arena_remove(arena, scratch_at, unit), "removing the scratch page");
  check(xm_arena_add_anon(arena, rom_at, unit, XM_PROT_READ), "re-using a removed range");

  xm_arena_free(arena);
  close_firmware(fw_file, section);
  free(firmware);
  xm_mapping_free(device_view);
  xm_mapping_free(vmm_view);
  xm_shm_free(ram);
  printf("guest_memory: ok\n");
  return 0;
}
