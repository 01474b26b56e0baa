#!/usr/bin/env bash
# debian-deps.sh: install the Debian packages the test suite uses, only those
# missing, with `apt-get update` first (a fresh machine has no package lists).
#   freetds-bin                 tsql, the independent TDS client the stand-in is cross-checked with
#   systemd                     systemd-analyze, which checks deploy/linux's units
#   wine64                      runs the Windows build's black-box tests
#   gcc-mingw-w64-x86-64-win32  builds the bcryptprimitives.dll shim Wine 8 lacks
set -euo pipefail
missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
have tsql || missing+=(freetds-bin)
have systemd-analyze || missing+=(systemd)
have /usr/lib/wine/wine64 || have wine64 || missing+=(wine64)
have x86_64-w64-mingw32-gcc || missing+=(gcc-mingw-w64-x86-64-win32)
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
