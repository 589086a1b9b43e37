#!/usr/bin/env bash
# The README's test command: installs what is needed, runs every target's workflow preset, prints a table.
#
# usage: scripts/test.sh [target...]        (default: every target in TARGETS)
#        XMMAP_NO_DEPS=1 scripts/test.sh    (skip scripts/deps.sh)
#
# Each target runs `cmake --workflow --preset <target>` (configure, build, ctest) in turn; a failed
# target does not stop the others. Full output goes to build/logs/<target>.log; a failed target's
# tail is printed. The table counts individual cmocka test cases, read from each test's output in
# the JUnit file the test preset writes (build/<target>/junit.xml):
#   run/passed/skipped  from cmocka's "[==========] N test(s) run.", "[  PASSED  ] N test(s)." and
#                       "[  SKIPPED ] N test(s), listed below:" lines (a case that calls skip());
#   failed              run - passed - skipped, plus 1 for a test executable that failed outside
#                       any case (crash, sanitizer report at exit, timeout);
#   a test without cmocka output (xmmap_add_program_test) counts as one case.
# "ctest" is ctest's own pass/total, without the Wine fixture's start/stop helpers.
# "counts" shows what the reliability tests print: fault points injected
# (test_fault_injection), bad inputs tried (test_bad_input) and fuzz executions (libFuzzer's
# "Done N runs", host-fuzz). The reliability legs: host-tsan (the threaded tests under TSan),
# host-valgrind (the host suite under valgrind memcheck: zero errors, zero definite or indirect
# leaks; the consumer and `xmmap info` tests are left out there: the consumer's programs are static
# and `xmmap info` faults at a stack depth valgrind cannot deliver a signal to; examples/demand_paging
# is left out because valgrind reports the accesses its fault hook fixes as invalid, and
# examples/tiny_emulator because its device is a hole that guest accesses fault in by design, which
# memcheck reports as invalid accesses (it also needs --px-default=allregs-at-mem-access: without it
# valgrind resumes the write tracker's retried writes with stale registers) and host-fuzz (each
# libFuzzer target for ~30 s against its reference model).
# The arch column is `file` on every test binary the target built (build/<target>/xmmap-binaries/).
# A compile-only target (msvc-arm64: Windows on ARM64, nothing here can link or run it) shows
# "compiled only: N objects, W warnings" in place of test counts, the machine of its objects as
# its arch, and fails when compilation fails, warns, or compiles nothing.
# Exit status is non-zero when any target fails or runs zero tests. The last line is
# "N passed, N failed, N skipped", where failed also counts each target that failed without a
# failing case (configure or build error, no tests).
set -uo pipefail

# The matrix: one entry per workflow preset in CMakePresets.json.
TARGETS=(host host-asan host-tsan host-valgrind host-fuzz mingw64 msvc aarch64 armhf riscv64 i686 ppc64le msvc-arm64)
# Targets that are compiled only (their workflow preset has no test step): the row shows what was
# compiled instead of test counts, and fails when compilation fails or warns.
COMPILE_ONLY=(msvc-arm64)
is_compile_only() { local c; for c in "${COMPILE_ONLY[@]}"; do [ "$c" = "$1" ] && return 0; done; return 1; }
# What scripts/deps.sh installs for a target: msvc-arm64 needs what the msvc leg needs (clang-cl,
# Wine's headers, cmocka's source).
deps_target() { case "$1" in msvc-arm64) echo msvc ;; *) echo "$1" ;; esac; }

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
root=$PWD

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")

if [ "${XMMAP_NO_DEPS:-0}" != 1 ]; then
  deps_targets=()
  for t in "${targets[@]}"; do
    d=$(deps_target "$t")
    [[ " ${deps_targets[*]} " == *" $d "* ]] || deps_targets+=("$d")
  done
  if ! scripts/deps.sh "${deps_targets[@]}"; then
    echo "test: scripts/deps.sh failed"
    echo "0 passed, 1 failed"
    exit 1
  fi
fi

mkdir -p build/logs

# Short architecture of one binary, from file(1).
arch_of() {
  local d bits machine
  if ! command -v file >/dev/null 2>&1; then echo "? (no file(1))"; return; fi
  d=$(file -b "$1" 2>/dev/null)
  case "$d" in
    PE32+*) machine=x86-64; case "$d" in *Aarch64*|*ARM64*) machine=arm64 ;; esac; echo "PE32+ $machine" ;;
    PE32*) echo "PE32 i386" ;;
    ELF*)
      bits=$(sed -n 's/^ELF \([0-9]*\)-bit.*/\1/p' <<<"$d")
      machine=$(cut -d, -f2 <<<"$d" | sed 's/^ *//')
      case "$machine" in
        "ARM aarch64") machine=aarch64 ;;
        ARM) machine=arm ;;
        "UCB RISC-V") machine=riscv ;;
        "Intel 80386"|"Intel i386") machine=i386 ;;
        x86-64) machine=x86-64 ;;
        *PowerPC*) machine=ppc64; case "$d" in *LSB*) machine=ppc64le ;; esac ;;
      esac
      echo "ELF$bits $machine" ;;
    *) echo "${d%%,*}" ;;
  esac
}

# Distinct architectures of the target's test binaries.
target_arch() {
  local dir=$1 f bin archs=()
  declare -A seen=()
  for f in "$dir"/xmmap-binaries/*.txt; do
    [ -f "$f" ] || continue
    bin=$(head -n 1 "$f")
    [ -f "$bin" ] || continue
    a=$(arch_of "$bin")
    printf 'arch: %s: %s\n' "$bin" "$(file -b "$bin" 2>/dev/null)" >>"$2"
    if [ -z "${seen[$a]:-}" ]; then seen[$a]=1; archs+=("$a"); fi
  done
  if [ ${#archs[@]} -eq 0 ]; then echo "-"; else (IFS=,; echo "${archs[*]}"); fi
}

# Reads a ctest JUnit file; prints: run passed failed skipped ctest_passed ctest_total.
count_junit() {
  awk '
    function attr(s, k,   r) {
      if (match(s, k "=\"[^\"]*\"")) { r = substr(s, RSTART + length(k) + 2, RLENGTH - length(k) - 3); return r }
      return ""
    }
    function finish(   f) {
      if (name ~ /^fixture\./) {           # Wine fixture helpers: only their failure counts
        if (status == "fail") { run++; failed++ }
      } else {
        ct_total++; if (status == "run") ct_pass++
        if (cm) {
          f = cm_run - cm_pass - cm_skip
          if (f < 0) f = 0
          run += cm_run; passed += cm_pass; skipped += cm_skip; failed += f
          if (status != "run" && f == 0) { run++; failed++ }
        } else {
          run++
          if (status == "run") passed++
          else if (status == "disabled" || (status == "notrun" && skipmsg ~ /^SKIP_/)) skipped++
          else failed++                    # includes "not run" for a failed fixture
        }
      }
      intest = 0
    }
    /<testcase / {
      if (intest) finish()
      intest = 1; name = attr($0, "name"); status = attr($0, "status")
      cm = 0; cm_run = cm_pass = cm_skip = 0; skipmsg = ""
      if ($0 ~ /\/>[[:space:]]*$/) finish()
    }
    intest && /<skipped message="/ { skipmsg = attr($0, "message") }
    intest && /\[==========\] Running [0-9]+ test\(s\)\./ { cm = 1 }
    intest && /\[==========\] [0-9]+ test\(s\) run\./ {
      match($0, /\[==========\] [0-9]+/); cm = 1; cm_run += substr($0, RSTART + 13, RLENGTH - 13) + 0
    }
    intest && /\[  PASSED  \] [0-9]+ test\(s\)\./ {
      match($0, /\[  PASSED  \] [0-9]+/); cm_pass += substr($0, RSTART + 13, RLENGTH - 13) + 0
    }
    intest && /\[  SKIPPED \] [0-9]+ test\(s\), listed below:/ {
      match($0, /\[  SKIPPED \] [0-9]+/); cm_skip += substr($0, RSTART + 13, RLENGTH - 13) + 0
    }
    /<\/testcase>/ { if (intest) finish() }
    END { if (intest) finish(); printf "%d %d %d %d %d %d\n", run, passed, failed, skipped, ct_pass, ct_total }
  ' "$1"
}

# Reads a ctest JUnit file; prints: fault_points bad_inputs fuzz_runs (what the reliability tests print).
count_extras() {
  awk '
    function number(   s) { s = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", s); return s + 0 }
    match($0, /fault points injected: [0-9]+/) { faults += number() }
    match($0, /bad inputs tried: [0-9]+/) { bad += number() }
    match($0, /Done [0-9]+ runs in/) { runs += number() }
    END { printf "%d %d %d\n", faults, bad, runs }
  ' "$1"
}

# "faults 1324, bad 119" / "fuzz 2.3M runs" / "-"
fmt_counts() {
  local out=() runs
  [ "$1" -gt 0 ] && out+=("faults $1")
  [ "$2" -gt 0 ] && out+=("bad $2")
  if [ "$3" -gt 0 ]; then
    if [ "$3" -ge 1000000 ]; then runs="$(($3 / 100000))"; runs="${runs%?}.${runs: -1}M"
    elif [ "$3" -ge 1000 ]; then runs="$(($3 / 1000))k"; else runs=$3; fi
    out+=("fuzz $runs runs")
  fi
  if [ ${#out[@]} -eq 0 ]; then echo "-"; else (IFS=,; echo "${out[*]}" | sed 's/,/, /g'); fi
}

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# A compile-only target's build: prints "objects warnings arch" (the objects in the build graph of
# the project's own targets, not cmocka's; compiler warnings in the log; the machine of one object).
compile_only_counts() {
  local dir=$1 log=$2 objects warnings one arch="-"
  if command -v ninja >/dev/null 2>&1 && [ -f "$dir/build.ninja" ]; then
    objects=$(ninja -C "$dir" -t targets all 2>/dev/null | grep -cE '\.obj: CX*_COMPILER')
  else
    objects=$(find "$dir" -path "$dir/_deps" -prune -o -path '*/CMakeFiles/*.dir/*' -name '*.obj' -print | wc -l)
  fi
  warnings=$(grep -cE '(\)|:[0-9]+): warning[: ]' "$log")
  one=$(find "$dir/src" -path '*/CMakeFiles/*.dir/*' -name '*.obj' -print -quit 2>/dev/null)
  if [ -n "$one" ] && command -v file >/dev/null 2>&1; then
    case "$(file -b "$one")" in
      *Aarch64*COFF* | *ARM64*COFF*) arch="COFF arm64" ;;
      *COFF*) arch="COFF $(file -b "$one" | cut -d' ' -f1)" ;;
      *) arch=$(file -b "$one" | cut -d, -f1) ;;
    esac
  fi
  echo "$objects $warnings $arch"
}

rows=()
total_pass=0 total_fail=0 total_skip=0 failed_targets=()
total_faults=0 total_bad=0 total_runs=0
n=0
for t in "${targets[@]}"; do
  n=$((n + 1))
  log="build/logs/$t.log"
  dir="build/$t"
  steps="configure, build, test"
  is_compile_only "$t" && steps="configure, build (compile only)"
  printf '[%d/%d] %-10s %s ... ' "$n" "${#targets[@]}" "$t" "$steps"
  rm -f "$dir/junit.xml"
  start=$SECONDS
  cmake --workflow --preset "$t" >"$log" 2>&1
  rc=$?
  secs=$((SECONDS - start))

  run=0 pass=0 fail=0 skip=0 ct_pass=0 ct_total=0 faults=0 bad=0 runs=0
  if is_compile_only "$t"; then
    read -r objects warnings arch < <(compile_only_counts "$dir" "$log")
    what="compiled only: $objects objects, $warnings warnings"
    result=ok
    if [ "$rc" -ne 0 ]; then result="FAILED (configure/build, exit $rc)"
    elif [ "$objects" -eq 0 ]; then result="FAILED (no objects compiled)"
    elif [ "$warnings" -ne 0 ]; then result="FAILED (warnings)"
    fi
    if [ "$result" != ok ]; then failed_targets+=("$t"); fail=1; fi
    total_fail=$((total_fail + fail))
    echo "$result: $what ($(fmt_time "$secs"))"
    if [ "$result" != ok ]; then
      echo "----- last lines of $log -----"
      tail -n 60 "$log" | sed 's/^/  /'
      echo "-----"
    fi
    rows+=("$t|$arch|-|-|$fail|-|-|$(fmt_time "$secs")|${result%% *}|$what")
    continue
  fi
  if [ -f "$dir/junit.xml" ]; then
    read -r run pass fail skip ct_pass ct_total < <(count_junit "$dir/junit.xml")
    read -r faults bad runs < <(count_extras "$dir/junit.xml")
  fi
  total_faults=$((total_faults + faults)); total_bad=$((total_bad + bad)); total_runs=$((total_runs + runs))
  arch=$(target_arch "$dir" "$log")

  result=ok
  if [ "$rc" -ne 0 ]; then
    if [ ! -f "$dir/junit.xml" ]; then result="FAILED (configure/build, exit $rc)"; else result="FAILED (exit $rc)"; fi
  elif [ "$run" -eq 0 ]; then
    result="FAILED (no tests ran)"
  elif [ "$fail" -ne 0 ]; then
    result="FAILED"
  fi
  if [ "$result" != ok ]; then
    failed_targets+=("$t")
    # A failed target always counts as failed, even with no failing case to show for it.
    [ "$fail" -gt 0 ] || fail=1
  fi
  total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail)); total_skip=$((total_skip + skip))
  echo "$result: $pass passed, $fail failed, $skip skipped ($(fmt_time "$secs"))"
  if [ "$result" != ok ]; then
    echo "----- last lines of $log -----"
    tail -n 60 "$log" | sed 's/^/  /'
    echo "-----"
  fi
  rows+=("$t|$arch|$run|$pass|$fail|$skip|$ct_pass/$ct_total|$(fmt_time "$secs")|${result%% *}|$(fmt_counts "$faults" "$bad" "$runs")")
done

echo
fmt='%-13s | %-16s | %9s | %6s | %6s | %7s | %7s | %7s | %-6s | %s\n'
# shellcheck disable=SC2059
printf "$fmt" target "arch of binaries" "tests run" passed failed skipped ctest time result counts
printf '%s\n' "--------------+------------------+-----------+--------+--------+---------+---------+---------+--------+-------"
for r in "${rows[@]}"; do
  IFS='|' read -r c1 c2 c3 c4 c5 c6 c7 c8 c9 c10 <<<"$r"
  # shellcheck disable=SC2059
  printf "$fmt" "$c1" "$c2" "$c3" "$c4" "$c5" "$c6" "$c7" "$c8" "$c9" "$c10"
done
echo
echo "reliability: $total_faults fault points injected, $total_bad bad inputs tried, $total_runs fuzz executions (all targets)"
echo
if [ ${#failed_targets[@]} -gt 0 ]; then
  echo "failed targets: ${failed_targets[*]} (logs: $root/build/logs/)"
fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ ${#failed_targets[@]} -eq 0 ]
