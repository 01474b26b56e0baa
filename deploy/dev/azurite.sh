#!/usr/bin/env bash
# Azurite (the local Azure Blob emulator) for keyescrow's tests and demo,
# pinned by deploy/dev/azurite/package-lock.json (azurite 3.37.0).
#
#   deploy/dev/azurite.sh install            npm ci into .tools/azurite (no-op when already installed from this lockfile);
#                                            installs Debian's nodejs and npm first when node is missing
#   deploy/dev/azurite.sh start DIR [https]  starts azurite-blob on a free 127.0.0.1 port with its data in DIR;
#                                            writes DIR/azurite.pid and DIR/azurite.port; "https" adds a
#                                            throw-away certificate (DIR/tls/ca.pem) and --oauth basic
#   deploy/dev/azurite.sh stop DIR           stops the Azurite started with DIR, by its PID
#
# The Go tests start and stop Azurite themselves (internal/testsrv/azurite);
# they only need `install`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.tools/azurite"
bin="$dest/node_modules/.bin/azurite-blob"

install() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "azurite.sh: node or npm is missing; installing Debian's nodejs and npm" >&2
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  local want
  want=$(sha256sum "$root/deploy/dev/azurite/package-lock.json" | cut -d' ' -f1)
  if [ -x "$bin" ] && [ "$(cat "$dest/.lock-sha256" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  mkdir -p "$dest"
  cp "$root/deploy/dev/azurite/package.json" "$root/deploy/dev/azurite/package-lock.json" "$dest/"
  # npm ci installs exactly the lockfile (integrity-checked) or fails.
  (cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  [ -x "$bin" ] || { echo "azurite.sh: npm ci finished but $bin is missing" >&2; exit 1; }
  echo "$want" >"$dest/.lock-sha256"
  echo "azurite.sh: azurite $(node -p "require('$dest/node_modules/azurite/package.json').version") installed in $dest" >&2
}

free_port() {
  python3 - <<'PY' 2>/dev/null || node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

start() {
  local dir="${1:?usage: azurite.sh start DIR [https]}" mode="${2:-http}"
  [ -x "$bin" ] || install
  mkdir -p "$dir/data"
  local args=(--blobHost 127.0.0.1 --location "$dir/data" --skipApiVersionCheck --disableTelemetry --silent)
  if [ "$mode" = https ]; then
    mkdir -p "$dir/tls"
    (cd "$root" && go run ./internal/testtls/cmd/testcert "$dir/tls") >&2
    args+=(--cert "$dir/tls/cert.pem" --key "$dir/tls/key.pem" --oauth basic)
  fi
  local port tries
  for tries in 1 2 3; do
    port=$(free_port)
    "$bin" "${args[@]}" --blobPort "$port" >"$dir/azurite.log" 2>&1 &
    echo $! >"$dir/azurite.pid"
    for _ in $(seq 1 200); do
      if grep -q "successfully listens" "$dir/azurite.log" 2>/dev/null; then
        echo "$port" >"$dir/azurite.port"
        echo "$port"
        return 0
      fi
      kill -0 "$(cat "$dir/azurite.pid")" 2>/dev/null || break
      sleep 0.05
    done
    stop "$dir"
  done
  echo "azurite.sh: Azurite did not start:" >&2
  cat "$dir/azurite.log" >&2
  exit 1
}

stop() {
  local dir="${1:?usage: azurite.sh stop DIR}" pid
  pid=$(cat "$dir/azurite.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/azurite.pid" "$dir/azurite.port"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: $0 install | start DIR [https] | stop DIR" >&2; exit 2 ;;
esac
