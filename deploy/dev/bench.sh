#!/usr/bin/env bash
# The performance benchmark (docs/performance.md): `make bench`. Run by
# hand, never by `make test` or CI. On a fresh Debian machine it installs
# what it needs, only when missing (hyperfine, awscli, rclone, GNU time,
# curl, python3; versitygw and MinIO pinned via s3-servers.sh, Azurite via
# azurite.sh), starts versitygw, MinIO and Azurite over HTTPS with throw-away
# certificates, Object Lock buckets (a container on Azurite), the TDS
# stand-in and a counting proxy per server, and measures side
# by side, alternating, after warm-up (internal/perf/benchrun):
#   limit                  internal/perf/limit: PutObject + HeadObject + GetObject, the least possible
#   keyescrow archive      a 150-byte file, a new key each run, preflight included
#   keyescrow archive ×3   three buckets at once
#   keyescrow backup       the same through `BACKUP SERVICE MASTER KEY` on the stand-in
#   awscli                 put-object + head-object + get-object + sha256sum, as a user would script it
#   rclone copyto          what rclone does for one file
#   keyescrow version      start-up cost
# and the same on MinIO for limit and archive, and keyescrow archive to
# Azurite (which keeps no versions or locks: those checks waived, so that
# row is the Azure path's cost, not a WORM copy). Prints one markdown table.
# Then the scale part (BENCH_SCALE=0 skips it): the real archive pipeline
# seeds one bucket (internal/perf/seed) with 500 and 2,000 copies of one host
# and one copy each of 250 and 1,000 hosts, each set under its own prefix,
# and `keyescrow list --json`, `verify` and `verify --all-hosts` are measured
# at both sizes: time, requests and peak RSS should grow with the listing's
# pages, and memory stay flat. Every server it starts is stopped by its PID.
# BENCH_ROUNDS (default 15) and BENCH_WARMUP (default 2) change the number of
# runs; the temporary folder is removed at the end unless BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=${BENCH_ROUNDS:-15}
warmup=${BENCH_WARMUP:-2}

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
have hyperfine || missing+=(hyperfine)
have /usr/bin/aws || missing+=(awscli) # Debian's awscli 2, not one a Python environment may put first on PATH
have rclone || missing+=(rclone)
have /usr/bin/time || missing+=(time)
have curl || missing+=(curl ca-certificates)
have python3 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bash deploy/dev/s3-servers.sh install

work=$(mktemp -d "${TMPDIR:-/tmp}/keyescrow-bench.XXXXXX")
bin=$work/bin
mkdir -p "$bin"
ldflags="-s -w -X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev) -X main.commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
echo "== building into $bin (static, as released: CGO_ENABLED=0)"
export CGO_ENABLED=0
go build -trimpath -ldflags "$ldflags" -o "$bin/keyescrow" ./cmd/keyescrow
for p in ./cmd/mssql-standin ./internal/testsrv/s3srv/cmd/s3bucket ./internal/testsrv/azurite/cmd/azcontainer ./internal/perf/limit ./internal/perf/countproxy ./internal/perf/benchrun ./internal/perf/floor ./internal/perf/seed; do
  go build -trimpath -ldflags '-s -w' -o "$bin/$(basename "$p")" "$p"
done

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  bash deploy/dev/s3-servers.sh stop "$work/versitygw" || true
  bash deploy/dev/s3-servers.sh stop "$work/minio" || true
  bash deploy/dev/azurite.sh stop "$work/azurite" || true
  # The scale part leaves ~150 MB of objects; BENCH_KEEP=1 keeps them.
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

# No AWS_*/AZURE_* of the machine: every tool gets the servers' keys only,
# and no shared config file.
unset AWS_CA_BUNDLE AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/aws-credentials RCLONE_CONFIG=$work/rclone.conf
: >"$AWS_CONFIG_FILE"; : >"$AWS_SHARED_CREDENTIALS_FILE"; : >"$RCLONE_CONFIG"
region=eu-central-1

proxy() { # name dir → starts a counting proxy in front of the server in dir
  local name=$1 dir=$2
  "$bin/countproxy" -upstream "${3#https://}" -ca "$dir/certs/ca.pem" -cert "$dir/certs/cert.pem" -key "$dir/certs/key.pem" \
    -port-file "$dir/proxy-port" -control-file "$dir/control-port" >"$dir/proxy.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$dir/proxy-port" ] && [ -s "$dir/control-port" ] && break; sleep 0.05; done
  [ -s "$dir/proxy-port" ] || { echo "countproxy for $name did not start"; cat "$dir/proxy.log"; exit 1; }
}

for kind in versitygw minio; do
  bash deploy/dev/s3-servers.sh start "$kind" "$work/$kind" "$region"
  dir=$work/$kind
  ( set -a; . "$dir/credentials.env"; set +a
    for b in bench bench2 bench3; do
      "$bin/s3bucket" -endpoint "$(cat "$dir/endpoint")" -region "$region" -ca "$dir/certs/ca.pem" -bucket "$b" >/dev/null
    done )
  proxy "$kind" "$dir" "$(cat "$dir/endpoint")"
done
# Azurite (HTTPS) for the Azure path: it keeps no versions and no locks, so
# its row runs with those checks waived and is no WORM copy; it shows what
# the Azure client and pipeline cost.
bash deploy/dev/azurite.sh install
az=$work/azurite
mkdir -p "$az"
az_port=$(bash deploy/dev/azurite.sh start "$az" https | tail -1)
ln -s tls "$az/certs"
az_ep="https://127.0.0.1:$az_port"
"$bin/azcontainer" -account-url "$az_ep/devstoreaccount1" -ca "$az/certs/ca.pem" -container bench
proxy azurite "$az" "$az_ep"
az_px="https://127.0.0.1:$(cat "$az/proxy-port")"
vgw=$work/versitygw
mio=$work/minio
vgw_ep=$(cat "$vgw/endpoint"); vgw_px="https://127.0.0.1:$(cat "$vgw/proxy-port")"
mio_ep=$(cat "$mio/endpoint"); mio_px="https://127.0.0.1:$(cat "$mio/proxy-port")"
# Both servers got their own random keys; the tools take them from the
# environment, so each row names the server's credentials file.
set -a; . "$vgw/credentials.env"; set +a
vgw_id=$AWS_ACCESS_KEY_ID; vgw_secret=$AWS_SECRET_ACCESS_KEY
set -a; . "$mio/credentials.env"; set +a
mio_id=$AWS_ACCESS_KEY_ID; mio_secret=$AWS_SECRET_ACCESS_KEY

echo "== starting the TDS stand-in"
mkdir -m 700 "$work/keys"
rand() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 20; }
login_pw="Lg-$(rand)9a"
MSSQL_STANDIN_PASSWORD="$login_pw" "$bin/mssql-standin" --listen 127.0.0.1:0 --user keyescrow --server-name BENCHHOST --instance BENCH \
  --port-file "$work/standin-port" >"$work/standin.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/standin-port" ] && break; sleep 0.05; done
[ -s "$work/standin-port" ] || { echo "the stand-in did not start:"; cat "$work/standin.log"; exit 1; }
export KEYESCROW_SQLSERVER_DSN="sqlserver://keyescrow:${login_pw}@127.0.0.1:$(cat "$work/standin-port")?encrypt=disable"
export KEYESCROW_BACKUP_PASSWORD="Bk'$(rand)#1"

head -c 150 /dev/urandom >"$work/smk.key"
chmod 600 "$work/smk.key"
sum_b64=$(openssl dgst -sha256 -binary "$work/smk.key" 2>/dev/null | base64 || python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1],"rb").read()).digest()).decode())' "$work/smk.key")
until=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)

config() { # file endpoint ca buckets... → a keyescrow config with one s3 destination per bucket
  local file=$1 ep=$2 ca=$3; shift 3
  {
    echo "backup:"
    echo "  server_directory: $work/keys"
    echo "home_region: eu-west-1"
    echo "lock_file: $work/keyescrow.lock"
    echo "destinations:"
    for b in "$@"; do
      echo "  - {name: $b, type: s3, bucket: $b, region: $region, endpoint: $ep, path_style: true, ca_file: $ca, retention: {mode: COMPLIANCE, days: 1}}"
    done
  } >"$file"
}
config "$work/v1.yaml" "$vgw_ep" "$vgw/certs/ca.pem" bench
config "$work/v1p.yaml" "$vgw_px" "$vgw/certs/ca.pem" bench
config "$work/v3.yaml" "$vgw_ep" "$vgw/certs/ca.pem" bench bench2 bench3
config "$work/v3p.yaml" "$vgw_px" "$vgw/certs/ca.pem" bench bench2 bench3
config "$work/m1.yaml" "$mio_ep" "$mio/certs/ca.pem" bench
config "$work/m1p.yaml" "$mio_px" "$mio/certs/ca.pem" bench
azconfig() { # file endpoint → a keyescrow config with one azureblob destination on Azurite
  cat >"$1" <<YAML
backup:
  server_directory: $work/keys
home_region: eu-west-1
lock_file: $work/keyescrow.lock
waive: [region, versioning, immutability]
destinations:
  - {name: bench, type: azureblob, account_url: $2/devstoreaccount1, container: bench, auth: shared-key, account_key_env: KEYESCROW_BENCH_AZ_KEY, ca_file: $az/certs/ca.pem, retention: {mode: locked, days: 1}}
YAML
}
azconfig "$work/a1.yaml" "$az_ep"
azconfig "$work/a1p.yaml" "$az_px"

# awscli as a user would script the same three steps (awscli 2.9 has no
# --if-none-match: its put-object is not create-only).
cat >"$work/awscli.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
ep=$1 ca=$2 bucket=$3 key=$4 file=$5 sum=$6 until=$7 out=$8
aws=(/usr/bin/aws --endpoint-url "$ep" --ca-bundle "$ca" --region eu-central-1 s3api)
v=$("${aws[@]}" put-object --bucket "$bucket" --key "$key" --body "$file" --checksum-sha256 "$sum" \
  --object-lock-mode COMPLIANCE --object-lock-retain-until-date "$until" --query VersionId --output text)
got=$("${aws[@]}" head-object --bucket "$bucket" --key "$key" --version-id "$v" --checksum-mode ENABLED --query ChecksumSHA256 --output text)
[ "$got" = "$sum" ]
"${aws[@]}" get-object --bucket "$bucket" --key "$key" --version-id "$v" "$out" >/dev/null
[ "$(sha256sum <"$out")" = "$(sha256sum <"$file")" ]
SH
chmod +x "$work/awscli.sh"

ke=$bin/keyescrow
vgw_env=(env "AWS_ACCESS_KEY_ID=$vgw_id" "AWS_SECRET_ACCESS_KEY=$vgw_secret")
mio_env=(env "AWS_ACCESS_KEY_ID=$mio_id" "AWS_SECRET_ACCESS_KEY=$mio_secret")
# Azurite's well-known development key (published by Microsoft; no secret).
az_env=(env "KEYESCROW_BENCH_AZ_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
rclone_env=(env RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$vgw_id"
  "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$vgw_secret" "RCLONE_CONFIG_BENCH_REGION=$region")

python3 - "$work/plan.json" <<PY
import json, sys
work, bin = "$work", "$bin"
vgw_env = json.loads('''$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${vgw_env[@]}")''')
mio_env = json.loads('''$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${mio_env[@]}")''')
az_env = json.loads('''$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${az_env[@]}")''')
rclone_env = json.loads('''$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${rclone_env[@]}")''')
ke = "$ke"
vgw_ca, mio_ca = "$vgw/certs/ca.pem", "$mio/certs/ca.pem"
vgw_ep, vgw_px, mio_ep, mio_px = "$vgw_ep", "$vgw_px", "$mio_ep", "$mio_px"
f, key_sum, until = work + "/smk.key", "$sum_b64", "$until"
vgw_take = "http://127.0.0.1:$(cat "$vgw/control-port")/take"
mio_take = "http://127.0.0.1:$(cat "$mio/control-port")/take"
az_take = "http://127.0.0.1:$(cat "$az/control-port")/take"
def limit(env, ep, ca): return env + [bin + "/limit", "-endpoint", ep, "-ca", ca, "-bucket", "bench", "-key", "limit/{n}.key", f]
def archive(env, cfg): return env + [ke, "archive", "--config", cfg, "--host", "BENCHHOST", "--instance", "BENCH", f]
def backup(env, cfg): return env + [ke, "backup", "--config", cfg]
def awscli(ep): return vgw_env + [work + "/awscli.sh", ep, vgw_ca, "bench", "awscli/{n}.key", f, key_sum, until, work + "/awscli.out"]
def rclone(ep): return rclone_env + ["rclone", "copyto", "--ca-cert", vgw_ca, "--s3-endpoint", ep, f, "bench:bench/rclone/{n}.key"]
receipt = ["PUT receipt"]
vgw_pid, mio_pid, az_pid = int("$(cat "$vgw/pid")"), int("$(cat "$mio/pid")"), int("$(cat "$az/azurite.pid")")
rows = [
  dict(name="limit (versitygw)", argv=limit(vgw_env, vgw_ep, vgw_ca), count_argv=limit(vgw_env, vgw_px, vgw_ca), server_pid=vgw_pid),
  dict(name="keyescrow archive (versitygw)", argv=archive(vgw_env, work + "/v1.yaml"), count_argv=archive(vgw_env, work + "/v1p.yaml"), apart=receipt, server_pid=vgw_pid),
  dict(name="keyescrow archive, 3 buckets (versitygw)", argv=archive(vgw_env, work + "/v3.yaml"), count_argv=archive(vgw_env, work + "/v3p.yaml"), apart=receipt, versus="keyescrow archive (versitygw)", server_pid=vgw_pid),
  dict(name="keyescrow backup, TDS stand-in (versitygw)", argv=backup(vgw_env, work + "/v1.yaml"), count_argv=backup(vgw_env, work + "/v1p.yaml"), apart=receipt, versus="keyescrow archive (versitygw)", server_pid=vgw_pid),
  dict(name="rclone copyto (versitygw)", argv=rclone(vgw_ep), count_argv=rclone(vgw_px), server_pid=vgw_pid),
  dict(name="awscli put+head+get (versitygw)", argv=awscli(vgw_ep), count_argv=awscli(vgw_px), server_pid=vgw_pid),
  dict(name="limit (MinIO)", argv=limit(mio_env, mio_ep, mio_ca), count_argv=limit(mio_env, mio_px, mio_ca), take=mio_take, server_pid=mio_pid),
  dict(name="keyescrow archive (MinIO)", argv=archive(mio_env, work + "/m1.yaml"), count_argv=archive(mio_env, work + "/m1p.yaml"), apart=receipt, take=mio_take, versus="limit (MinIO)", server_pid=mio_pid),
  dict(name="keyescrow archive (Azurite, versions and locks waived)", argv=archive(az_env, work + "/a1.yaml"), count_argv=archive(az_env, work + "/a1p.yaml"), apart=receipt, take=az_take, versus="keyescrow archive (versitygw)", server_pid=az_pid),
  dict(name="Go floor: print a line", argv=[bin + "/floor"], versus="Go floor: print a line"),
  dict(name="keyescrow version", argv=[ke, "version"], versus="Go floor: print a line"),
]
json.dump(dict(warmup=int("$warmup"), rounds=int("$rounds"), take=vgw_take, rows=rows), open(sys.argv[1], "w"), indent=1)
PY

echo "== start-up: keyescrow version against a Go program that only prints a line (hyperfine, no shell)"
hyperfine -N --warmup 10 --runs 100 --export-json "$work/version.json" "$ke version" "$bin/floor" >/dev/null 2>&1 || true
python3 - "$work/version.json" <<'PY' || true
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command'].split('/')[-1]}: median {r['median']*1000:.1f} ms, min {r['min']*1000:.1f} ms, max {r['max']*1000:.1f} ms, user {r['user']*1000:.1f} ms, system {r['system']*1000:.1f} ms over {len(r['times'])} runs")
PY

echo "== measuring: $warmup warm-up and $rounds alternating rounds, then one counted run of each through the proxy"
echo "== machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "== $(/usr/bin/aws --version 2>&1 | cut -d' ' -f1), $(rclone version 2>/dev/null | head -1), $("$bin/keyescrow" version), versitygw $(go version -m .tools/bin/versitygw | awk '$1=="mod"{print $3}')"
"$bin/benchrun" <"$work/plan.json"

[ "${BENCH_SCALE:-1}" = 0 ] && exit 0
echo
echo "== scale: seeding one bucket with the real archive pipeline (16 at a time)"
( set -a; . "$vgw/credentials.env"; set +a
  "$bin/s3bucket" -endpoint "$vgw_ep" -region "$region" -ca "$vgw/certs/ca.pem" -bucket scale >/dev/null )
scale_config() { # file endpoint prefix
  {
    echo "home_region: eu-west-1"
    echo "lock_file: $work/keyescrow.lock"
    echo "destinations:"
    echo "  - {name: scale, type: s3, bucket: scale, region: $region, endpoint: $2, path_style: true, ca_file: $vgw/certs/ca.pem, prefix: $3, retention: {mode: COMPLIANCE, days: 1}}"
  } >"$1"
}
for set in s500 s2000 f250 f1000; do
  scale_config "$work/$set.yaml" "$vgw_ep" "$set/"
  scale_config "$work/${set}p.yaml" "$vgw_px" "$set/"
done
seed() { "${vgw_env[@]}" "$bin/seed" -workers 16 -lock-dir "$work" "$@" "$work/smk.key"; }
seed -config "$work/s500.yaml" -hosts 1 -count 500 -host-prefix BIG
seed -config "$work/s2000.yaml" -hosts 1 -count 2000 -host-prefix BIG
seed -config "$work/f250.yaml" -hosts 250 -count 1 -host-prefix fleet
seed -config "$work/f1000.yaml" -hosts 1000 -count 1 -host-prefix fleet

python3 - "$work/scale.json" "$work" "$ke" "$(cat "$vgw/pid")" "http://127.0.0.1:$(cat "$vgw/control-port")/take" \
  "${BENCH_SCALE_ROUNDS:-5}" "${vgw_env[@]}" <<'PY'
import json, sys
out, work, ke, pid, take, rounds, env = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]), sys.argv[7:]
def cmd(s, args, proxy=False): return env + [ke, *args, "--config", f"{work}/{s}{'p' if proxy else ''}.yaml"]
rows = []
for what, args, small, big, unit in [
    ("list --json", ["list", "--json", "--host", "BIG"], "s500", "s2000", "copies of one host"),
    ("verify", ["verify", "--host", "BIG"], "s500", "s2000", "copies of one host"),
    ("verify --all-hosts", ["verify", "--all-hosts"], "f250", "f1000", "hosts, one copy each"),
]:
    first = f"{what}: {small[1:]} {unit}"
    for s in (small, big):
        rows.append(dict(name=f"{what}: {s[1:]} {unit}", argv=cmd(s, args), count_argv=cmd(s, args, True), versus=first, server_pid=pid))
json.dump(dict(warmup=1, rounds=rounds, take=take, rows=rows), open(out, "w"), indent=1)
PY
echo "== scale: 1 warm-up and ${BENCH_SCALE_ROUNDS:-5} alternating rounds, then one counted run of each through the proxy"
"$bin/benchrun" <"$work/scale.json"
