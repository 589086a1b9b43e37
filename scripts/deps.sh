#!/usr/bin/env bash
# Installs exactly the Debian packages the chosen targets need, and Debian's cmocka source for cross targets.
#
# usage: scripts/deps.sh [target...]     (default: every target below)
#
# Idempotent: when everything is present it changes nothing and says so. Runs as root, or as a
# user with sudo (only package installation and the deb-src entry need root).
#
# Cross targets link a static cmocka built by CMake (cmake/XmmapTesting.cmake) from Debian's cmocka
# source package. This script fetches that source once, with `apt-get source cmocka`, into a
# machine-wide cache that every clone and preset finds:
#   $XMMAP_DEPS_DIR                         if set (for both this script and CMake), else
#   /var/cache/xmmap-deps                   when run as root, else
#   ${XDG_CACHE_HOME:-$HOME/.cache}/xmmap-deps
# holding cmocka-<version>/ (unpacked, Debian patches applied) and a symlink cmocka -> it.
# The deb-src entry apt-get source needs is derived from the machine's own apt sources (same URIs,
# suites, components and keys; Types: deb-src) and written to
# /etc/apt/sources.list.d/xmmap-deb-src.sources — never a hard-coded mirror.
set -euo pipefail

ALL_TARGETS=(host host-asan host-tsan valgrind mingw64 msvc aarch64 armhf riscv64 i686 ppc64le)
COMMON_PKGS=(cmake ninja-build gcc libc6-dev file pkg-config)
DEB_SRC_FILE=/etc/apt/sources.list.d/xmmap-deb-src.sources

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# Packages of one target; "cross" in the second output word when it needs cmocka's source.
target_pkgs() {
  case "$1" in
    # g++ and clang: the public header's C/C++ check (tests/header); clang-format: the format check
    host) echo "libcmocka-dev pkg-config g++ clang clang-format" ;;
    host-asan|host-ubsan|host-msan|host-tsan|host-fuzz)
      echo "clang llvm libclang-rt-14-dev libcmocka-dev pkg-config" ;;
    valgrind|host-valgrind) echo "valgrind libcmocka-dev pkg-config" ;;
    mingw64) echo "gcc-mingw-w64-x86-64-win32 g++-mingw-w64-x86-64-win32 wine64 wine dpkg-dev" ;;
    # clang-cl is in clang-tools, lld-link in lld, llvm-lib/llvm-rc in llvm; Wine's Windows headers
    # and import libraries in libwine-dev; binutils' objdump reads the DLL's tables (consumer test)
    msvc) echo "clang clang-tools lld llvm libwine-dev wine64 wine binutils dpkg-dev" ;;
    aarch64) echo "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user dpkg-dev" ;;
    armhf)   echo "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user dpkg-dev" ;;
    riscv64) echo "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross qemu-user dpkg-dev" ;;
    i686)    echo "gcc-i686-linux-gnu libc6-dev-i386-cross qemu-user dpkg-dev" ;;
    ppc64le) echo "gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross qemu-user dpkg-dev" ;;
    *) return 1 ;;
  esac
}
is_cross() { case "$1" in mingw64|msvc|aarch64|armhf|riscv64|i686|ppc64le) return 0 ;; *) return 1 ;; esac; }

# Run as root: directly, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root or sudo to run: $*"
  fi
}

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]; }

APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
}

# --- which targets -----------------------------------------------------------------------------
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
want=("${COMMON_PKGS[@]}")
need_cmocka_src=0
for t in "${targets[@]}"; do
  p=$(target_pkgs "$t") || die "unknown target '$t' (known: ${ALL_TARGETS[*]})"
  # shellcheck disable=SC2206
  want+=($p)
  if is_cross "$t"; then need_cmocka_src=1; fi
done
# De-duplicate, keep order.
declare -A seen=()
pkgs=()
for p in "${want[@]}"; do
  if [ -z "${seen[$p]:-}" ]; then seen[$p]=1; pkgs+=("$p"); fi
done

# --- packages ----------------------------------------------------------------------------------
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing: ${missing[*]}"
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
else
  say "all ${#pkgs[@]} packages present for: ${targets[*]}"
fi

[ "$need_cmocka_src" -eq 1 ] || exit 0

# --- cmocka source for the cross targets -------------------------------------------------------
user_cache="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/xmmap-deps"
search_dirs=()
[ -n "${XMMAP_DEPS_DIR:-}" ] && search_dirs+=("$XMMAP_DEPS_DIR")
search_dirs+=(/var/cache/xmmap-deps "$user_cache")
for d in "${search_dirs[@]}"; do
  if [ -f "$d/cmocka/CMakeLists.txt" ] && [ -f "$d/cmocka/include/cmocka.h" ]; then
    say "cmocka source present: $(readlink -f "$d/cmocka")"
    exit 0
  fi
done
if [ -n "${XMMAP_DEPS_DIR:-}" ]; then cache="$XMMAP_DEPS_DIR"
elif [ "$(id -u)" -eq 0 ]; then cache=/var/cache/xmmap-deps
else cache="$user_cache"
fi

# Is there already a deb-src entry (besides ours)? One-line format or deb822.
have_deb_src() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && grep -Eq '^[[:space:]]*deb-src[[:space:]]' "$f" && return 0
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && [ "$f" != "$DEB_SRC_FILE" ] || continue
    awk 'BEGIN{RS=""; found=0}
         { en=1; src=0; n=split($0, L, "\n")
           for (i=1;i<=n;i++) { if (L[i] ~ /^Types:.*deb-src/) src=1
                                if (tolower(L[i]) ~ /^enabled:[[:space:]]*no/) en=0 }
           if (src && en) found=1 }
         END{exit !found}' "$f" && return 0
  done
  return 1
}

# deb822 stanzas of type deb, for this release's suites only (third-party repositories seldom
# publish sources), turned into deb-src stanzas with the same URIs, suites, components and keys.
derive_deb_src() {
  local codename f
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && [ "$f" != "$DEB_SRC_FILE" ] || continue
      awk -v cn="$codename" -v file="$f" '
        function flush(   keep, i, n, s, out) {
          if (types ~ /(^|[[:space:]])deb([[:space:]]|$)/ && enabled && uris != "" && suites != "") {
            n = split(suites, s, /[[:space:]]+/); out = ""
            for (i = 1; i <= n; i++)
              if (s[i] != "" && (cn == "" || s[i] == cn || index(s[i], cn "-") == 1)) out = out " " s[i]
            if (out != "") {
              printf "# from %s\nTypes: deb-src\nURIs: %s\nSuites:%s\n", file, uris, out
              if (comps != "") printf "Components: %s\n", comps
              if (signed != "") printf "Signed-By:%s\n", signed
              printf "\n"
            }
          }
          types = uris = suites = comps = signed = ""; enabled = 1; last = ""
        }
        BEGIN { enabled = 1 }
        /^#/ { next }
        /^[[:space:]]*$/ { flush(); next }
        /^[[:space:]]/ { if (last == "signed") signed = signed "\n" $0; next }
        {
          key = tolower($0); sub(/:.*/, "", key); val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
          last = ""
          if (key == "types") types = val
          else if (key == "uris") uris = val
          else if (key == "suites") suites = val
          else if (key == "components") comps = val
          else if (key == "enabled") enabled = (tolower(val) !~ /^no/)
          else if (key == "signed-by") { signed = (val == "" ? "" : " " val); last = "signed" }
        }
        END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      # deb [opts] uri suite components...
      awk -v cn="$codename" -v file="$f" '
        $1 == "deb" {
          i = 2; signed = ""
          if ($2 ~ /^\[/) {
            opts = ""
            for (; i <= NF; i++) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } }
            if (match(opts, /signed-by=[^] ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
          }
          uri = $i; suite = $(i + 1); comps = ""
          for (j = i + 2; j <= NF; j++) comps = comps (comps == "" ? "" : " ") $j
          if (cn != "" && suite != cn && index(suite, cn "-") != 1) next
          printf "# from %s\nTypes: deb-src\nURIs: %s\nSuites: %s\n", file, uri, suite
          if (comps != "") printf "Components: %s\n", comps
          if (signed != "") printf "Signed-By: %s\n", signed
          printf "\n"
        }' "$f"
    done
  }
}

if ! have_deb_src; then
  entries=$(derive_deb_src)
  [ -n "$entries" ] || die "found no deb entry for this release in /etc/apt to derive a deb-src entry from"
  content="# Written by xmmap's scripts/deps.sh: deb-src twins of this machine's deb entries, for apt-get source cmocka.
$entries"
  if [ ! -f "$DEB_SRC_FILE" ] || [ "$(cat "$DEB_SRC_FILE")" != "$content" ]; then
    say "writing $DEB_SRC_FILE (derived from this machine's apt sources)"
    printf '%s\n' "$content" | as_root tee "$DEB_SRC_FILE" >/dev/null
    APT_UPDATED=0  # the new entry's index must be fetched
  fi
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
fetch() { (cd "$work" && apt-get source -qq cmocka >"$work.log" 2>&1); }
say "apt-get source cmocka -> $cache"
if ! fetch; then
  apt_update
  fetch || { cat "$work.log" >&2; rm -f "$work.log"; die "apt-get source cmocka failed"; }
fi
rm -f "$work.log"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'cmocka-*' | head -n 1)
[ -n "$src" ] && [ -f "$src/CMakeLists.txt" ] || die "apt-get source cmocka unpacked nothing usable"
name=$(basename "$src")
rm -rf "${cache:?}/$name"
mv "$src" "$cache/$name"
ln -sfn "$name" "$cache/cmocka"
say "cmocka source ready: $cache/$name"
