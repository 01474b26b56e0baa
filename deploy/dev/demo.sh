#!/usr/bin/env bash
# The main job, end to end, on a machine with nothing but Go: builds
# keyescrow and the TDS stand-in, starts the stand-in on 127.0.0.1 (a free
# port), runs `keyescrow backup` with a `file` destination, prints the
# receipt, proves the copy's SHA-256 equals the receipt's, and stops the
# stand-in by its PID. Secrets travel only in environment variables.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=.tools/bin
mkdir -p "$bin"
go build -trimpath -o "$bin/keyescrow" ./cmd/keyescrow
go build -trimpath -o "$bin/mssql-standin" ./cmd/mssql-standin

work=$(mktemp -d "${TMPDIR:-/tmp}/keyescrow-demo.XXXXXX")
standin_pid=""
cleanup() {
  if [ -n "$standin_pid" ]; then
    kill "$standin_pid" 2>/dev/null || true
    wait "$standin_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

mkdir -m 700 "$work/keys" "$work/usb"
# Throw-away secrets for the demo: random, and complex enough for SQL Server.
rand() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 20; }
login_pw="Lg-$(rand)9a"
export MSSQL_STANDIN_PASSWORD="$login_pw"
"$bin/mssql-standin" --listen 127.0.0.1:0 --user keyescrow --server-name DEMOHOST --instance DEMO \
  --port-file "$work/port" >"$work/standin.log" 2>&1 &
standin_pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
[ -s "$work/port" ] || { echo "the stand-in did not start:"; cat "$work/standin.log"; exit 1; }
port=$(cat "$work/port")
unset MSSQL_STANDIN_PASSWORD

cat >"$work/keyescrow.yaml" <<YAML
sqlserver:
  dsn_env: KEYESCROW_SQLSERVER_DSN
backup:
  server_directory: $work/keys
  password_env: KEYESCROW_BACKUP_PASSWORD
home_region: eu-west-1
destinations:
  - name: usb
    type: file
    path: $work/usb
lock_file: $work/keyescrow.lock
YAML

export KEYESCROW_SQLSERVER_DSN="sqlserver://keyescrow:${login_pw}@127.0.0.1:${port}?encrypt=disable"
export KEYESCROW_BACKUP_PASSWORD="Bk'$(rand)#1"

echo "== keyescrow backup --config $work/keyescrow.yaml --json"
set +e
"$bin/keyescrow" backup --config "$work/keyescrow.yaml" --json >"$work/receipt.json"
rc=$?
set -e
cat "$work/receipt.json"
echo "== exit code: $rc"
[ "$rc" -eq 0 ] || exit "$rc"

want=$(sed -n 's/^    "sha256": "\([0-9a-f]*\)".*/\1/p' "$work/receipt.json" | head -1)
copy=$(find "$work/usb" -name '*.key' -type f | head -1)
got=$(sha256sum "$copy" | cut -d' ' -f1)
echo "== receipt file.sha256: $want"
echo "== sha256sum of $copy: $got"
[ -n "$want" ] && [ "$want" = "$got" ] || { echo "MISMATCH"; exit 6; }
echo "== the copy on the destination matches the receipt; files are in $work"
