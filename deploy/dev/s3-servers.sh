#!/usr/bin/env bash
# The S3-compatible servers the tests and the demo run against, pinned:
#   versitygw v1.8.0 (Apache-2.0) and MinIO (AGPL; a test tool, never linked).
#
#   deploy/dev/s3-servers.sh install [versitygw] [minio]
#       go install the named ones (default: both) into .tools/bin (skipped
#       when the pinned version is there already; about 1.5 and 3 minutes
#       cold). The demo installs versitygw only.
#   deploy/dev/s3-servers.sh start versitygw|minio DIR [REGION]
#       start one on a free 127.0.0.1 port over HTTPS with a throw-away
#       certificate (DIR/certs/ca.pem) in REGION (default eu-central-1);
#       writes DIR/pid, DIR/endpoint and DIR/credentials.env (0600: the
#       random root keys as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).
#   deploy/dev/s3-servers.sh stop DIR
#       stop the server started in DIR, by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSITYGW_MOD=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0
MINIO_MOD=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
BIN="$PWD/.tools/bin"

installed_version() { # binary module → version, or nothing
  [ -x "$1" ] || return 0
  go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}

install_one() { # name module-path module version
  local name=$1 pkg=$2 mod=$3 want=$4
  if [ "$(installed_version "$BIN/$name" "$mod")" = "$want" ]; then
    echo "$name $want: already in .tools/bin"
    return
  fi
  echo "$name $want: installing into .tools/bin (a few minutes the first time)"
  GOBIN="$BIN" go install "$pkg@$want"
  [ "$(installed_version "$BIN/$name" "$mod")" = "$want" ] || { echo "$name: installed version is not $want" >&2; exit 1; }
}

rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c "$1"; }

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

start() { # kind dir region
  local kind=$1 dir=$2 region=${3:-eu-central-1}
  [ -x "$BIN/$kind" ] || { echo "$kind is not installed: run $0 install (make tools-s3)" >&2; exit 1; }
  mkdir -p "$dir/certs" "$dir/data"
  chmod 700 "$dir"
  go run ./internal/testtls/cmd/testcert "$dir/certs" >/dev/null
  local port access secret
  port=$(free_port)
  access="ke$(rand 16)"
  secret="$(rand 40)"
  case "$kind" in
    versitygw)
      mkdir -p "$dir/data/root" "$dir/data/versions"
      ROOT_ACCESS_KEY="$access" ROOT_SECRET_KEY="$secret" \
        "$BIN/versitygw" --port "127.0.0.1:$port" --region "$region" \
        --cert "$dir/certs/cert.pem" --key "$dir/certs/key.pem" \
        posix --versioning-dir "$dir/data/versions" "$dir/data/root" >"$dir/server.log" 2>&1 &
      ;;
    minio)
      mkdir -p "$dir/minio-certs"
      cp "$dir/certs/cert.pem" "$dir/minio-certs/public.crt"
      cp "$dir/certs/key.pem" "$dir/minio-certs/private.key"
      MINIO_ROOT_USER="$access" MINIO_ROOT_PASSWORD="$secret" MINIO_SITE_REGION="$region" \
        MINIO_BROWSER=off MINIO_UPDATE=off \
        "$BIN/minio" server "$dir/data" --address "127.0.0.1:$port" --certs-dir "$dir/minio-certs" --quiet >"$dir/server.log" 2>&1 &
      ;;
    *) echo "unknown server $kind: use versitygw or minio" >&2; exit 2 ;;
  esac
  echo $! >"$dir/pid"
  echo "https://127.0.0.1:$port" >"$dir/endpoint"
  (umask 077; printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$access" "$secret" >"$dir/credentials.env")
  local url="https://127.0.0.1:$port/"
  [ "$kind" = minio ] && url="https://127.0.0.1:$port/minio/health/ready"
  for _ in $(seq 1 600); do
    if curl -fsS --cacert "$dir/certs/ca.pem" -o /dev/null "$url" 2>/dev/null ||
      { [ "$kind" = versitygw ] && curl -sS --cacert "$dir/certs/ca.pem" -o /dev/null "$url" 2>/dev/null; }; then
      echo "$kind ready at https://127.0.0.1:$port (region $region, pid $(cat "$dir/pid"))"
      return
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "$kind did not start:" >&2
  cat "$dir/server.log" >&2
  stop "$dir"
  exit 1
}

stop() { # dir
  local dir=$1 pid
  [ -s "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

case "${1:-}" in
  install)
    mkdir -p "$BIN"
    shift
    [ $# -gt 0 ] || set -- versitygw minio
    for name in "$@"; do
      case "$name" in
        versitygw) install_one versitygw "$VERSITYGW_MOD" github.com/versity/versitygw "$VERSITYGW_VERSION" ;;
        minio) install_one minio "$MINIO_MOD" "$MINIO_MOD" "$MINIO_VERSION" ;;
        *) echo "unknown server $name: use versitygw or minio" >&2; exit 2 ;;
      esac
    done
    ;;
  start) [ $# -ge 3 ] || { echo "usage: $0 start versitygw|minio DIR [REGION]" >&2; exit 2; }; start "$2" "$3" "${4:-}" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 install [versitygw] [minio] | start versitygw|minio DIR [REGION] | stop DIR" >&2; exit 2 ;;
esac
