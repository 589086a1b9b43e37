#!/bin/sh
# Starts or stops a persistent, detached wineserver for one WINEPREFIX (CTest fixture, scripts/demo.sh).
#
# usage: WINEPREFIX=<dir> wine-server.sh start|stop [wine-loader]
#
# Why: Wine's background processes (wineserver, services.exe, ...) inherit the stdio of the Wine
# process that spawned them. Spawned by a test under CTest, they hold CTest's output pipes open
# and CTest waits for them: the run hangs or crawls. Started here with stdio on /dev/null and kept
# alive (-p) for the whole run, they never see a test's pipes. The prefix is initialised once per
# build tree (wineboot --init, ~11 s) and reused afterwards.
set -eu

action=${1:?usage: wine-server.sh start|stop [wine-loader]}
wine=${2:-/usr/lib/wine/wine64}
: "${WINEPREFIX:?WINEPREFIX must be set}"
export WINEPREFIX
export WINEDEBUG=-all
# No display: Wine must not try to open one (nor the mono/gecko installers' dialogs).
unset DISPLAY WAYLAND_DISPLAY
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=}"

wineserver=$(dirname "$wine")/wineserver
[ -x "$wineserver" ] || wineserver=$(command -v wineserver || true)
[ -n "$wineserver" ] || { echo "wine-server.sh: wineserver not found next to $wine nor on PATH" >&2; exit 1; }
[ -x "$wine" ] || { echo "wine-server.sh: Wine loader $wine not found (scripts/deps.sh mingw64)" >&2; exit 1; }

case "$action" in
start)
  # A server left over from an interrupted run may hold someone's pipes: start from a clean slate.
  "$wineserver" -k </dev/null >/dev/null 2>&1 || true
  "$wineserver" -w </dev/null >/dev/null 2>&1 || true
  mkdir -p "$WINEPREFIX"
  if [ ! -f "$WINEPREFIX/.xmmap-initialised" ]; then
    echo "wine-server.sh: initialising $WINEPREFIX"
    "$wine" wineboot --init </dev/null >/dev/null 2>&1
    "$wineserver" -w </dev/null >/dev/null 2>&1 || true
    : >"$WINEPREFIX/.xmmap-initialised"
  fi
  # wineserver daemonises itself once its socket is ready; -p: stay up until -k.
  "$wineserver" -p </dev/null >/dev/null 2>&1
  # Pre-spawn services.exe and friends now, detached from any test's pipes (also applies any
  # prefix update a new Wine version wants).
  "$wine" wineboot </dev/null >/dev/null 2>&1
  echo "wine-server.sh: wineserver running for $WINEPREFIX"
  ;;
stop)
  "$wineserver" -k </dev/null >/dev/null 2>&1 || true
  echo "wine-server.sh: wineserver stopped for $WINEPREFIX"
  ;;
*)
  echo "usage: wine-server.sh start|stop [wine-loader]" >&2
  exit 2
  ;;
esac
