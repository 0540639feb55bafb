#!/usr/bin/env bash
# Start a private popa3d (Openwall's POP3 server, Debian's popa3d)
# holding the fixture mailboxes, as a target for the conformance probe.
#
#   probe/peers/popa3d/start.sh WORKDIR
#
# popa3d has no configuration: it serves system accounts (getpwnam(3)),
# checks passwords with the PAM service "popa3d", reads each maildrop from
# the mbox /var/mail/NAME, and before login runs as the user "popa3d"
# chrooted to /var/lib/popa3d. start.sh therefore runs it in a mount
# namespace of its own (lib.sh's in_private_ns) where
#
#   WORKDIR/etc/passwd  is /etc/passwd: the system's accounts, "popa3d",
#                       and users.yaml's accounts (private uids)
#   WORKDIR/pam.d       is /etc/pam.d: popa3d checks WORKDIR/etc/pwdfile
#                       (pam_pwdfile, users.yaml's passwords)
#   WORKDIR/mail        is /var/mail: one mbox per account
#   WORKDIR/varlib      is /var/lib: holds the empty chroot popa3d/
#
# and nothing outside WORKDIR changes. The logins are users.yaml's names
# and passwords.
#
# popa3d runs the inetd way (one process per connection on its stdin and
# stdout; its -D daemon mode listens on port 110 of every address): socat
# accepts on 127.0.0.1 on a free port (POP3_POPA3D_PORT picks it), hands
# each connection to a new popa3d, and prints
#
#   pop3=127.0.0.1:P
#
# WORKDIR/env holds POP3_PORT and MAIL_DIR (WORKDIR/mail, where the tests
# count the messages), and WORKDIR/stop.sh stops socat. popa3d has no TLS.
# It logs to syslog only.
#
# Needs root, mount namespaces (unshare -m), socat, libpam-pwdfile,
# openssl and popa3d. popa3d conflicts with every other POP3 server
# package (Conflicts: pop3-server), so where another must stay it is
# unpacked instead, as .ci/run does:
#   apt-get download popa3d && dpkg-deb -x popa3d_*.deb /opt/popa3d
# (POPA3D_ROOT overrides /opt/popa3d). WORKDIR's parent directories must
# be searchable by others (mktemp -d under /tmp, chmod 755, is fine).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# repo, fixtures and the shared functions (parse_users, mbox_add, ...)
. "$here/../lib.sh"

usage_workdir "$@"
popa3d=/usr/sbin/popa3d
[ -x "$popa3d" ] || popa3d=${POPA3D_ROOT:-/opt/popa3d}/usr/sbin/popa3d
for bin in "$popa3d" socat openssl unshare; do
	command -v "$bin" >/dev/null || {
		echo "$0: $bin is not installed (apt-get install socat openssl libpam-pwdfile, and popa3d or, where another POP3 server package must stay, apt-get download popa3d && dpkg-deb -x popa3d_*.deb /opt/popa3d)" >&2
		exit 1
	}
done
require_private_ns

mkdir -p "$1"
work=$(cd "$1" && pwd)
refuse_if_running popa3d "$work/socat.pid"
rm -rf "$work/etc" "$work/pam.d" "$work/home" "$work/mail" "$work/varlib" "$work/socat.log" "$work/socat.pid"
mkdir -p "$work/mail" "$work/varlib/popa3d"
chmod 755 "$work" "$work/varlib" "$work/varlib/popa3d"
require_searchable nobody "$work" others

# --- accounts and mboxes from fixtures/mailboxes/users.yaml ----------------
nogroup=$(getent group nogroup | cut -d: -f3)
private_accounts "$work" popa3d "popa3d:$((first_private_uid - 1)):$nogroup:/var/lib/popa3d"
n=0
while read -r kind rest; do
	case $kind in
	U)
		user=$rest
		: >"$work/mail/$user"
		;;
	M)
		n=$((n + 1))
		mbox_add "$rest" "$work/mail/$user" "$n"
		;;
	esac
done < <(parse_users)
# each mbox belongs to its account, as the MDA leaves it
while read -r kind rest; do
	[ "$kind" = U ] || continue
	chown "$(private_uid "$rest"):mail" "$work/mail/$rest"
	chmod 600 "$work/mail/$rest"
done < <(parse_users)
chown root:mail "$work/mail"
chmod 2775 "$work/mail"

# setsid so that socat outlives this script's session; nofork hands
# popa3d the TCP socket itself, as inetd does
launch() {
	in_private_ns "$work" "$work/mail:/var/mail" "$work/varlib:/var/lib" -- \
		setsid socat "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" "EXEC:$popa3d,nofork"
}
start_listening "$work/socat.log" "${POP3_POPA3D_PORT:-}" launch
echo "$pid" >"$work/socat.pid"

write_stop_sh "$work" "$work/socat.pid" "the socat listener that starts popa3d"
write_env "$work" "POP3_PORT=$port" "MAIL_DIR=$work/mail"
echo "pop3=127.0.0.1:$port"
