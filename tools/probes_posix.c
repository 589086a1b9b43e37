/* The POSIX side of the probe table: how this OS does what the probes try (probes_windows.c has
   the same names). */
#include "probes.h"

const struct tool_os_words tool_os_words = {
    /* A memfd answers a seals query; shm_open's objects do not. */
    .shm_with_seals = "memfd",
    .shm_without_seals = "shm_open",
    .no_thp = "no /sys/kernel/mm/transparent_hugepage",
    .prefetch = "madvise(MADV_WILLNEED)",
    .lock = "mlock2(MLOCK_ONFAULT) or mlock",
    .lazy_commit = "memfd pages come on first touch (the flag changes nothing); commit = MADV_POPULATE_*, "
                   "decommit = MADV_REMOVE (zeros)",
    .huge_shm = "MFD_HUGETLB memfd",
    .read_only = "F_SEAL_FUTURE_WRITE + a read-only reopen through /proc/self/fd",
};

void tool_probe_placeholders(struct tool_finding *f) { tool_found(f, TOOL_PROBE_NOT_APPLICABLE, "Windows only"); }
