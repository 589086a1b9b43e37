/* The probe table that `xmmap info` prints and `xmmap selftest` consults before each check:
   every optional feature found by trying it, never assumed from the platform's name. */
#ifndef XMMAP_TOOL_PROBES_H
#define XMMAP_TOOL_PROBES_H

#include "tool.h"

enum tool_probe_state {
  TOOL_PROBE_YES,            /* offered here, and it worked */
  TOOL_PROBE_ABSENT,         /* not offered by this system or its configuration */
  TOOL_PROBE_BROKEN,         /* offered, but the library misbehaved: a defect */
  TOOL_PROBE_NOT_APPLICABLE, /* does not exist on this OS */
};

struct tool_finding {
  enum tool_probe_state state;
  char detail[240]; /* how it is done, or why it is not */
};

struct tool_probe {
  const char *key;   /* info's JSON name, and how selftest's checks name their probe */
  const char *label; /* info's text label */
  void (*run)(struct tool_finding *f);
};

extern const struct tool_probe tool_probes[];
extern const size_t tool_probe_count;

/* Runs the probe named key into *f; false when there is no such probe. */
bool tool_probe_run(const char *key, struct tool_finding *f);

/* Sets *f (a NULL detail is an empty one). */
void tool_found(struct tool_finding *f, enum tool_probe_state state, const char *detail);

/* ---- probes_posix.c / probes_windows.c (one is compiled) ------------------------------------- */
/* How this OS does what a probe tried, for the detail column. */
struct tool_os_words {
  const char *shm_with_seals, *shm_without_seals; /* what backs shared memory */
  const char *no_thp;                             /* why transparent huge pages are n/a */
  const char *prefetch, *lock;                    /* the calls behind async prefetch and locking */
  const char *lazy_commit, *huge_shm, *read_only; /* how the shm options are made */
};
extern const struct tool_os_words tool_os_words;
/* Windows placeholders (VirtualAlloc2 with MEM_RESERVE_PLACEHOLDER): n/a elsewhere. */
void tool_probe_placeholders(struct tool_finding *f);

#endif /* XMMAP_TOOL_PROBES_H */
