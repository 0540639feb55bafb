#!/usr/bin/env bash
# Start a private Dovecot POP3 server holding the fixture mailboxes, as a
# second, independent target for the conformance suite.
#
#   probe/peers/dovecot/start.sh WORKDIR
#
# Everything lives under WORKDIR (created if missing, must be empty of a
# running instance): dovecot.conf, the passwd-file, a self-signed
# certificate (ca.pem is the file to trust), the Maildirs, base_dir,
# state_dir and the log. /etc/dovecot is never read or written: the
# configuration is self-contained and Dovecot is started with -c.
#
# It listens on 127.0.0.1 only, on two free ports (plain+STLS and implicit
# TLS; POP3_DOVECOT_PORT / POP3_DOVECOT_TLS_PORT pick them instead), and
# prints one line
#
#   pop3=127.0.0.1:P pop3s=127.0.0.1:Q
#
# WORKDIR/env holds the same as shell assignments (POP3_PORT, POP3S_PORT,
# CA_FILE) and WORKDIR/stop.sh stops the server. Dovecot settings are left
# at their defaults except where a private, unprivileged instance needs
# otherwise; each such line below says why.
#
# Needs the Debian packages dovecot-core, dovecot-pop3d and openssl. Run as
# root, Dovecot uses its packaged users (dovecot, dovenull) for internal
# and login processes and the unprivileged user "nobody" for mail, so
# WORKDIR's parent directories must be searchable by others (mktemp -d
# under /tmp is fine); run as another user, everything runs as that user.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# repo, fixtures and the shared functions (make_cert, parse_users, ...)
. "$here/../lib.sh"

usage_workdir "$@"
for bin in dovecot openssl; do
	command -v "$bin" >/dev/null || {
		echo "$0: $bin is not installed (apt-get install dovecot-core dovecot-pop3d openssl)" >&2
		exit 1
	}
done
[ -x /usr/lib/dovecot/pop3 ] || {
	echo "$0: /usr/lib/dovecot/pop3 is missing (apt-get install dovecot-pop3d)" >&2
	exit 1
}

mkdir -p "$1"
work=$(cd "$1" && pwd)
refuse_if_running Dovecot "$work/run/master.pid"
rm -rf "$work/run" "$work/state" "$work/home" "$work/dovecot.log"
mkdir -p "$work/run" "$work/state" "$work/home"

if [ "$(id -u)" = 0 ]; then
	login_user=dovenull
	internal_user=dovecot
	mail_user=nobody
	mail_group=$(id -gn nobody)
	getent passwd dovenull dovecot >/dev/null || {
		echo "$0: the users dovecot and dovenull are missing; is dovecot-core installed?" >&2
		exit 1
	}
else
	login_user=$(id -un)
	internal_user=$login_user
	mail_user=$login_user
	mail_group=$(id -gn)
fi

# --- certificate: self-signed for localhost and 127.0.0.1 -----------------
make_cert "$work"

# --- users and maildrops from fixtures/mailboxes/users.yaml ----------------
: >"$work/passwd"
chmod 600 "$work/passwd"
user=""
n=0
while read -r kind rest; do
	case $kind in
	U)
		user=$rest
		mkdir -p "$work/home/$user/Maildir/"{cur,new,tmp}
		;;
	P)
		# passwd-file: user:password:uid:gid:gecos:home:shell:extra; the
		# password may hold spaces (bob's does), but no colon.
		case $rest in *:*)
			echo "$0: password of $user contains a colon" >&2
			exit 1
			;;
		esac
		printf '%s:{PLAIN}%s::::::\n' "$user" "$rest" >>"$work/passwd"
		;;
	M)
		# Dovecot assigns IMAP UIDs (and so the POP3 message numbers) in
		# the order of the times maildir_add puts in the file names.
		n=$((n + 1))
		maildir_add "$rest" "$work/home/$user/Maildir" "$n"
		;;
	esac
done < <(parse_users)
chown -R "$mail_user:$mail_group" "$work/home"
# the auth process runs as the internal user and reads the passwd-file
chown "$internal_user" "$work/passwd"
chmod 755 "$work"
if [ "$(id -u)" = 0 ]; then
	# the Dovecot processes must reach WORKDIR as their own users
	require_searchable nobody "$work" others
fi

write_conf() {
	cat >"$work/dovecot.conf" <<EOF
# Private Dovecot $(dovecot --version) configuration written by
# probe/peers/dovecot/start.sh; nothing here comes from /etc/dovecot.
# Keys not listed keep Dovecot's defaults.

# private instance: its own directories, log and name
base_dir = $work/run
state_dir = $work/state
instance_name = pop3conformance-$(basename "$work")
log_path = $work/dovecot.log
# the instance is not root-owned system software but a test peer
default_login_user = $login_user
default_internal_user = $internal_user

protocols = pop3
listen = 127.0.0.1

ssl = yes
ssl_cert = <$work/ca.pem
ssl_key = <$work/key.pem

# the fixture accounts; {PLAIN} because the passwords are public test values
passdb {
  driver = passwd-file
  args = scheme=PLAIN $work/passwd
}
userdb {
  driver = static
  args = uid=$mail_user gid=$mail_group home=$work/home/%u
}
mail_location = maildir:~/Maildir
first_valid_uid = $(id -u "$mail_user")

# PLAIN is Dovecot's default; LOGIN is commonly added and lets clients that
# prefer it authenticate. disable_plaintext_auth stays at its default (yes),
# which Dovecot does not apply to connections from the server's own address.
auth_mechanisms = plain login

# Dovecot's brute-force penalty is off (the documented way: auth cannot
# reach anvil's penalty socket). With it, every AUTH/PASS from an address
# with recent failures waits 2, 4, 8, then 15 s, even the "+ " of AUTH
# PLAIN; the suite fails logins on purpose from one address and waits 10 s
# for a reply. auth_failure_delay (2 s per failure) still applies.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3_port
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $pop3s_port
    ssl = yes
  }
}
# no other listeners: the instance serves POP3 only
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
service doveadm {
  inet_listener {
    port = 0
  }
}
EOF
}

started=""
for attempt in 1 2 3 4 5; do
	pop3_port=${POP3_DOVECOT_PORT:-$(pick_port)}
	pop3s_port=${POP3_DOVECOT_TLS_PORT:-$(pick_port)}
	[ "$pop3_port" != "$pop3s_port" ] || continue
	write_conf
	: >"$work/dovecot.log"
	if ! dovecot -c "$work/dovecot.conf" 2>>"$work/dovecot.log"; then
		tail -n 20 "$work/dovecot.log" >&2
		if grep -q "Address already in use" "$work/dovecot.log" && [ -z "${POP3_DOVECOT_PORT:-}" ]; then
			continue
		fi
		exit 1
	fi
	# wait until both listeners accept connections
	for _ in $(seq 100); do
		if ! port_free "$pop3_port" && ! port_free "$pop3s_port"; then
			started=yes
			break
		fi
		if [ -f "$work/run/master.pid" ] && ! kill -0 "$(cat "$work/run/master.pid")" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	[ -n "$started" ] && break
	[ -f "$work/run/master.pid" ] && kill "$(cat "$work/run/master.pid")" 2>/dev/null || true
	tail -n 20 "$work/dovecot.log" >&2
	[ -z "${POP3_DOVECOT_PORT:-}" ] || exit 1
done
if [ -z "$started" ]; then
	echo "$0: Dovecot did not start; see $work/dovecot.log" >&2
	exit 1
fi

write_stop_sh "$work" "$work/run/master.pid" "the Dovecot instance"
write_env "$work" "POP3_PORT=$pop3_port" "POP3S_PORT=$pop3s_port" "CA_FILE=$work/ca.pem"
echo "pop3=127.0.0.1:$pop3_port pop3s=127.0.0.1:$pop3s_port"
