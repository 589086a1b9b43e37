/* A record kept in a file through a mapping: map the file, write the record, flush its cache
 * lines (the step persistent memory needs), msync (the step every file needs), and check with
 * ordinary file I/O - through a descriptor of its own - that the bytes reached the file. Then map
 * it again read-only and find the record there too.
 *
 * Portable to Linux and Windows. Exits non-zero on any failure.
 *
 * Build: cc -std=c11 file_persist.c $(pkg-config --cflags --libs xmmap)
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
#include <fcntl.h>
#include <unistd.h>
#endif

struct record {
  char tag[8];
  uint32_t version;
  uint32_t count;
  uint64_t checksum;
};

static void check(int rc, const char *what) {
  if (rc != XM_OK) {
    fprintf(stderr, "file_persist: %s failed: %s (%s)\n", what, xm_strerror(rc), xm_errmsg());
    exit(1);
  }
}

static void expect(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "file_persist: %s\n", what);
    exit(1);
  }
}

/* ---- the little file I/O the example needs, per OS ---------------------------------------- */
/* create_file registers remove_file with atexit: a failure that exits early leaves no file. */
#ifdef _WIN32
static char path[MAX_PATH + 1];

/* Marks the file for deletion; it goes when the last handle to it closes. */
static void remove_file(void) { DeleteFileA(path); }

static xm_descriptor create_file(uint64_t size) {
  char dir[MAX_PATH + 1];
  DWORD n = GetTempPathA(sizeof dir, dir);
  expect(n > 0 && n < sizeof dir && GetTempFileNameA(dir, "xmp", 0, path), "no temporary file name");
  atexit(remove_file);
  HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  expect(h != INVALID_HANDLE_VALUE, "cannot create the file");
  LARGE_INTEGER end;
  end.QuadPart = (LONGLONG)size;
  expect(SetFilePointerEx(h, end, NULL, FILE_BEGIN) && SetEndOfFile(h), "cannot size the file");
  return h;
}

static void close_file(xm_descriptor d) { CloseHandle(d); }

/* Reads through a handle of its own, opened by name: what another process would see. */
static void read_back(void *buf, size_t len, uint64_t offset) {
  HANDLE h = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING,
                         FILE_ATTRIBUTE_NORMAL, NULL);
  expect(h != INVALID_HANDLE_VALUE, "cannot open the file again");
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD)offset;
  ov.OffsetHigh = (DWORD)(offset >> 32);
  DWORD done = 0;
  expect(ReadFile(h, buf, (DWORD)len, &done, &ov) && done == len, "cannot read the file back");
  CloseHandle(h);
}
#else
static char path[512];

static void remove_file(void) { unlink(path); }

static xm_descriptor create_file(uint64_t size) {
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/file-persist-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  expect(fd >= 0, "cannot create the file");
  atexit(remove_file);
  expect(ftruncate(fd, (off_t)size) == 0, "cannot size the file");
  return fd;
}

static void close_file(xm_descriptor d) { close(d); }

static void read_back(void *buf, size_t len, uint64_t offset) {
  int fd = open(path, O_RDONLY);
  expect(fd >= 0, "cannot open the file again");
  expect(pread(fd, buf, len, (off_t)offset) == (ssize_t)len, "cannot read the file back");
  close(fd);
}
#endif

static uint64_t checksum(const void *p, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
  return h;
}

int main(void) {
  const size_t size = 2 * xm_allocation_granularity();
  const size_t record_at = size / 2 + 12; /* anywhere: the accessors take unaligned offsets */
  const size_t text_at = 64;
  const char text[] = "written through a mapping, read through a file descriptor";

  xm_descriptor file = create_file(size);
  xm_builder b = xm_builder_new(size);
  xm_builder_from_file(&b, file);
  xm_mapping *m = NULL;
  check(xm_builder_build(&b, &m), "mapping the file");
  printf("mapped %zu bytes of %s at %p\n", xm_mapping_size(m), path, xm_mapping_ptr(m));

  /* 1. Write: a bounds-checked object and a slice of bytes. */
  struct record rec;
  memset(&rec, 0, sizeof rec);
  memcpy(rec.tag, "XMRECORD", 8);
  rec.version = 1;
  rec.count = 42;
  rec.checksum = checksum(text, sizeof text);
  check(XM_WRITE_OBJ(m, record_at, &rec), "writing the record");
  size_t copied = 0;
  check(xm_mapping_write_slice(m, text, sizeof text, text_at, &copied), "writing the text");
  expect(copied == sizeof text, "short write");
  expect(XM_WRITE_OBJ(m, size - 4, &rec) == XM_E_INVALID_ADDRESS, "a write past the end was accepted");

  /* 2. Flush the record's cache lines: clean to the point of coherency, then the barrier. On
     persistent memory (DAX) this alone makes the record durable. Where user space cannot clean
     lines (32-bit Arm, RISC-V without Zicbom), the library says so and msync does the work. */
  int rc = xm_mapping_flush_region(m, record_at, sizeof rec);
  if (rc == XM_E_NOT_IMPLEMENTED)
    printf("flush_region: not on this CPU (%s); msync alone makes the record durable\n", xm_errmsg());
  else
    check(rc, "flushing the record's cache lines");

  /* 3. msync: write the dirty pages back to the file and wait for it. */
  check(xm_mapping_msync(m), "msync");

  /* 4. Verify with ordinary file I/O. */
  struct record on_disk;
  char text_on_disk[sizeof text];
  read_back(&on_disk, sizeof on_disk, record_at);
  read_back(text_on_disk, sizeof text_on_disk, text_at);
  expect(memcmp(&on_disk, &rec, sizeof rec) == 0, "the record did not reach the file");
  expect(memcmp(text_on_disk, text, sizeof text) == 0, "the text did not reach the file");
  expect(on_disk.checksum == checksum(text_on_disk, sizeof text_on_disk), "checksum mismatch");
  printf("record \"%.8s\" v%u count %u and %zu bytes of text are in the file\n", on_disk.tag, (unsigned)on_disk.version,
         (unsigned)on_disk.count, sizeof text);
  xm_mapping_free(m);

  /* 5. A new, read-only mapping finds the record; it refuses writes instead of crashing. */
  b = xm_builder_new(size);
  xm_builder_from_file(&b, file);
  xm_builder_protection(&b, XM_PROT_READ);
  check(xm_builder_build(&b, &m), "mapping the file read-only");
  struct record again;
  check(XM_READ_OBJ(m, record_at, &again), "reading the record");
  expect(memcmp(&again, &rec, sizeof rec) == 0, "the record differs in a new mapping");
  expect(XM_WRITE_OBJ(m, record_at, &again) == XM_E_ACCESS, "a read-only mapping accepted a write");
  xm_mapping_free(m);

  close_file(file);
  printf("file_persist: ok\n");
  return 0;
}
