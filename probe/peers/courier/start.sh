#!/usr/bin/env bash
# Start a private Courier POP3 server (courierpop3login + courierpop3d
# behind couriertcpd, authdaemond with the userdb module) holding the
# fixture mailboxes, as a further independent target for the conformance
# probe (next to probe/peers/dovecot and probe/peers/mailutils).
#
#   probe/peers/courier/start.sh WORKDIR
#
# Needs root. Courier compiles its paths in: the POP3 login process asks
# authdaemond over /run/courier/authdaemon/socket, authdaemond reads
# /etc/courier/authdaemonrc, and the userdb module reads
# /etc/courier/userdb.dat. So the whole server runs in a mount namespace
# of its own (unshare -m) where WORKDIR/etc is bind-mounted on
# /etc/courier and WORKDIR/run on /run/courier: the system's files, and a
# system authdaemond if one runs, are neither read nor touched, and
# nothing is left behind when the processes end. No system user is
# created: the userdb entries name the user "nobody", which owns the
# Maildirs (WORKDIR/home/NAME/Maildir).
#
# Everything lives under WORKDIR (created if missing): etc/ (authdaemonrc,
# userdb, userdb.dat, pop3d.pem), run/ (authdaemond's socket), the
# Maildirs, a self-signed certificate (ca.pem is the file to trust), the
# pid file and the logs (authdaemond.log, pop3d.log, pop3d-ssl.log).
#
# It listens on 127.0.0.1 only, on two free ports (plain with STLS, and
# implicit TLS through couriertls; POP3_COURIER_PORT /
# POP3_COURIER_TLS_PORT pick them instead), and prints one line
#
#   pop3=127.0.0.1:P pop3s=127.0.0.1:Q
#
# WORKDIR/env holds the same as shell assignments (POP3_PORT, POP3S_PORT,
# CA_FILE, USER_SUFFIX, empty: the login names are users.yaml's) and
# WORKDIR/stop.sh stops the server. POP3_COURIER_DEBUG=1 sets
# authdaemond's DEBUG_LOGIN=1 (authentication steps in authdaemond.log).
#
# The Debian packages: courier-base (couriertcpd, couriertls),
# courier-authdaemon, courier-authlib-userdb, openssl, and the two
# programs of courier-pop, /usr/lib/courier/courier/courierpop3login and
# courierpop3d. courier-pop conflicts with every other POP3 server
# package (they all provide pop3-server: dovecot-pop3d, mailutils-pop3d,
# cyrus-pop3d), so where one of those must stay installed, unpack
# courier-pop instead of installing it:
#
#   apt-get download courier-pop && dpkg-deb -x courier-pop_*.deb /opt/courier-pop
#
# start.sh looks for the programs in /usr/lib/courier/courier, then in
# $COURIER_POP_ROOT/usr/lib/courier/courier (COURIER_POP_ROOT defaults to
# /opt/courier-pop).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# repo, fixtures and the shared functions (make_cert, parse_users, ...)
. "$here/../lib.sh"

usage_workdir "$@"
if [ "$(id -u)" != 0 ]; then
	echo "$0: must run as root (the server runs in a private mount namespace)" >&2
	exit 1
fi

# --- programs ----------------------------------------------------------------
pop3bin=""
for d in /usr/lib/courier/courier "${COURIER_POP_ROOT:-/opt/courier-pop}/usr/lib/courier/courier"; do
	if [ -x "$d/courierpop3login" ] && [ -x "$d/courierpop3d" ]; then
		pop3bin=$d
		break
	fi
done
if [ -z "$pop3bin" ]; then
	echo "$0: courierpop3login/courierpop3d not found in /usr/lib/courier/courier or ${COURIER_POP_ROOT:-/opt/courier-pop}/usr/lib/courier/courier (apt-get install courier-pop, or apt-get download courier-pop && dpkg-deb -x courier-pop_*.deb /opt/courier-pop)" >&2
	exit 1
fi
authdaemond=/usr/lib/courier/courier-authlib/authdaemond
for f in "$authdaemond" /usr/lib/courier-authlib/libauthuserdb.so.0; do
	[ -e "$f" ] || {
		echo "$0: $f is missing (apt-get install courier-authdaemon courier-authlib-userdb)" >&2
		exit 1
	}
done
for bin in couriertcpd couriertls makeuserdb openssl unshare; do
	command -v "$bin" >/dev/null || {
		echo "$0: $bin is not installed (apt-get install courier-base courier-authlib-userdb openssl util-linux)" >&2
		exit 1
	}
done
couriertls=$(command -v couriertls)
couriertcpd=$(command -v couriertcpd)

mkdir -p "$1"
work=$(cd "$1" && pwd)
if [ -f "$work/courier.pid" ] && [ -r "/proc/$(cat "$work/courier.pid")/stat" ]; then
	echo "$0: a Courier instance already runs from $work (stop it with $work/stop.sh)" >&2
	exit 1
fi
rm -rf "$work/home" "$work/etc" "$work/run" "$work"/*.log "$work/courier.pid" "$work/pids"
mkdir -p "$work/home" "$work/etc" "$work/run/authdaemon"
chmod 755 "$work"

mail_user=nobody
mail_uid=$(id -u "$mail_user")
mail_gid=$(id -g "$mail_user")

# --- certificate: self-signed for localhost and 127.0.0.1 -----------------
make_cert "$work"
# couriertls wants key and certificate in one file, not world-readable.
# For STLS courierpop3login runs it as the user courier (courier-base
# creates it), hence group courier, as /etc/courier/pop3d.pem has.
cat "$work/key.pem" "$work/ca.pem" >"$work/etc/pop3d.pem"
chmod 640 "$work/etc/pop3d.pem"
if getent group courier >/dev/null; then
	chgrp courier "$work/etc/pop3d.pem"
fi

# --- users and maildrops from fixtures/mailboxes/users.yaml ----------------
userdb="$work/etc/userdb"
: >"$userdb"
chmod 600 "$userdb"
user=""
n=0
while read -r kind rest; do
	case $kind in
	U)
		user=$rest
		mkdir -p "$work/home/$user/Maildir/"{cur,new,tmp}
		;;
	P)
		# userdb(8) line: name TAB field=value|... The password is a
		# SHA-512 crypt hash (systempw); it may hold spaces (bob's does).
		hash=$(printf '%s' "$rest" | openssl passwd -6 -stdin)
		printf '%s\tuid=%s|gid=%s|home=%s|mail=%s|shell=/bin/false|systempw=%s\n' \
			"$user" "$mail_uid" "$mail_gid" "$work/home/$user" "$work/home/$user/Maildir" "$hash" >>"$userdb"
		;;
	M)
		n=$((n + 1))
		maildir_add "$rest" "$work/home/$user/Maildir" "$n"
		;;
	esac
done < <(parse_users)
chown -R "$mail_user:$(id -gn "$mail_user")" "$work/home"
# userdb.dat (the accounts) and userdbshadow.dat (the hashes)
makeuserdb -f "$userdb"
chmod 600 "$work/etc/userdbshadow.dat"
chmod 644 "$work/etc/userdb.dat"
debug=0
[ -z "${POP3_COURIER_DEBUG:-}" ] || debug=1
cat >"$work/etc/authdaemonrc" <<EOF
# Private authdaemonrc written by probe/peers/courier/start.sh; seen as
# /etc/courier/authdaemonrc inside the server's mount namespace only.
authmodulelist="authuserdb"
daemons=2
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=$debug
DEFAULTOPTIONS=""
LOGGEROPTS=""
EOF

# after login courierpop3d runs as nobody and must reach the Maildirs
require_searchable "$mail_user" "$work" others

# The namespace's first process: mounts the private directories, starts
# authdaemond and the two couriertcpd listeners in the foreground (the
# environment is what /etc/courier/pop3d and pop3d-ssl would set), and
# waits. couriertcpd puts itself in a process group of its own (with its
# sessions), so the pids go to WORKDIR/pids for stop.sh.
cat >"$work/run-courier.sh" <<'EOF'
#!/bin/sh
# Run by start.sh inside "unshare -m": $1 is the work directory, $2 and $3
# the plain+STLS and implicit-TLS ports, $4 the directory of
# courierpop3login and courierpop3d, $5 couriertcpd, $6 couriertls, $7
# authdaemond.
set -e
work=$1 port=$2 sslport=$3 bin=$4 tcpd=$5 tls=$6 authd=$7
mount --make-rprivate /
mkdir -p /etc/courier /run/courier
mount --bind "$work/etc" /etc/courier
mount --bind "$work/run" /run/courier
(
	set -a
	. /etc/courier/authdaemonrc
	exec "$authd"
) </dev/null >>"$work/authdaemond.log" 2>&1 &
echo $! >"$work/pids"
for _ in $(seq 50); do
	[ -S /run/courier/authdaemon/socket ] && break
	sleep 0.1
done
common="PATH=/usr/bin:/bin:/usr/sbin:/sbin SHELL=/bin/sh \
POP3AUTH= POP3AUTH_TLS= POP3_PROXY=0 \
COURIERTLS=$tls TLS_CERTFILE=/etc/courier/pop3d.pem TLS_PROTOCOL=TLS1_2+ \
TLS_VERIFYPEER=NONE TLS_TRUSTCERTS=/etc/ssl/certs/ca-certificates.crt \
MIME_UNICODE_MESSAGE_TYPE=message/global"
env -i $common POP3_STARTTLS=YES POP3_TLS_REQUIRED=0 \
	"$tcpd" -address=127.0.0.1 -maxprocs=40 -maxperip=40 -nodnslookup -noidentlookup \
	"$port" "$bin/courierpop3login" "$bin/courierpop3d" Maildir \
	</dev/null >>"$work/pop3d.log" 2>&1 &
echo $! >>"$work/pids"
env -i $common POP3_TLS=1 POP3_STARTTLS=NO POP3_TLS_REQUIRED=0 \
	"$tcpd" -address=127.0.0.1 -maxprocs=40 -maxperip=40 -nodnslookup -noidentlookup \
	"$sslport" "$tls" -server -tcpd "$bin/courierpop3login" "$bin/courierpop3d" Maildir \
	</dev/null >>"$work/pop3d-ssl.log" 2>&1 &
echo $! >>"$work/pids"
wait
EOF
chmod 755 "$work/run-courier.sh"

pid=""
started=""
for attempt in 1 2 3 4 5; do
	pop3_port=${POP3_COURIER_PORT:-$(pick_port)}
	pop3s_port=${POP3_COURIER_TLS_PORT:-$(pick_port)}
	[ "$pop3_port" != "$pop3s_port" ] || continue
	# setsid: a process group of its own (stop.sh kills it whole) that
	# outlives this script's session
	setsid unshare -m "$work/run-courier.sh" "$work" "$pop3_port" "$pop3s_port" \
		"$pop3bin" "$couriertcpd" "$couriertls" "$authdaemond" \
		</dev/null >>"$work/pop3d.log" 2>&1 &
	pid=$!
	if wait_listening "$pid" "$pop3_port" "$pop3s_port"; then
		started=yes
		break
	fi
	kill -- -"$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	tail -n 20 "$work/pop3d.log" "$work/authdaemond.log" >&2 || true
	[ -z "${POP3_COURIER_PORT:-}" ] || exit 1
done
if [ -z "$started" ]; then
	echo "$0: Courier did not start; see $work/pop3d.log and $work/authdaemond.log" >&2
	exit 1
fi
echo "$pid" >"$work/courier.pid"

cat >"$work/stop.sh" <<EOF
#!/bin/sh
# Stop the Courier instance started from $work: the namespace's first
# process, authdaemond and the two couriertcpd listeners, each with its
# process group (a listener's group holds its sessions). The mount
# namespace goes with its last process.
work="$work"
[ -f "\$work/courier.pid" ] || exit 0
pids="\$(cat "\$work/courier.pid") \$(cat "\$work/pids" 2>/dev/null)"
# alive and not a zombie (an exited child that init has not reaped yet)
alive() { [ -r /proc/\$1/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/\$1/status 2>/dev/null; }
for p in \$pids; do
	kill -- -"\$p" 2>/dev/null || true
	kill "\$p" 2>/dev/null || true
done
for _ in \$(seq 50); do
	left=""
	for p in \$pids; do
		if alive "\$p"; then left="\$left \$p"; fi
	done
	[ -n "\$left" ] || break
	sleep 0.1
done
for p in \$left; do
	kill -9 -- -"\$p" 2>/dev/null || true
	kill -9 "\$p" 2>/dev/null || true
done
rm -f "\$work/courier.pid"
EOF
chmod 755 "$work/stop.sh"
write_env "$work" "POP3_PORT=$pop3_port" "POP3S_PORT=$pop3s_port" "CA_FILE=$work/ca.pem" "USER_SUFFIX="
echo "pop3=127.0.0.1:$pop3_port pop3s=127.0.0.1:$pop3s_port"
