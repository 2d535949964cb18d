#!/usr/bin/env bash
# contrib/: the systemd unit passes `systemd-analyze verify` (with no warning), and
# the Dockerfile's runtime stage installs the package of every library the binary
# links and copies only paths the repository has.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN="$ROOT/${SY_BUILD:-build/asan}/switchyard"
[ -x "$BIN" ] || { echo "1..0 # SKIP build $BIN first (make asan)"; exit 0; }
echo "1..2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "ok 1 - systemd unit # SKIP systemd-analyze is not installed (Debian: systemd)"
else
  # The unit names the installed binary; verify it against the built one.
  sed "s#/usr/local/bin/switchyard#$BIN#g" "$ROOT/contrib/switchyard.service" > "$tmp/switchyard.service"
  out=$(systemd-analyze verify --man=no "$tmp/switchyard.service" 2>&1); rc=$?
  if [ $rc -eq 0 ] && [ -z "$out" ]; then
    echo "ok 1 - systemd-analyze verify contrib/switchyard.service"
  else
    echo "not ok 1 - systemd-analyze verify contrib/switchyard.service (rc $rc)"
    printf '%s\n' "$out" | sed 's/^/# /'
  fi
fi

# Libraries the binary links directly, and the Debian package that ships each.
bad=""
runtime=$(sed -n '/^FROM debian:12-slim$/,$p' "$ROOT/contrib/Dockerfile")
if ! command -v dpkg >/dev/null 2>&1 || ! command -v readelf >/dev/null 2>&1; then
  echo "ok 2 - Dockerfile runtime packages # SKIP dpkg or readelf is not installed"
  exit 0
fi
for lib in $(readelf -d "$BIN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
  case "$lib" in libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|ld-linux*|libasan*|libubsan*) continue ;; esac
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
  pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
  [ -n "$pkg" ] || { bad="$bad $lib(no package)"; continue; }
  printf '%s\n' "$runtime" | grep -qw -- "$pkg" || bad="$bad $lib($pkg)"
done
for p in $(sed -n 's/^COPY \([a-zA-Z].*\) [^ ]*$/\1/p' "$ROOT/contrib/Dockerfile"); do
  [ -e "$ROOT/$p" ] || bad="$bad COPY:$p"
done
if [ -z "$bad" ]; then
  echo "ok 2 - the Dockerfile's runtime stage installs every linked library's package and copies existing paths"
else
  echo "not ok 2 - Dockerfile: missing$bad"
fi
