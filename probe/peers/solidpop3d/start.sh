#!/usr/bin/env bash
# Start a private Solid POP3 server (Debian's solid-pop3d) holding the
# fixture mailboxes in Maildirs, as a target for the conformance probe.
#
#   probe/peers/solidpop3d/start.sh WORKDIR
#
# solid-pop3d reads its configuration from WORKDIR/spop3d.conf (-f; the
# system's /etc/spop3d.conf is not read) with each maildrop the Maildir
# WORKDIR/maildirs/NAME. It serves system accounts only (getpwnam(3), and
# it switches to the account's uid after login) and checks passwords with
# the PAM service "solid-pop3d", so start.sh runs it in a mount namespace
# of its own (lib.sh's in_private_ns) where
#
#   WORKDIR/etc/passwd  is /etc/passwd: the system's accounts, "spop3d",
#                       and users.yaml's accounts (private uids)
#   WORKDIR/pam.d       is /etc/pam.d: solid-pop3d checks
#                       WORKDIR/etc/pwdfile (pam_pwdfile, users.yaml's
#                       passwords)
#
# and nothing outside WORKDIR changes. The logins are users.yaml's names
# and passwords. The configuration keeps the server's defaults (among them
# WrongCommandsLimit 5 and APOP allowed) except the maildrop, no
# statistics in the log, no per-user ~/.spop3d, no bulletins.
#
# solid-pop3d runs the inetd way (one process per connection on its stdin
# and stdout): socat accepts on 127.0.0.1 on a free port
# (POP3_SOLIDPOP3D_PORT picks it), hands each connection to a new
# solid-pop3d, and prints
#
#   pop3=127.0.0.1:P
#
# WORKDIR/env holds POP3_PORT and MAILDIRS (where the tests count the
# messages), and WORKDIR/stop.sh stops socat. It has no TLS and logs to
# syslog only.
#
# Needs root, mount namespaces (unshare -m), socat, libpam-pwdfile,
# liblockfile1, openssl and solid-pop3d. solid-pop3d conflicts with every
# other POP3 server package (Conflicts: pop3-server), so where another
# must stay it is unpacked instead, as .ci/run does:
#   apt-get download solid-pop3d && dpkg-deb -x solid-pop3d_*.deb /opt/solid-pop3d
# (SOLID_POP3D_ROOT overrides /opt/solid-pop3d). WORKDIR's parent
# directories must be searchable by others (mktemp -d under /tmp, chmod
# 755, is fine).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# repo, fixtures and the shared functions (parse_users, maildir_add, ...)
. "$here/../lib.sh"

usage_workdir "$@"
spop3d=/usr/sbin/solid-pop3d
[ -x "$spop3d" ] || spop3d=${SOLID_POP3D_ROOT:-/opt/solid-pop3d}/usr/sbin/solid-pop3d
for bin in "$spop3d" socat openssl unshare; do
	command -v "$bin" >/dev/null || {
		echo "$0: $bin is not installed (apt-get install socat openssl libpam-pwdfile liblockfile1, and solid-pop3d or, where another POP3 server package must stay, apt-get download solid-pop3d && dpkg-deb -x solid-pop3d_*.deb /opt/solid-pop3d)" >&2
		exit 1
	}
done
require_private_ns

mkdir -p "$1"
work=$(cd "$1" && pwd)
refuse_if_running solid-pop3d "$work/socat.pid"
rm -rf "$work/etc" "$work/pam.d" "$work/home" "$work/maildirs" "$work/socat.log" "$work/socat.pid"
mkdir -p "$work/maildirs"
chmod 755 "$work" "$work/maildirs"
require_searchable nobody "$work" others

# --- accounts and Maildirs from fixtures/mailboxes/users.yaml --------------
# solid-pop3d reads its configuration as the user spop3d (the package's
# postinst creates it)
nogroup=$(getent group nogroup | cut -d: -f3)
private_accounts "$work" solid-pop3d "spop3d:$((first_private_uid - 2)):$nogroup:/nonexistent"
n=0
while read -r kind rest; do
	case $kind in
	U)
		user=$rest
		mkdir -p "$work/maildirs/$user/"{cur,new,tmp}
		;;
	M)
		n=$((n + 1))
		maildir_add "$rest" "$work/maildirs/$user" "$n"
		;;
	esac
done < <(parse_users)
# each Maildir belongs to its account, as the MDA leaves it
while read -r kind rest; do
	[ "$kind" = U ] || continue
	chown -R "$(private_uid "$rest"):nogroup" "$work/maildirs/$rest"
	chmod 700 "$work/maildirs/$rest"
done < <(parse_users)

cat >"$work/spop3d.conf" <<CONF
/* Private solid-pop3d configuration written by
   probe/peers/solidpop3d/start.sh; /etc/spop3d.conf is not read. */
<Global>
	MailDropName	"$work/maildirs/%s"
	MailDropType	maildir
	LogStatistics	no
	UserOverride	no
	AddBulletins	no
</Global>
CONF
chmod 644 "$work/spop3d.conf"

# setsid so that socat outlives this script's session; nofork hands
# solid-pop3d the TCP socket itself, as inetd does
launch() {
	in_private_ns "$work" -- \
		setsid socat "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" "EXEC:$spop3d -f $work/spop3d.conf,nofork"
}
start_listening "$work/socat.log" "${POP3_SOLIDPOP3D_PORT:-}" launch
echo "$pid" >"$work/socat.pid"

write_stop_sh "$work" "$work/socat.pid" "the socat listener that starts solid-pop3d"
write_env "$work" "POP3_PORT=$port" "MAILDIRS=$work/maildirs"
echo "pop3=127.0.0.1:$port"
