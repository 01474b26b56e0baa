#!/usr/bin/env bash
# The main job, end to end, on a machine with nothing but Go: builds
# keyescrow and the TDS stand-in, installs (pinned) and starts versitygw over
# HTTPS in region eu-central-1 with an Object Lock bucket, starts the
# stand-in, runs `keyescrow backup` to two destinations (S3 with Object Lock,
# and a folder), prints the receipt, proves the copies' SHA-256 equal the
# receipt's, runs verify and restore, and stops both servers by their PIDs.
# Secrets are random and travel only in environment variables; the
# temporary folder (which holds the servers' keys and the key file) is
# removed at the end unless DEMO_KEEP=1.
#
# Time: the first run on a fresh machine downloads the Go modules and builds
# versitygw and keyescrow's SDKs from source (about 4 minutes on 2 idle
# cores); later runs take about 5 seconds (4.6 s measured, warm).
set -euo pipefail
cd "$(dirname "$0")/../.."
start_time=$(date +%s)
echo "== keyescrow demo: about 4 minutes the first time on 2 cores (downloading modules, building versitygw and the SDKs), about 5 seconds after that"

need=()
command -v curl >/dev/null || need+=(curl ca-certificates)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash deploy/dev/s3-servers.sh install versitygw   # the demo needs no MinIO

bin=.tools/bin
mkdir -p "$bin"
make --no-print-directory build   # keyescrow as released (no cgo), version and commit stamped
"$bin/keyescrow" version
go build -trimpath -o "$bin/mssql-standin" ./cmd/mssql-standin
go build -trimpath -o "$bin/s3bucket" ./internal/testsrv/s3srv/cmd/s3bucket

work=$(mktemp -d "${TMPDIR:-/tmp}/keyescrow-demo.XXXXXX")
standin_pid=""
cleanup() {
  local rc=$?
  if [ -n "$standin_pid" ]; then
    kill "$standin_pid" 2>/dev/null || true
    wait "$standin_pid" 2>/dev/null || true
  fi
  bash deploy/dev/s3-servers.sh stop "$work/s3" || true
  if [ "${DEMO_KEEP:-}" = 1 ]; then
    echo "== kept $work (it holds the demo's S3 keys and key files: remove it when done)"
  else
    rm -rf "$work"
    [ "$rc" -eq 0 ] || echo "== removed $work; run with DEMO_KEEP=1 to keep it for a look"
  fi
}
trap cleanup EXIT INT TERM

echo "== starting versitygw (S3, HTTPS, region eu-central-1)"
bash deploy/dev/s3-servers.sh start versitygw "$work/s3" eu-central-1
endpoint=$(cat "$work/s3/endpoint")
(
  set -a; . "$work/s3/credentials.env"; set +a
  "$bin/s3bucket" -endpoint "$endpoint" -region eu-central-1 -ca "$work/s3/certs/ca.pem" -bucket sqlkeys
)

mkdir -m 700 "$work/keys" "$work/usb"
# Throw-away secrets for the demo: random, and complex enough for SQL Server.
rand() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 20; }
login_pw="Lg-$(rand)9a"
export MSSQL_STANDIN_PASSWORD="$login_pw"
# The demo server's hierarchy: master's database master key and the
# certificate that protects the TDE database Sales. Its passwords live in
# this owner-only file, never on a command line.
(umask 077; cat >"$work/hierarchy.json" <<JSON
{"databases": [
  {"name": "master", "master_key": {"password": "Mk-$(rand)7a"}, "certificates": [{"name": "TDECert", "subject": "CN=TDE certificate"}]},
  {"name": "Sales", "tde_certificate": "TDECert"}
]}
JSON
)
"$bin/mssql-standin" --listen 127.0.0.1:0 --user keyescrow --server-name DEMOHOST --instance DEMO \
  --hierarchy "$work/hierarchy.json" --port-file "$work/port" >"$work/standin.log" 2>&1 &
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
  - name: offsite-s3
    type: s3
    bucket: sqlkeys
    region: eu-central-1
    prefix: sqlkeys/
    endpoint: $endpoint
    path_style: true
    ca_file: $work/s3/certs/ca.pem
    retention: {mode: COMPLIANCE, days: 1}
  - name: usb
    type: file
    path: $work/usb
lock_file: $work/keyescrow.lock
metrics_file: $work/keyescrow.prom
YAML

export KEYESCROW_SQLSERVER_DSN="sqlserver://keyescrow:${login_pw}@127.0.0.1:${port}?encrypt=disable"
export KEYESCROW_BACKUP_PASSWORD="Bk'$(rand)#1"
set -a; . "$work/s3/credentials.env"; set +a
unset AWS_CA_BUNDLE AWS_PROFILE AWS_REGION AWS_SESSION_TOKEN

echo "== keyescrow backup --config $work/keyescrow.yaml --json"
set +e
"$bin/keyescrow" backup --config "$work/keyescrow.yaml" --json >"$work/receipt.json"
rc=$?
set -e
cat "$work/receipt.json"
echo "== exit code: $rc"
[ "$rc" -eq 0 ] || exit "$rc"

field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$work/receipt.json" "$1"; }
want=$(field 'r["file"]["sha256"]')
copy=$(find "$work/usb" -path '*/service-master-key/*' -name '*.key' -type f | head -1)
got=$(sha256sum "$copy" | cut -d' ' -f1)
echo "== receipt file.sha256:            $want"
echo "== sha256sum of the folder copy:   $got"
[ -n "$want" ] && [ "$want" = "$got" ] || { echo "MISMATCH"; exit 6; }
echo "== the S3 copy: $(field '" ".join(str(d[k]) for d in r["destinations"] if d["type"] == "s3" for k in ("location", "version_id")) + " " + " until ".join(str(v) for d in r["destinations"] if d["type"] == "s3" for v in d["retention"].values())')"
field 'all(d["status"] == "verified" and d["read_back"] and d["checksum"]["match"] for d in r["destinations"])' | grep -qx True || { echo "not every destination verified"; exit 6; }
field '[d for d in r["destinations"] if d["type"] == "s3"][0]["retention"]["mode"]' | grep -qx COMPLIANCE || { echo "the S3 copy is not under COMPLIANCE retention"; exit 6; }
# The hierarchy: master's database master key and the TDE certificate are
# archived and proven at both destinations too, each with its own receipt.
echo "== the hierarchy:"
field '"\n".join("   %s %s/%s: %s (%s) %s" % (i["kind"], i["database"], i["name"], i["action"], i["reason"], " ".join(d["name"] + "=" + d["status"] for d in i.get("destinations", []))) for i in r["items"])'
field 'sorted((i["kind"], i["database"], i["name"]) for i in r["items"] if i["action"] == "archived" and len(i["destinations"]) == 2 and all(d["status"] == "verified" and d["read_back"] for d in i["destinations"]))' \
  | grep -qxF "[('certificate', 'master', 'TDECert'), ('database-master-key', 'master', '##MS_DatabaseMasterKey##')]" \
  || { echo "the TDE certificate and master's database master key are not both archived and verified"; exit 6; }
echo "== metrics ($work/keyescrow.prom):"
grep -E '^keyescrow_(last_run_success|destination_up)' "$work/keyescrow.prom"

# The way back: the audit a monitoring job runs, and a restore of the copy,
# byte for byte what SQL Server wrote.
echo "== keyescrow verify --host DEMOHOST"
"$bin/keyescrow" verify --config "$work/keyescrow.yaml" --host DEMOHOST || { rc=$?; echo "verify failed with exit $rc"; exit "$rc"; }
echo "== keyescrow restore --host DEMOHOST --destination offsite-s3 --out $work/restored.key"
"$bin/keyescrow" restore --config "$work/keyescrow.yaml" --host DEMOHOST --destination offsite-s3 --out "$work/restored.key" || { rc=$?; echo "restore failed with exit $rc"; exit "$rc"; }
restored=$(sha256sum "$work/restored.key" | cut -d' ' -f1)
echo "== sha256sum of the restored copy: $restored"
[ "$restored" = "$want" ] || { echo "the restored copy differs"; exit 6; }
# The TDE certificate comes back the same way, and the inventory shows
# every key of the server with its proven copies.
echo "== keyescrow restore --kind certificate --database master --name TDECert --destination offsite-s3 --out $work/TDECert.pfx"
"$bin/keyescrow" restore --config "$work/keyescrow.yaml" --host DEMOHOST --destination offsite-s3 \
  --kind certificate --database master --name TDECert --out "$work/TDECert.pfx" 2>/dev/null || { rc=$?; echo "restore of TDECert failed with exit $rc"; exit "$rc"; }
tde_want=$(field '[i["file"]["sha256"] for i in r["items"] if i["name"] == "TDECert"][0]')
tde_got=$(sha256sum "$work/TDECert.pfx" | cut -d' ' -f1)
echo "== TDECert: receipt $tde_want, restored $tde_got"
[ "$tde_want" = "$tde_got" ] || { echo "the restored TDE certificate differs"; exit 6; }
echo "== keyescrow inventory"
"$bin/keyescrow" inventory --config "$work/keyescrow.yaml" 2>/dev/null || { rc=$?; echo "inventory failed with exit $rc"; exit "$rc"; }
echo "== both copies of every key verified and locked where the destination can lock, audited, and restored ($(( $(date +%s) - start_time )) s)"
