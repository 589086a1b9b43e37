/* `xmmap bench`: fixed workloads (bench_workloads.c), each interleaved round by round with its raw
   baseline (the same work in plain libc / Win32 calls or the arch unit's own loop) in the same
   process. This file is the command: its options and the rounds; bench_report.c turns the rounds
   into medians, p10/p90, the ratio to the baseline and page faults per iteration, and prints
   them. The goals are reported, not asserted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const char bench_help[] =
    "usage: xmmap bench [--quick] [--json] [--dir DIR]\n"
    "\n"
    "Runs fixed workloads (fixed sizes and seeds), each interleaved round by round with its raw\n"
    "baseline - the same work in plain mmap/munmap/memfd/msync (POSIX) or CreateFileMapping/\n"
    "MapViewOfFile/UnmapViewOfFile/FlushViewOfFile (Windows) calls - in this process:\n"
    "  1. checked u64 read+write at offsets from an L1-resident table, aligned and odd\n"
    "     (baseline: unchecked memcpy)                                     goal: ratio <= 1.20\n"
    "  2. read_slice / write_slice of 4 KiB, 64 KiB, 1 MiB (baseline: memcpy)\n"
    "                                                           goal: >= 0.90 of memcpy's GB/s\n"
    "  3. read_slice_safe of 4 KiB and 1 MiB, the fault-safe copy (baseline: memcpy)\n"
    "                                           goal: 1 MiB <= 1.10; 4 KiB tracked, must not grow\n"
    "  4. create+destroy a 4 KiB anonymous mapping (baseline: the same mapping raw)  <= 1.10\n"
    "  5. create+destroy a 1 MiB shared-memory object and its mapping               <= 1.10\n"
    "  6. map a 1 MiB file, write it, unmap; and the same with msync\n"
    "     (baseline: a 2 MiB-aligned raw mapping)      goal: faults/iter <= the baseline's\n"
    "  7. flush a dirty 1 MiB region and a dirty 4 KiB object (baseline: the library's own\n"
    "     clean loop + fence, inlined here; n/a where the library has no flush)     <= 1.05\n"
    "     (the 4 KiB figure includes dirtying its lines, one store each: a single flush is\n"
    "     too short to time alone)\n"
    "  8. msync of a clean and of a dirty 1 MiB file mapping                        <= 1.02\n"
    "  9. JIT code: write 4 KiB / 64 KiB and make it executable, dual view and toggle\n"
    "     (baseline: memcpy into a read-write-execute buffer + the compiler's cache clear) <= 1.10\n"
    " 10. fault round trip: protect a page, touch it, a hook lifts the protection, with 1 hook\n"
    "     and among 10,000 (baseline: a raw signal / vectored handler calling mprotect /\n"
    "     VirtualProtect)                                                            <= 1.10\n"
    " 11. write tracking over 1 GiB, 1% of the pages written per round, per strategy\n"
    "     (uffd-wp where the kernel has it, protect always): the writes (first-write faults)\n"
    "     and xm_dirty_collect per round (baseline: the same strategy in raw userfaultfd +\n"
    "     PAGEMAP_SCAN / mprotect + a signal handler, or VirtualProtect + an exception handler)\n"
    "                                                                              <= 1.20\n"
    " 12. the checked u64 and 4 KiB slice workloads through the C++ header's owner\n"
    "     (xmmap::mapping::read_obj/write_obj/read_slice/write_slice; baseline: the same loops\n"
    "     with the C calls; n/a when built without a C++ compiler)          goal: within 2%\n"
    " 13. arena: add+remove of a one-unit piece among 100, 10,000 and 30,000 pieces of one\n"
    "     object (baseline: the same two mmap / MapViewOfFile calls raw)     among 100: <= 1.30\n"
    "     among 30,000 against among 100, both arenas round by round               <= 1.50\n"
    "     one unit, scattered over a 512 GiB arena against a 1 GiB one             <= 1.50\n"
    "Prints the environment (CPU, flags, line size, kernel, THP mode, the temporary directory's\n"
    "file system) and a table: workload | median | p10 | p90 | baseline median | ratio |\n"
    "faults/iter. ratio = xmmap / baseline (for time lower is better, for GB/s higher is better).\n"
    "Under Wine (or qemu-user) the figures are labelled as emulated. A progress line goes to stderr when it is a\n"
    "terminal.\n"
    "\n"
    "options:\n"
    "  --quick     5 rounds and smaller counts: the whole run within 2 minutes\n"
    "              (default: 9 rounds, within 5 minutes)\n"
    "  --json      one JSON object: {\"workloads\": [{\"name\", \"unit\", \"median\", \"p10\", \"p90\",\n"
    "              \"baseline\", \"ratio\", \"faults_per_iter\", \"baseline_faults_per_iter\"}...],\n"
    "              \"env\": {...}}\n"
    "  --dir DIR   where the file workloads put their file (default: the temporary directory)\n"
    "  --smoke     tiny counts, for tests of the tool itself: the figures mean nothing\n"
    "  --only TEXT only the workloads whose name contains TEXT\n"
    "  -h, --help  this text\n"
    "\n"
    "exit status: 0 every workload ran, 1 a workload failed, 2 usage error\n";

static void progress(const struct bench_options *o, size_t index, const char *name, const char *what) {
  if (!o->progress) return;
  char line[160];
  tool_format(line, sizeof line, "[%2zu/%zu] %s: %s", index + 1, bench_workload_count, name, what);
  fprintf(stderr, "\r%-79.79s", line);
  fflush(stderr);
}

/* One side of one round: the metric and the faults per iteration. */
static int run_side(struct bench *b, run_fn fn, uint64_t iters, double *seconds, double *faults) {
  uint64_t f0 = tool_page_faults();
  int rc = fn(b, iters, seconds);
  *faults = (double)(tool_page_faults() - f0) / (double)iters;
  return rc;
}

static void run_workload(const struct bench_options *o, size_t index, struct result *res) {
  const struct workload *w = &bench_workloads[index];
  struct bench *b = calloc(1, sizeof *b);
  memset(res, 0, sizeof *res);
  if (!b) {
    res->failed = true;
    tool_format(res->note, sizeof res->note, "out of memory");
    return;
  }
  tool_file_init(&b->file);
  b->dir = o->dir;
  b->param = w->param;
  b->smoke = o->smoke;
  double *xs = calloc(o->rounds, sizeof *xs), *bs = calloc(o->rounds, sizeof *bs);
  double faults_sum = 0, base_faults_sum = 0;
  int rc = xs && bs ? 0 : bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  if (!rc) {
    progress(o, index, w->name, "setup");
    rc = w->setup(b, w);
  }

  uint64_t iters = o->quick ? w->iters_quick : w->iters_full;
  if (o->smoke) iters = iters / 2000 ? iters / 2000 : 1;
  bool baseline_ok = true;
  if (!rc) {
    /* Warm-up (not recorded), which also sizes the rounds to the time budget. */
    progress(o, index, w->name, "warm-up");
    uint64_t warm = iters / 20 ? iters / 20 : 1;
    double sx = 0, sb = 0, f;
    rc = run_side(b, w->xm, warm, &sx, &f);
    if (!rc) {
      int brc = run_side(b, w->raw, warm, &sb, &f);
      if (brc == XM_E_NOT_IMPLEMENTED) {
        baseline_ok = false;
        tool_format(res->note, sizeof res->note, "baseline n/a: %s", b->error);
      } else if (brc) {
        rc = brc;
      }
    }
    double per_op = (sx > sb ? sx : sb) / (double)warm;
    if (!rc && per_op > 0 && per_op * (double)iters > o->budget) {
      uint64_t fit = (uint64_t)(o->budget / per_op);
      iters = fit > 1 ? fit : 1;
    }
  }
  for (unsigned r = 0; !rc && r < o->rounds; r++) {
    char what[64];
    tool_format(what, sizeof what, "round %u/%u", r + 1, o->rounds);
    progress(o, index, w->name, what);
    /* Alternate which side goes first, so neither always runs on a warmer machine. */
    for (int side = 0; !rc && side < 2; side++) {
      bool xm_side = (side == 0) == (r % 2 == 0);
      double seconds = 0, faults = 0;
      if (xm_side) {
        rc = run_side(b, w->xm, iters, &seconds, &faults);
        xs[r] = bench_metric(w, iters, seconds);
        faults_sum += faults;
      } else if (baseline_ok) {
        rc = run_side(b, w->raw, iters, &seconds, &faults);
        bs[r] = bench_metric(w, iters, seconds);
        base_faults_sum += faults;
      }
    }
  }
  if (rc == XM_E_NOT_IMPLEMENTED) {
    res->not_available = true;
    tool_format(res->note, sizeof res->note, "n/a: %s", b->error);
  } else if (rc) {
    res->failed = true;
    tool_format(res->note, sizeof res->note, "failed: %s", b->error);
  } else {
    bench_sort(xs, o->rounds);
    res->median = bench_quantile(xs, o->rounds, 0.5);
    res->p10 = bench_quantile(xs, o->rounds, 0.1);
    res->p90 = bench_quantile(xs, o->rounds, 0.9);
    res->faults = faults_sum / o->rounds;
    res->no_baseline = !baseline_ok;
    if (baseline_ok) {
      bench_sort(bs, o->rounds);
      res->baseline = bench_quantile(bs, o->rounds, 0.5);
      res->baseline_faults = base_faults_sum / o->rounds;
    }
  }
  bench_teardown(b);
  if (b->sink == 0x5eed) fputc('\0', stderr); /* keeps the work observable */
  free(xs);
  free(bs);
  free(b);
}

int tool_bench(int argc, char **argv) {
  struct bench_options o = {false, false, false, false, NULL, NULL, 9, 1.0};
  for (int i = 1; i < argc; i++) {
    if (tool_is_help(argv[i])) {
      fputs(bench_help, stdout);
      return TOOL_EXIT_OK;
    }
    if (strcmp(argv[i], "--quick") == 0) {
      o.quick = true;
    } else if (strcmp(argv[i], "--json") == 0) {
      o.json = true;
    } else if (strcmp(argv[i], "--smoke") == 0) {
      o.smoke = true;
    } else if (strcmp(argv[i], "--only") == 0) {
      if (i + 1 >= argc) return tool_usage_error("bench", "--only needs a part of a workload's name");
      o.only = argv[++i];
    } else if (strcmp(argv[i], "--dir") == 0) {
      if (i + 1 >= argc) return tool_usage_error("bench", "--dir needs a directory");
      o.dir = argv[++i];
    } else {
      return tool_usage_error("bench", "unknown option '%s'", argv[i]);
    }
  }
  if (!o.dir) o.dir = tool_temp_dir();
  if (o.quick || o.smoke) {
    o.rounds = 5;
    o.budget = o.smoke ? 0.02 : 0.3;
  }
  o.progress = tool_stderr_is_terminal();

  struct result *res = calloc(bench_workload_count, sizeof *res);
  if (!res) {
    fprintf(stderr, "xmmap bench: out of memory\n");
    return TOOL_EXIT_FAILED;
  }
  bool failed = false;
  for (size_t i = 0; i < bench_workload_count; i++) {
    if (o.only && !strstr(bench_workloads[i].name, o.only)) {
      res[i].not_selected = true;
      continue;
    }
    run_workload(&o, i, &res[i]);
    failed |= res[i].failed;
  }
  /* The file workloads fault hundreds of pages in: a counter that never moved is not counting
     (Wine keeps PageFaultCount at 0). */
  bool faults_counted = tool_page_faults() != 0;
  if (!faults_counted) {
    for (size_t i = 0; i < bench_workload_count; i++)
      res[i].faults = res[i].baseline_faults = (double)NAN;
  }
  if (o.progress) fprintf(stderr, "\r%79s\r", "");

  bench_report(&o, res, faults_counted);
  free(res);
  return failed ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
}
