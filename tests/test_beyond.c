/* Beyond crosvm: offsets past 4 GiB on every target, huge pages by probe, guard pages and
   protection changes that really fault. */
#include "xmtest.h"

#ifndef _WIN32
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

/* Runs a read (or write) of addr in a child process and returns the signal that ended it: 0 if
   none, -1 if the child did not end within 20 s (qemu-i386 7.2 can spin on a fault in a forked
   child instead of delivering it). */
static int child_fault_signal(volatile uint8_t *addr, int write) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL); /* not cmocka's handlers: the child must die of the fault */
    signal(SIGBUS, SIG_DFL);
    if (write)
      *addr = 1;
    else
      xt_touch(addr);
    _exit(0);
  }
  int status = 0;
  for (int waited_ms = 0; waitpid(pid, &status, WNOHANG) == 0; waited_ms += 10) {
    if (waited_ms >= 20000) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(10000);
  }
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}
#else
/* The protection Windows reports for the page at addr (PAGE_NOACCESS when access would fault). */
static DWORD page_protection(const void *addr, DWORD *state) {
  MEMORY_BASIC_INFORMATION mbi;
  assert_int_equal(VirtualQuery(addr, &mbi, sizeof mbi), sizeof mbi);
  *state = mbi.State;
  return mbi.Protect;
}
#endif

/* Asserts that touching addr faults (a free or reserved page, or one made inaccessible). owner,
   the mapping addr lies in or next to, is freed before a skip. */
static void assert_faults(xm_mapping *owner, void *addr) {
#ifdef _WIN32
  (void)owner; /* nothing here can skip */
  DWORD state = 0, prot = page_protection(addr, &state);
  if (state == MEM_COMMIT) assert_int_equal(prot & 0xff, PAGE_NOACCESS);
  else assert_true(state == MEM_RESERVE || state == MEM_FREE);
#else
  int sig = child_fault_signal(addr, 0);
  if (sig == -1) {
    xm_mapping_free(owner);
    XT_SKIP("a faulting child process never ended here (qemu-i386 spins on the fault)");
  }
  assert_true(sig == SIGSEGV || sig == SIGBUS);
#endif
}

static void assert_accessible(xm_mapping *owner, void *addr) {
#ifdef _WIN32
  (void)owner;
  DWORD state = 0, prot = page_protection(addr, &state);
  assert_int_equal(state, MEM_COMMIT);
  assert_int_not_equal(prot & 0xff, PAGE_NOACCESS);
#else
  int sig = child_fault_signal(addr, 0);
  if (sig == -1) {
    xm_mapping_free(owner);
    XT_SKIP("a child process never ended here (qemu-i386 spins on a fault)");
  }
  assert_int_equal(sig, 0);
#endif
}

/* A sparse file with marker bytes at 4 GiB + 1; mapped at that offset on 32-bit targets too. */
static void offsets_past_4gib(void **state) {
  (void)state;
  const uint64_t where = (UINT64_C(1) << 32) + 1;
  const char marker[] = "past four GiB";
  xm_descriptor f = xt_temp_file("", 0, 1);
#ifdef _WIN32
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD)where;
  ov.OffsetHigh = (DWORD)(where >> 32);
  DWORD done = 0;
  DWORD sparse_bytes = 0;
  DeviceIoControl(f, FSCTL_SET_SPARSE, NULL, 0, NULL, 0, &sparse_bytes, NULL); /* best effort */
  if (!WriteFile(f, marker, sizeof marker, &done, &ov)) {
    DWORD error = GetLastError();
    xt_close(f);
    XT_SKIP("this filesystem cannot hold a 4 GiB file (error %lu)", (unsigned long)error);
  }
#else
  if (pwrite(f, marker, sizeof marker, (off_t)where) != (ssize_t)sizeof marker) {
    xt_close(f);
    XT_SKIP("this filesystem cannot hold a sparse 4 GiB file");
  }
  /* Probe the system itself: qemu-user before 8.1 truncates a 32-bit guest's mmap offset to 32
     bits, so raw mmap at 4 GiB shows the file's first page there. */
  long page = sysconf(_SC_PAGESIZE);
  unsigned char *raw = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, f, (off_t)(where - 1));
  assert_true(raw != MAP_FAILED);
  int honoured = raw[1] == (unsigned char)marker[0];
  munmap(raw, (size_t)page);
  if (!honoured) {
    xt_close(f);
    XT_SKIP("this system's mmap ignores file offset bits above 32 (raw mmap at 4 GiB shows other bytes)");
  }
#endif
  const uint64_t offsets[] = {where, where - 1, (UINT64_C(1) << 32)};
  for (size_t i = 0; i < 3; i++) {
    xm_builder b = xm_builder_new((size_t)(where - offsets[i]) + sizeof marker); /* up to the file's end */
    xm_builder_from_file(&b, f);
    xm_builder_offset(&b, offsets[i]);
    xm_builder_protection(&b, XM_PROT_READ);
    xm_mapping *m = NULL;
    XT_OK(xm_builder_build(&b, &m));
    char got[sizeof marker];
    XT_OK(xm_mapping_read_slice(m, got, sizeof got, (size_t)(where - offsets[i]), NULL));
    assert_memory_equal(got, marker, sizeof marker);
    xm_mapping_free(m);
  }
  xt_close(f);
}

static void huge_pages(void **state) {
  (void)state;
  const size_t size = 2u << 20;
  xm_builder b = xm_builder_new(size);
  xm_builder_huge_pages(&b, 0);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_E_SYSTEM_CALL || rc == XM_E_NOT_IMPLEMENTED)
    XT_SKIP("huge pages unavailable here: %s", xm_errmsg()); /* the probe is the build itself */
  XT_OK(rc);
  uint64_t v = 42, r = 0;
  XT_OK(XM_WRITE_OBJ(m, size - 8, &v));
  XT_OK(XM_READ_OBJ(m, size - 8, &r));
  assert_int_equal(r, 42);
  xm_mapping_free(m);
  xm_builder_huge_pages(&b, 3 * 1024 * 1024); /* not a power of two */
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, &m));
}

static void guard_pages_fault(void **state) {
  (void)state;
  size_t gran = xm_allocation_granularity(), page = xm_page_size();
  xm_builder b = xm_builder_new(gran);
  xm_builder_guard_pages(&b, 2);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  uint8_t *p = xm_mapping_ptr(m);
  assert_accessible(m, p);
  assert_accessible(m, p + gran - 1);
  assert_faults(m, p - 1);
  assert_faults(m, p - 2 * page);
  assert_faults(m, p + gran);
  assert_faults(m, p + gran + page);
  xm_mapping_free(m);
}

static void protect_really_faults(void **state) {
  (void)state;
  size_t page = xm_page_size();
  xm_mapping *m = xt_anon(3 * page);
  uint8_t *p = xm_mapping_ptr(m);
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_NONE));
  assert_accessible(m, p);
  assert_faults(m, p + page);
  assert_accessible(m, p + 2 * page);
  uint8_t v = 0;
  XT_STATUS(XM_E_ACCESS, XM_READ_OBJ(m, page, &v));
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ_WRITE));
  assert_accessible(m, p + page);
  XT_OK(XM_READ_OBJ(m, page, &v));
  xm_mapping_free(m);
}

/* Mapping past the end of a file: POSIX maps it (pages past the end fault); Windows grows the
   file for a writable section and refuses a read-only one. */
static void past_end_of_file(void **state) {
  (void)state;
  size_t gran = xm_allocation_granularity();
  xm_descriptor f = xt_temp_file("abc", 3, 0);
  xm_builder b = xm_builder_new(2 * gran);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_READ);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
#ifdef _WIN32
  assert_int_equal(rc, XM_E_SYSTEM_CALL);
  xt_close(f);
#else
  XT_OK(rc);
  xt_close(f); /* the mapping keeps the file: nothing is left open if the fault check skips */
  char got[3];
  XT_OK(xm_mapping_read_slice(m, got, 3, 0, NULL));
  assert_memory_equal(got, "abc", 3);
  assert_faults(m, (uint8_t *)xm_mapping_ptr(m) + gran);
  xm_mapping_free(m);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(offsets_past_4gib),  cmocka_unit_test(huge_pages),
      cmocka_unit_test(guard_pages_fault),  cmocka_unit_test(protect_really_faults),
      cmocka_unit_test(past_end_of_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
