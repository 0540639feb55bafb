#!/usr/bin/env bash
# Start a private Cyrus IMAP pop3d holding the fixture mailboxes, as a
# further independent target for the conformance probe (next to
# probe/peers/dovecot and probe/peers/mailutils).
#
#   probe/peers/cyrus/start.sh WORKDIR
#
# Everything lives under WORKDIR (created if missing): imapd.conf and
# cyrus.conf (Cyrus "master -C imapd.conf -M cyrus.conf"; /etc/imapd.conf
# and /etc/cyrus.conf are never read), the configuration directory, the
# mail partition, a private SASL database (sasldb2, made with saslpasswd2
# -f), a self-signed certificate (ca.pem is the file to trust), the pid
# file and the log. The system's Cyrus (/var/lib/cyrus, /var/spool/cyrus)
# is not touched.
#
# Accounts: the users of fixtures/mailboxes/users.yaml with their
# passwords, checked by SASL auxprop against WORKDIR/sasldb2 (realm
# "localhost", Cyrus' servername), plus the administrator "cyrus" with a
# random password (WORKDIR/admin-password). Each user's INBOX (user.NAME)
# is created with IMAP CREATE by the administrator and filled with IMAP
# APPEND in users.yaml's order, so the messages keep the fixture's bytes
# (lmtpd would add a Received header) and get the UIDs 1, 2, ...
#
# It listens on 127.0.0.1 only, on free ports: POP3 with STLS, POP3 over
# implicit TLS, and IMAP (used here to fill the mailboxes, and for
# inspection); POP3_CYRUS_PORT / POP3_CYRUS_TLS_PORT / POP3_CYRUS_IMAP_PORT
# pick them instead. It prints one line
#
#   pop3=127.0.0.1:P pop3s=127.0.0.1:Q imap=127.0.0.1:R
#
# WORKDIR/env holds the same as shell assignments (POP3_PORT, POP3S_PORT,
# IMAP_PORT, CA_FILE, USER_SUFFIX) and WORKDIR/stop.sh stops the server.
# Cyrus logs to syslog only (prefix "cyrus-pop3conformance"); master's own
# stderr goes to WORKDIR/master.log.
#
# The configuration keeps Cyrus' upstream defaults (Debian's
# /etc/imapd.conf changes some: popminpoll 1 would refuse a second login
# within a minute) except where a private instance needs a path. With the
# default allowplaintext: 0, USER/PASS and AUTH PLAIN are refused until
# STLS (or on the implicit-TLS port).
#
# Needs the Debian packages cyrus-pop3d, cyrus-imapd (with cyrus-common),
# sasl2-bin, python3 and openssl, and must run as root. cyrus-pop3d
# conflicts with every other POP3 server package (Conflicts: pop3-server),
# so where Dovecot or Mailutils must stay it is unpacked instead, as
# .ci/run does:
#   apt-get download cyrus-pop3d && dpkg-deb -x cyrus-pop3d_*.deb /opt/cyrus-pop3d
# and pop3d is taken from there (CYRUS_POP3D_ROOT overrides /opt/cyrus-pop3d): master switches to the user
# "cyrus" the package creates, so WORKDIR's parent directories must be
# searchable by others (mktemp -d under /tmp, chmod 755, is fine).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# repo, fixtures and the shared functions (make_cert, parse_users, ...)
. "$here/../lib.sh"
cyrbin=/usr/lib/cyrus/bin
realm=localhost

usage_workdir "$@"
pop3d=$cyrbin/pop3d
[ -x "$pop3d" ] || pop3d=${CYRUS_POP3D_ROOT:-/opt/cyrus-pop3d}$cyrbin/pop3d
for bin in "$cyrbin/master" "$pop3d" "$cyrbin/imapd" saslpasswd2 openssl python3; do
	command -v "$bin" >/dev/null || {
		echo "$0: $bin is not installed (apt-get install cyrus-imapd sasl2-bin openssl python3, and cyrus-pop3d or, where another POP3 server package must stay, apt-get download cyrus-pop3d && dpkg-deb -x cyrus-pop3d_*.deb /opt/cyrus-pop3d)" >&2
		exit 1
	}
done
if [ "$(id -u)" != 0 ]; then
	echo "$0: must run as root (Cyrus master switches to the user cyrus)" >&2
	exit 1
fi
id cyrus >/dev/null 2>&1 || {
	echo "$0: no user cyrus (the cyrus-common package creates it)" >&2
	exit 1
}

mkdir -p "$1"
work=$(cd "$1" && pwd)
refuse_if_running Cyrus "$work/master.pid"
rm -rf "$work/conf" "$work/spool" "$work/run" "$work/sasldb2" "$work/master.log" "$work/master.pid"
mkdir -p "$work/conf" "$work/spool" "$work/run/socket" "$work/run/proc" "$work/run/lock"
chmod 755 "$work"
require_searchable cyrus "$work" "the user cyrus"

# --- certificate: self-signed for localhost and 127.0.0.1 -----------------
make_cert "$work"
chown cyrus "$work/key.pem"

# --- users from fixtures/mailboxes/users.yaml ------------------------------
admin_pw=$(openssl rand -hex 12)
printf '%s\n' "$admin_pw" >"$work/admin-password"
chmod 600 "$work/admin-password"
printf '%s' "$admin_pw" | saslpasswd2 -f "$work/sasldb2" -p -c -u "$realm" cyrus
user=""
: >"$work/fill.list"
while read -r kind rest; do
	case $kind in
	U) user=$rest ;;
	P) printf '%s' "$rest" | saslpasswd2 -f "$work/sasldb2" -p -c -u "$realm" "$user" ;;
	M) printf '%s %s\n' "$user" "$fixtures/$rest" >>"$work/fill.list" ;;
	esac
done < <(parse_users)
# users without messages get an empty INBOX too
parse_users | awk '$1 == "U" { print $2 " -" }' >>"$work/fill.list"
chown cyrus "$work/sasldb2"
chmod 600 "$work/sasldb2"
chown -R cyrus:mail "$work/conf" "$work/spool" "$work/run"

write_conf() {
	cat >"$work/imapd.conf" <<EOF
# Private Cyrus configuration written by probe/peers/cyrus/start.sh;
# /etc/imapd.conf is not read. Options not listed keep Cyrus' defaults.
configdirectory: $work/conf
defaultpartition: default
partition-default: $work/spool
proc_path: $work/run/proc
mboxname_lockpath: $work/run/lock
lmtpsocket: $work/run/socket/lmtp
idlesocket: $work/run/socket/idle
notifysocket: $work/run/socket/notify
servername: $realm
syslog_prefix: cyrus-pop3conformance
admins: cyrus
# the fixture accounts: SASL auxprop against the private sasldb
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $work/sasldb2
# Cyrus pauses 3 s after every failed login (failedloginpause); the
# probe's many deliberate failures would take minutes. No pause changes
# nothing on the wire but the timing.
failedloginpause: 0
tls_server_cert: $work/ca.pem
tls_server_key: $work/key.pem
EOF
	cat >"$work/cyrus.conf" <<EOF
# Private Cyrus master configuration written by
# probe/peers/cyrus/start.sh; /etc/cyrus.conf is not read.
# Every command names the private imapd.conf: master's -C is not passed
# on to the services.
START {
  recover	cmd="ctl_cyrusdb -C $work/imapd.conf -r"
}
SERVICES {
  pop3		cmd="$pop3d -C $work/imapd.conf" listen="127.0.0.1:$pop3_port" prefork=0
  pop3s		cmd="$pop3d -C $work/imapd.conf -s" listen="127.0.0.1:$pop3s_port" prefork=0
  imap		cmd="imapd -C $work/imapd.conf" listen="127.0.0.1:$imap_port" prefork=0
}
EVENTS {
  checkpoint	cmd="ctl_cyrusdb -C $work/imapd.conf -c" period=30
}
DAEMON {
}
EOF
	chmod 644 "$work/imapd.conf" "$work/cyrus.conf"
}

pid=""
started=""
for attempt in 1 2 3 4 5; do
	pop3_port=${POP3_CYRUS_PORT:-$(pick_port)}
	pop3s_port=${POP3_CYRUS_TLS_PORT:-$(pick_port)}
	imap_port=${POP3_CYRUS_IMAP_PORT:-$(pick_port)}
	[ "$pop3_port" != "$pop3s_port" ] && [ "$pop3_port" != "$imap_port" ] && [ "$pop3s_port" != "$imap_port" ] || continue
	write_conf
	: >"$work/master.log"
	# master in the foreground (no -d): the shell knows its pid; setsid
	# and stdin from /dev/null so that it outlives this script's session
	setsid "$cyrbin/master" -C "$work/imapd.conf" -M "$work/cyrus.conf" -p "$work/master.pid" \
		</dev/null >>"$work/master.log" 2>&1 &
	pid=$!
	if wait_listening "$pid" "$pop3_port" "$pop3s_port" "$imap_port"; then
		started=yes
		break
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	tail -n 20 "$work/master.log" >&2
	[ -z "${POP3_CYRUS_PORT:-}" ] || exit 1
done
if [ -z "$started" ]; then
	echo "$0: Cyrus master did not start; see $work/master.log and syslog" >&2
	exit 1
fi
echo "$pid" >"$work/master.pid"

# stop.sh ends master, which ends its service processes (pop3d, imapd)
# on SIGTERM.
write_stop_sh "$work" "$work/master.pid" "the Cyrus instance"

# --- mailboxes: IMAP CREATE and APPEND as the administrator ----------------
# imapd accepts the plaintext LOGIN only under TLS (allowplaintext: 0), so
# the session starts with STARTTLS.
if ! python3 - "$imap_port" "$work/ca.pem" "$work/admin-password" "$work/fill.list" <<'PY'; then
import imaplib, ssl, sys
port, ca, pwfile, listfile = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
m = imaplib.IMAP4("127.0.0.1", int(port))
m.starttls(ssl_context=ctx)
m.login("cyrus", open(pwfile).read().strip())
# the hierarchy separator decides the mailbox name: user.alice or user/alice
typ, data = m.list('""', '""')
sep = data[0].split(b'"')[1].decode() if data and data[0] else "."
created = set()
for line in open(listfile):
    user, path = line.split(" ", 1)
    path = path.rstrip("\n")
    box = "user" + sep + user
    if box not in created:
        typ, data = m.create(box)
        if typ != "OK":
            sys.exit("CREATE %s: %s %s" % (box, typ, data))
        # an administrator may change ACLs but needs the rights to append
        typ, data = m.setacl(box, "cyrus", "lrswipkxtea")
        if typ != "OK":
            sys.exit("SETACL %s: %s %s" % (box, typ, data))
        created.add(box)
    if path == "-":
        continue
    msg = open(path, "rb").read()
    typ, data = m.append(box, None, None, msg)
    if typ != "OK":
        sys.exit("APPEND %s %s: %s %s" % (box, path, typ, data))
# the administrator's rights go again: each INBOX has its owner's only
for box in sorted(created):
    typ, data = m.deleteacl(box, "cyrus")
    if typ != "OK":
        sys.exit("DELETEACL %s: %s %s" % (box, typ, data))
m.logout()
PY
	echo "$0: filling the mailboxes failed; see $work/master.log and syslog" >&2
	"$work/stop.sh"
	exit 1
fi

write_env "$work" "POP3_PORT=$pop3_port" "POP3S_PORT=$pop3s_port" "IMAP_PORT=$imap_port" "CA_FILE=$work/ca.pem" "USER_SUFFIX="
echo "pop3=127.0.0.1:$pop3_port pop3s=127.0.0.1:$pop3s_port imap=127.0.0.1:$imap_port"
