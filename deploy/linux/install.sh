#!/usr/bin/env bash
# install.sh: install keyescrow on a Linux SQL Server host, with the owners
# and modes the agent needs, and enable the daily systemd timer.
#
#   sudo deploy/linux/install.sh --binary ./keyescrow [--config my.yaml]
#   deploy/linux/install.sh --dry-run ...     # print what it would do
#   deploy/linux/install.sh --root DIR ...    # install into DIR (packaging, tests)
#
# It never overwrites an existing config or secret, and never takes a secret
# on the command line: it creates empty root-only secret files and tells you
# how to fill them from standard input.
set -euo pipefail

root="" dry=0 binary="" config="" mssql_user=mssql user=keyescrow
key_dir=/var/opt/mssql/keyescrow enable=1 users=1
here=$(cd "$(dirname "$0")" && pwd)

usage() {
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	cat <<'USAGE'
Options:
  --binary PATH      the keyescrow binary to install (required)
  --config PATH      config to install as /etc/keyescrow/keyescrow.yaml (default: the example)
  --key-dir DIR      the folder SQL Server writes key files to (default /var/opt/mssql/keyescrow)
  --mssql-user NAME  SQL Server's service account (default mssql)
  --root DIR         install under DIR instead of /; implies --no-enable
  --no-users         do not create the keyescrow user or change owners (with --root)
  --no-enable        install the units but do not enable the timer
  --dry-run          print the actions, change nothing
USAGE
}

while [ $# -gt 0 ]; do
	case "$1" in
	--binary) binary=$2; shift 2 ;;
	--config) config=$2; shift 2 ;;
	--key-dir) key_dir=$2; shift 2 ;;
	--mssql-user) mssql_user=$2; shift 2 ;;
	--root) root=$2; enable=0; shift 2 ;;
	--no-users) users=0; shift ;;
	--no-enable) enable=0; shift ;;
	--dry-run) dry=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [ -z "$binary" ]; then
	echo "install.sh: --binary PATH is required (build it with: make build)" >&2
	exit 2
fi
if [ ! -x "$binary" ]; then
	echo "install.sh: $binary is not an executable file" >&2
	exit 2
fi
if [ -z "$config" ]; then
	config=$here/keyescrow.yaml.example
fi
if [ "$dry" = 0 ] && [ "$users" = 1 ] && [ "$(id -u)" != 0 ]; then
	echo "install.sh: run it as root (sudo), or use --dry-run / --root DIR --no-users" >&2
	exit 2
fi

run() {
	if [ "$dry" = 1 ]; then
		printf '+ %s\n' "$*"
	else
		"$@"
	fi
}
# own OWNER:GROUP PATH: change the owner unless --no-users.
own() {
	if [ "$users" = 1 ]; then run chown "$1" "$2"; fi
}
# newfile MODE OWNER SOURCE DEST: install SOURCE unless DEST exists.
newfile() {
	if [ -e "$root$4" ]; then
		echo "keeping existing $4"
		return
	fi
	run install -m "$1" "$3" "$root$4"
	own "$2" "$root$4"
}

if [ "$users" = 1 ]; then
	if ! id "$mssql_user" >/dev/null 2>&1; then
		echo "install.sh: SQL Server's account $mssql_user does not exist (is SQL Server installed? use --mssql-user)" >&2
		exit 2
	fi
	if ! getent group "$user" >/dev/null; then run groupadd --system "$user"; fi
	if ! id "$user" >/dev/null 2>&1; then
		run useradd --system --gid "$user" --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$user"
	fi
fi

run install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/cron.d"
run install -m 0755 "$binary" "$root/usr/local/bin/keyescrow"
own root:root "$root/usr/local/bin/keyescrow"

run install -d -m 0750 "$root/etc/keyescrow"
own "root:$user" "$root/etc/keyescrow"
newfile 0640 "root:$user" "$config" /etc/keyescrow/keyescrow.yaml

# Secrets: root-only; systemd's LoadCredential= hands them to the unit.
run install -d -m 0700 "$root/etc/keyescrow/secrets"
own root:root "$root/etc/keyescrow/secrets"
for s in backup-password sqlserver-dsn; do
	newfile 0600 root:root /dev/null "/etc/keyescrow/secrets/$s"
done

# The key folder: SQL Server writes, the agent reads and removes. The setgid
# bit makes every new file group keyescrow.
run install -d -m 0755 "$root$(dirname "$key_dir")"
run install -d -m 2770 "$root$key_dir"
own "$mssql_user:$user" "$root$key_dir"
run chmod 2770 "$root$key_dir"
# Whatever umask SQL Server runs with, a default ACL lets group keyescrow
# read the files it writes there (and nobody else).
if [ "$users" = 1 ]; then
	if command -v setfacl >/dev/null; then
		run setfacl -d -m "g:$user:rwX,o::-" "$root$key_dir"
	else
		echo "note: setfacl is missing (apt-get install acl); if SQL Server writes key files without group read, the agent cannot read them" >&2
	fi
fi

# The state folder: the run lock and the host identity backup records.
# Owner-only, the agent's own: keyescrow refuses a state folder another
# account owns or can write.
run install -d -m 0755 "$root/var/lib"
run install -d -m 0700 "$root/var/lib/keyescrow"
own "$user:$user" "$root/var/lib/keyescrow"

run install -d -m 0750 "$root/var/log/keyescrow"
own "$user:$user" "$root/var/log/keyescrow"

for u in keyescrow-backup.service keyescrow-backup.timer keyescrow-verify.service keyescrow-verify.timer; do
	src=$here/$u
	if [ "$key_dir" != /var/opt/mssql/keyescrow ]; then
		tmp=$(mktemp)
		sed "s#/var/opt/mssql/keyescrow#$key_dir#g" "$src" >"$tmp"
		src=$tmp
	fi
	run install -m 0644 "$src" "$root/etc/systemd/system/$u"
done
newfile 0644 root:root "$here/keyescrow.cron" /etc/cron.d/keyescrow.disabled

if [ "$enable" = 1 ]; then
	run systemctl daemon-reload
	run systemctl enable --now keyescrow-backup.timer keyescrow-verify.timer
fi

cat <<DONE
keyescrow is installed${root:+ under $root}.
Next:
  1. Edit /etc/keyescrow/keyescrow.yaml (destinations, home_region).
  2. Write the secrets from standard input (never on a command line):
       sudo sh -c 'umask 077; cat > /etc/keyescrow/secrets/backup-password'
       sudo sh -c 'umask 077; cat > /etc/keyescrow/secrets/sqlserver-dsn'
  3. Check:  sudo systemctl start keyescrow-backup.service; journalctl -u keyescrow-backup.service
DONE
