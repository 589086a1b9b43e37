#!/usr/bin/env bash
# The README's demo: builds the xmmap tool for Linux and Windows and runs `xmmap info` natively and under Wine.
#
# usage: scripts/demo.sh
# Installs what it needs (scripts/deps.sh host mingw64), builds only the tool with the `host` and
# `mingw64` presets (build/host/tools/xmmap, build/mingw64/tools/xmmap.exe), then shows both back
# ends reporting page size, allocation granularity, cache-line size, flush method and back end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh host mingw64
mkdir -p build/logs

# Configure and build one preset's tool; the build log is shown only if something fails.
build_tool() {
  local preset=$1 output=$2
  local log="build/logs/demo-$preset.log"
  echo "demo: building $output ($preset preset)"
  if ! { cmake --preset "$preset" && cmake --build --preset "$preset" --target "$output"; } >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "demo: building the $preset tool failed; full log: $log" >&2
    exit 1
  fi
}
# Ninja builds a file by its path, whatever the tool's CMake target is called.
build_tool host tools/xmmap
build_tool mingw64 tools/xmmap.exe

echo
echo "=== xmmap info: Linux $(uname -m), native (build/host/tools/xmmap) ==="
build/host/tools/xmmap info

# Wine: the tests' private prefix, and a detached wineserver so nothing lingers on our stdout.
wine=/usr/lib/wine/wine64
export WINEPREFIX="$PWD/build/mingw64/wineprefix" WINEDEBUG=-all
sh cmake/wine-server.sh start "$wine" >/dev/null
trap 'sh cmake/wine-server.sh stop "$wine" >/dev/null' EXIT
echo
echo "=== xmmap info: Windows x86_64 build under $("$wine" --version 2>/dev/null || echo Wine) (build/mingw64/tools/xmmap.exe) ==="
"$wine" build/mingw64/tools/xmmap.exe info
