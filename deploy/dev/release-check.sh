#!/usr/bin/env bash
# release-check.sh: validate the GoReleaser configuration and build a
# snapshot of all three targets (linux/amd64, linux/arm64, windows/amd64)
# twice, proving the archives and SHA256SUMS are reproducible. It builds a
# fresh clone of HEAD (what a release would build: committed files only),
# and copies its dist/ here. GoReleaser is installed, pinned, into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
GORELEASER_VERSION=v2.15.1
bin=.tools/bin/goreleaser
if ! [ -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "${GORELEASER_VERSION#v}"; then
	echo "installing goreleaser $GORELEASER_VERSION into .tools/bin (several minutes the first time)"
	GOBIN="$PWD/.tools/bin" go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
fi
bin=$PWD/$bin
"$bin" check
work=$(mktemp -d)
log=$work/log
trap 'rm -rf "$work"' EXIT
git clone -q . "$work/src"
repo=$PWD
cd "$work/src"
snapshot() {
	"$bin" release --snapshot --clean --skip=publish >"$1" 2>&1 || { cat "$1"; exit 1; }
	grep -q "commit=none" "$1" && { cat "$1"; echo "goreleaser found no git state" >&2; exit 1; }
	return 0
}
snapshot "$log"
cp dist/SHA256SUMS "$log.sums"
(cd dist && sha256sum -c SHA256SUMS)
for target in linux_amd64.tar.gz linux_arm64.tar.gz windows_amd64.zip; do
	ls dist/keyescrow_*_"$target" >/dev/null
done
# The README and the messages point at docs/: every page ships with them.
# (The listing is read whole first: grep -q stopping early would kill tar
# with SIGPIPE, which pipefail reports as a missing page.)
listing=$(tar -tzf dist/keyescrow_*_linux_amd64.tar.gz)
for page in README.md docs/README.md docs/configuration.md docs/exit-codes.md; do
	grep -qx "$page" <<<"$listing" || { echo "the archive lacks $page" >&2; exit 1; }
done
version=$(tar -xzOf dist/keyescrow_*_linux_amd64.tar.gz keyescrow >"$log.bin" && chmod +x "$log.bin" && "$log.bin" version)
echo "snapshot binary: $version"
case "$version" in *snapshot*) ;; *) echo "the snapshot binary does not carry the snapshot version" >&2; exit 1 ;; esac
snapshot "$log"
if ! cmp -s dist/SHA256SUMS "$log.sums"; then
	echo "the second snapshot differs: the build is not reproducible" >&2
	diff "$log.sums" dist/SHA256SUMS >&2 || true
	exit 1
fi
echo "reproducible: two snapshots produced the same SHA256SUMS"
cat dist/SHA256SUMS
rm -rf "$repo/dist"
cp -r dist "$repo/dist"
