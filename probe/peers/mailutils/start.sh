#!/usr/bin/env bash
# Start a private GNU Mailutils pop3d holding the fixture mailboxes, as a
# further independent target for the conformance probe (next to
# probe/peers/dovecot).
#
#   probe/peers/mailutils/start.sh WORKDIR
#
# Everything lives under WORKDIR (created if missing): pop3d.conf, the
# virtual-domain password file, a self-signed certificate (ca.pem is the
# file to trust), the Maildirs, the lock directory, the pid file and the
# log. /etc/mailutils.conf is never read (--config-file implies
# --no-config) and no system user is created.
#
# Accounts. Mailutils authorizes users from the system passwd, PAM, SQL,
# LDAP or "virtdomain" password files. Only the last needs no system
# change: a passwd(5)-format file per domain, WORKDIR/domains/localhost,
# with crypt(3) hashes (authentication "generic" compares them). pop3d in
# daemon mode finds it only from a login name with a domain, so the
# fixture accounts log in as alice@localhost, bob@localhost, ... (the
# passwords are users.yaml's). Each maildrop is the Maildir
# WORKDIR/home/NAME/INBOX (virtdomain's mailbox is HOME/INBOX; Mailutils
# detects the Maildir format from cur/new/tmp).
#
# It listens on 127.0.0.1 only, on two free ports (plain+STLS and implicit
# TLS; POP3_MAILUTILS_PORT / POP3_MAILUTILS_TLS_PORT pick them instead),
# and prints one line
#
#   pop3=127.0.0.1:P pop3s=127.0.0.1:Q
#
# WORKDIR/env holds the same as shell assignments (POP3_PORT, POP3S_PORT,
# CA_FILE, USER_SUFFIX) and WORKDIR/stop.sh stops the server.
# POP3_MAILUTILS_TRANSCRIPT=1 logs every session's commands and replies to
# WORKDIR/pop3d.log (Mailutils hides PASS arguments).
#
# Needs the Debian packages mailutils-pop3d and openssl. Run as root, pop3d
# switches to the user "nobody" (the uid in the password file) after
# login, so WORKDIR's parent directories must be searchable by others
# (mktemp -d under /tmp is fine); run as another user, everything runs as
# that user.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# repo, fixtures and the shared functions (make_cert, parse_users, ...)
. "$here/../lib.sh"
domain=localhost

usage_workdir "$@"
for bin in pop3d openssl; do
	command -v "$bin" >/dev/null || {
		echo "$0: $bin is not installed (apt-get install mailutils-pop3d openssl)" >&2
		exit 1
	}
done

mkdir -p "$1"
work=$(cd "$1" && pwd)
refuse_if_running pop3d "$work/pop3d.pid"
rm -rf "$work/home" "$work/domains" "$work/lock" "$work/pop3d.log" "$work/pop3d.pid"
mkdir -p "$work/home" "$work/domains" "$work/lock"

if [ "$(id -u)" = 0 ]; then
	mail_user=nobody
	mail_group=$(id -gn nobody)
else
	mail_user=$(id -un)
	mail_group=$(id -gn)
fi
mail_uid=$(id -u "$mail_user")
mail_gid=$(getent group "$mail_group" | cut -d: -f3)

# --- certificate: self-signed for localhost and 127.0.0.1 -----------------
make_cert "$work"

# --- users and maildrops from fixtures/mailboxes/users.yaml ----------------
pwfile="$work/domains/$domain"
: >"$pwfile"
user=""
n=0
while read -r kind rest; do
	case $kind in
	U)
		user=$rest
		mkdir -p "$work/home/$user/INBOX/"{cur,new,tmp}
		;;
	P)
		# passwd(5) line: name:hash:uid:gid:gecos:home:shell. The hash is
		# SHA-512 crypt; the password may hold spaces (bob's does).
		hash=$(printf '%s' "$rest" | openssl passwd -6 -stdin)
		printf '%s:%s:%s:%s:pop3conformance fixture:%s:/bin/false\n' \
			"$user" "$hash" "$mail_uid" "$mail_gid" "$work/home/$user" >>"$pwfile"
		;;
	M)
		n=$((n + 1))
		maildir_add "$rest" "$work/home/$user/INBOX" "$n"
		;;
	esac
done < <(parse_users)
chown -R "$mail_user:$mail_group" "$work/home" "$work/lock"
chmod 644 "$pwfile"
chmod 755 "$work"
if [ "$(id -u)" = 0 ]; then
	# after login pop3d runs as nobody and must reach the Maildirs
	require_searchable nobody "$work" others
fi

transcript=no
[ -z "${POP3_MAILUTILS_TRANSCRIPT:-}" ] || transcript=yes

write_conf() {
	cat >"$work/pop3d.conf" <<EOF
# Private GNU Mailutils pop3d configuration written by
# probe/peers/mailutils/start.sh; /etc/mailutils.conf is not read.
# Statements not listed keep pop3d's defaults.

# diagnostics to stderr (the log file), not syslog
logging {
  syslog no;
}
pidfile $work/pop3d.pid;

# the fixture accounts: virtual-domain password file, crypt(3) hashes
auth {
  authorization virtdomain;
  authentication generic;
}
virtdomain {
  passwd-dir $work/domains;
}

# pop3d locks a maildrop for the session (RFC 1939 section 8) with lock
# files in /var/lock/subsys/mail by default; a private directory instead
mandatory-locking {
  enable yes;
  lock-directory $work/lock;
}

tls {
  ssl-certificate-file $work/ca.pem;
  ssl-key-file $work/key.pem;
}

# plain with STLS, and implicit TLS
server 127.0.0.1:$pop3_port {
  tls-mode stls;
  transcript $transcript;
}
server 127.0.0.1:$pop3s_port {
  tls-mode connection;
  transcript $transcript;
}
EOF
}

pid=""
started=""
for attempt in 1 2 3 4 5; do
	pop3_port=${POP3_MAILUTILS_PORT:-$(pick_port)}
	pop3s_port=${POP3_MAILUTILS_TLS_PORT:-$(pick_port)}
	[ "$pop3_port" != "$pop3s_port" ] || continue
	write_conf
	if ! pop3d --config-file="$work/pop3d.conf" --config-lint >"$work/pop3d.log" 2>&1; then
		cat "$work/pop3d.log" >&2
		exit 1
	fi
	: >"$work/pop3d.log"
	# --foreground: the shell knows the daemon's pid; stdin from
	# /dev/null and setsid so that it outlives this script's session
	setsid pop3d --config-file="$work/pop3d.conf" --daemon --foreground \
		</dev/null >>"$work/pop3d.log" 2>&1 &
	pid=$!
	if wait_listening "$pid" "$pop3_port" "$pop3s_port"; then
		started=yes
		break
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	tail -n 20 "$work/pop3d.log" >&2
	[ -z "${POP3_MAILUTILS_PORT:-}" ] || exit 1
done
if [ -z "$started" ]; then
	echo "$0: pop3d did not start; see $work/pop3d.log" >&2
	exit 1
fi
echo "$pid" >"$work/pop3d.pid"

# stop.sh ends the master process; its session children end when their
# clients go or time out.
write_stop_sh "$work" "$work/pop3d.pid" "the pop3d instance"
write_env "$work" "POP3_PORT=$pop3_port" "POP3S_PORT=$pop3s_port" "CA_FILE=$work/ca.pem" "USER_SUFFIX=@$domain"
echo "pop3=127.0.0.1:$pop3_port pop3s=127.0.0.1:$pop3s_port"
