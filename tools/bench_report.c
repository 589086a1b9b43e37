/* `xmmap bench`'s statistics and output: the figures of each round, their quantiles, the ratio to
   the baseline and the goals, printed as a table or as one JSON object. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

static const char *const unit_names[] = {"ns/op", "us/op", "GB/s"};

double bench_metric(const struct workload *w, uint64_t iters, double seconds) {
  if (seconds <= 0) seconds = 1e-9;
  switch (w->unit) {
  case NS_PER_OP: return seconds / (double)iters * 1e9;
  case US_PER_OP: return seconds / (double)iters * 1e6;
  case GB_PER_S: return (double)w->param * (double)iters / seconds / 1e9;
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_sort(double *values, size_t n) { qsort(values, n, sizeof *values, cmp_double); }

double bench_quantile(const double *sorted, size_t n, double q) {
  double pos = q * (double)(n - 1);
  size_t lo = (size_t)pos;
  if (lo + 1 >= n) return sorted[n - 1];
  double frac = pos - (double)lo;
  return sorted[lo] * (1 - frac) + sorted[lo + 1] * frac;
}

/* What the figures were measured on, printed above them. */
struct env {
  char cpu[128], flags[96], os[256], thp[64], fs[96], emulated[96];
  const char *dir;
  bool faults_counted;
};

static void collect_env(struct env *e, const char *dir, bool faults_counted) {
  tool_cpu_model(e->cpu, sizeof e->cpu);
  tool_cpu_flags(e->flags, sizeof e->flags);
  tool_os_description(e->os, sizeof e->os);
  tool_thp_mode(e->thp, sizeof e->thp);
  tool_fs_type(dir, e->fs, sizeof e->fs);
  const char *emulator = tool_emulator();
  e->emulated[0] = '\0';
  if (emulator) tool_format(e->emulated, sizeof e->emulated, "%s", emulator);
  e->dir = dir;
  e->faults_counted = faults_counted;
}

static double ratio_of(const struct result *r) {
  if (r->failed || r->not_available || r->no_baseline || r->baseline <= 0) return -1;
  return r->median / r->baseline;
}

/* "met", "missed", "tracked" (a figure without a goal) or "" (no figure). */
static const char *goal_state(const struct workload *w, const struct result *r) {
  double ratio = ratio_of(r);
  switch (w->goal) {
  case GOAL_RATIO_MAX: return ratio < 0 ? "" : ratio <= w->goal_value ? "met" : "missed";
  case GOAL_RATIO_MIN: return ratio < 0 ? "" : ratio >= w->goal_value ? "met" : "missed";
  case GOAL_FAULTS:
    if (r->failed || r->not_available || r->no_baseline || r->faults != r->faults) return "";
    return r->faults <= r->baseline_faults + 0.5 ? "met" : "missed";
  case GOAL_NONE: return r->failed || r->not_available ? "" : "tracked";
  }
  return "";
}

static void fmt_value(char *buf, size_t len, double v) {
  if (v >= 1000)
    tool_format(buf, len, "%.0f", v);
  else if (v >= 100)
    tool_format(buf, len, "%.1f", v);
  else if (v >= 10)
    tool_format(buf, len, "%.2f", v);
  else
    tool_format(buf, len, "%.3f", v);
}

static void print_json(const struct bench_options *o, const struct env *e, const struct result *res) {
  printf("{\"workloads\": [");
  for (size_t i = 0; i < bench_workload_count; i++) {
    const struct workload *w = &bench_workloads[i];
    const struct result *r = &res[i];
    if (r->not_selected) continue;
    bool have = !r->failed && !r->not_available;
    bool have_base = have && !r->no_baseline;
    printf("%s\n  {\"name\": ", i ? "," : "");
    tool_json_string(stdout, w->name);
    tool_json_field(stdout, "unit", unit_names[w->unit]);
    tool_json_number_field(stdout, "median", have ? r->median : (double)NAN);
    tool_json_number_field(stdout, "p10", have ? r->p10 : (double)NAN);
    tool_json_number_field(stdout, "p90", have ? r->p90 : (double)NAN);
    tool_json_number_field(stdout, "baseline", have_base ? r->baseline : (double)NAN);
    double ratio = ratio_of(r);
    tool_json_number_field(stdout, "ratio", ratio >= 0 ? ratio : (double)NAN);
    tool_json_number_field(stdout, "faults_per_iter", have ? r->faults : (double)NAN);
    tool_json_number_field(stdout, "baseline_faults_per_iter", have_base ? r->baseline_faults : (double)NAN);
    if (r->note[0]) tool_json_field(stdout, "note", r->note);
    printf("}");
  }
  printf("],\n \"env\": {\"xmmap\": ");
  tool_json_string(stdout, xm_version());
  tool_json_field(stdout, "backend", xm_backend_name());
  tool_json_field(stdout, "arch", tool_arch());
  tool_json_field(stdout, "cpu", e->cpu);
  tool_json_field(stdout, "cpu_flags", e->flags);
  printf(", \"cacheline_size\": %llu", (unsigned long long)xm_cacheline_size());
  tool_json_field(stdout, "cacheline_source", xm_cacheline_source());
  tool_json_field(stdout, "flush_method", xm_flush_method());
  tool_json_field(stdout, "kernel", e->os);
  tool_json_field(stdout, "thp", e->thp);
  tool_json_field(stdout, "temp_dir", e->dir);
  tool_json_field(stdout, "temp_dir_fs", e->fs);
  printf(", \"page_size\": %llu, \"allocation_granularity\": %llu", (unsigned long long)xm_page_size(),
         (unsigned long long)xm_allocation_granularity());
  tool_json_field(stdout, "emulated", e->emulated[0] ? e->emulated : NULL);
  printf(", \"faults_counted\": %s", e->faults_counted ? "true" : "false");
  tool_json_field(stdout, "mode", o->smoke ? "smoke" : o->quick ? "quick" : "full");
  printf(", \"rounds\": %u}}\n", o->rounds);
}

static void print_text(const struct bench_options *o, const struct env *e, const struct result *res) {
  printf("xmmap bench (%s%s): xmmap %s, %s back end, %s\n",
         o->smoke   ? "smoke"
         : o->quick ? "quick"
                    : "full",
         e->emulated[0] ? ", EMULATED" : "", xm_version(), xm_backend_name(), tool_arch());
  printf("  %-12s %s\n", "cpu", e->cpu);
  printf("  %-12s %s\n", "cpu flags", e->flags);
  printf("  %-12s %llu bytes (%s), flush method %s\n", "cache line", (unsigned long long)xm_cacheline_size(),
         xm_cacheline_source(), xm_flush_method());
  printf("  %-12s %s\n", "kernel", e->os);
  printf("  %-12s %s\n", "thp", e->thp);
  printf("  %-12s %s (%s)\n", "temp dir", e->dir, e->fs);
  if (e->emulated[0])
    printf("  %-12s %s: every figure below is EMULATED, not the speed of the real system\n", "emulated", e->emulated);
  if (!e->faults_counted) printf("  %-12s this system does not count page faults: faults/iter is n/a\n", "faults");
  printf("  %-12s %u per workload, each interleaved with its baseline; median, p10 and p90 over the rounds\n\n",
         "rounds", o->rounds);

  printf("%-34s | %-16s | %-10s | %-10s | %-15s | %-6s | %s\n", "workload", "median", "p10", "p90", "baseline median",
         "ratio", "faults/iter");
  printf("%.35s+%.18s+%.12s+%.12s+%.17s+%.8s+%.13s\n", "------------------------------------", "------------------",
         "------------", "------------", "-----------------", "--------", "-------------");
  for (size_t i = 0; i < bench_workload_count; i++) {
    const struct workload *w = &bench_workloads[i];
    const struct result *r = &res[i];
    if (r->not_selected) continue;
    if (r->failed || r->not_available) {
      printf("%-34s | %s\n", w->name, r->note);
      continue;
    }
    char med[32], p10[32], p90[32], base[32], ratio[32], faults[32], value[48];
    fmt_value(med, sizeof med, r->median);
    tool_format(value, sizeof value, "%s %s", med, unit_names[w->unit]);
    fmt_value(p10, sizeof p10, r->p10);
    fmt_value(p90, sizeof p90, r->p90);
    if (r->no_baseline) {
      tool_format(base, sizeof base, "n/a");
      tool_format(ratio, sizeof ratio, "n/a");
    } else {
      fmt_value(base, sizeof base, r->baseline);
      tool_format(ratio, sizeof ratio, "%.3f", ratio_of(r));
    }
    if (r->faults == r->faults)
      tool_format(faults, sizeof faults, "%.2f", r->faults);
    else
      tool_format(faults, sizeof faults, "n/a");
    printf("%-34s | %-16s | %-10s | %-10s | %-15s | %-6s | %s\n", w->name, value, p10, p90, base, ratio, faults);
  }

  printf("\nratio = xmmap / baseline: for ns/op and us/op lower is better, for GB/s higher is better.\n");
  printf("goals (tracked, not asserted):\n");
  for (size_t i = 0; i < bench_workload_count; i++) {
    const struct workload *w = &bench_workloads[i];
    const struct result *r = &res[i];
    if (r->not_selected) continue;
    const char *state = goal_state(w, r);
    char goal[96];
    switch (w->goal) {
    case GOAL_RATIO_MAX: tool_format(goal, sizeof goal, "ratio <= %.2f", w->goal_value); break;
    case GOAL_RATIO_MIN: tool_format(goal, sizeof goal, "ratio >= %.2f", w->goal_value); break;
    case GOAL_FAULTS:
      if (r->faults == r->faults)
        tool_format(goal, sizeof goal, "faults/iter %.2f <= baseline's %.2f", r->faults, r->baseline_faults);
      else
        tool_format(goal, sizeof goal, "faults/iter <= the baseline's");
      break;
    case GOAL_NONE: tool_format(goal, sizeof goal, "none: %s must not grow", unit_names[w->unit]); break;
    }
    printf("  %-34s %-44s %s\n", w->name, goal, state[0] ? state : r->no_baseline ? "no baseline here" : "n/a");
    if (r->no_baseline && r->note[0]) printf("  %-34s (%s)\n", "", r->note);
  }
  if (bench_raw_note) printf("%s\n", bench_raw_note);
}

void bench_report(const struct bench_options *o, const struct result *res, bool faults_counted) {
  struct env e;
  collect_env(&e, o->dir, faults_counted);
  if (o->json)
    print_json(o, &e, res);
  else
    print_text(o, &e, res);
}
