/* What `xmmap selftest`'s checks share: the outcome of a check, the macros that end it, and the
   helpers that build what checks exercise. */
#ifndef XMMAP_TOOL_SELFTEST_H
#define XMMAP_TOOL_SELFTEST_H

#include "tool.h"

enum outcome { PASSED, FAILED, SKIPPED };

struct check {
  enum outcome outcome;
  char note[512]; /* why it failed or was skipped, or a remark on a pass */
};

/* Records the check's outcome; the first problem is the one reported. */
void selftest_outcome(struct check *c, enum outcome o, const char *fmt, ...) TOOL_PRINTF(3, 4);
/* "XM_E_ACCESS", ...: statuses by name in failure notes. */
const char *selftest_status_name(int rc);
/* A failed call: XM_E_NOT_IMPLEMENTED skips the check with the library's reason, anything else
   fails it. */
void selftest_call_failed(struct check *c, const char *call, int rc);

/* The check macros jump to the check's `out:` label, where it frees what it took. */
#define OK(call)                                                                                                       \
  do {                                                                                                                 \
    int ok_rc_ = (call);                                                                                               \
    if (ok_rc_ != XM_OK) {                                                                                             \
      selftest_call_failed(c, #call, ok_rc_);                                                                          \
      goto out;                                                                                                        \
    }                                                                                                                  \
  } while (0)

#define EXPECT_STATUS(expected, call)                                                                                  \
  do {                                                                                                                 \
    int st_rc_ = (call);                                                                                               \
    if (st_rc_ != (expected)) {                                                                                        \
      if (st_rc_ == XM_E_NOT_IMPLEMENTED)                                                                              \
        selftest_outcome(c, SKIPPED, "%s", xm_errmsg());                                                               \
      else                                                                                                             \
        selftest_outcome(c, FAILED, "%s -> %s (%s), expected %s", #call, selftest_status_name(st_rc_), xm_errmsg(),    \
                         selftest_status_name(expected));                                                              \
      goto out;                                                                                                        \
    }                                                                                                                  \
  } while (0)

#define EXPECT(cond)                                                                                                   \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      selftest_outcome(c, FAILED, "line %d: %s is false", __LINE__, #cond);                                            \
      goto out;                                                                                                        \
    }                                                                                                                  \
  } while (0)

#define SKIP(...)                                                                                                      \
  do {                                                                                                                 \
    selftest_outcome(c, SKIPPED, __VA_ARGS__);                                                                         \
    goto out;                                                                                                          \
  } while (0)

/* n bytes of a fixed pseudo-random pattern chosen by seed. */
void selftest_fill(unsigned char *p, size_t n, unsigned seed);
/* An anonymous read-write mapping of size bytes. */
int selftest_anon(size_t size, xm_mapping **m);
/* A temporary file holding size bytes of a pattern, and the pattern (data) to compare with. */
struct pattern_file {
  tool_file f;
  unsigned char *data;
};
/* Makes pf with pattern seed; false (the check failed) when it cannot. Either way pf is then
   ready for selftest_file_close, so call it first in a check. */
bool selftest_file_open(struct check *c, struct pattern_file *pf, size_t size, unsigned seed);
void selftest_file_close(struct pattern_file *pf);

/* ---- the checks: what a mapping does (selftest_use.c) ---------------------------------------- */
void check_facts(struct check *c);
void check_errors(struct check *c);
void check_anonymous(struct check *c);
void check_slices(struct check *c);
void check_flush(struct check *c);
void check_msync(struct check *c);
void check_advice(struct check *c);
void check_protect(struct check *c);
void check_fault_safe(struct check *c);
void check_lock(struct check *c);

/* ---- the checks: ways to build one (selftest_build.c) ---------------------------------------- */
void check_file(struct check *c);
void check_private(struct check *c);
void check_unaligned_offset(struct check *c);
void check_shm(struct check *c);
void check_seals(struct check *c);
void check_shm_read_only(struct check *c);
void check_arena(struct check *c);
void check_guard_pages(struct check *c);
void check_fixed(struct check *c);
void check_align(struct check *c);
void check_huge_pages(struct check *c);
void check_external(struct check *c);

#endif /* XMMAP_TOOL_SELFTEST_H */
