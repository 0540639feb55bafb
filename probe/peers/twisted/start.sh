#!/usr/bin/env bash
# Start a private Twisted POP3 server (twisted.mail.pop3 with
# twisted.mail.maildir.MaildirMailbox) holding the fixture mailboxes, as
# a target for the conformance probe.
#
#   probe/peers/twisted/start.sh WORKDIR
#
# Everything lives under WORKDIR (created if missing): the account file
# (name<TAB>password lines, users.yaml's), one Maildir per account
# (WORKDIR/maildirs/NAME, with the .Trash folder Twisted moves deleted
# messages into), the pid file and the log. serve.py beside this script
# wires Twisted's POP3 protocol, its Maildir mailbox and an in-memory
# password checker together (`twistd mail` cannot add users on Python 3).
#
# Twisted's POP3 server has no TLS: it listens on one plain port on
# 127.0.0.1 (POP3_TWISTED_PORT picks it), prints
#
#   pop3=127.0.0.1:P
#
# and writes WORKDIR/env (POP3_PORT, MAILDIRS) and WORKDIR/stop.sh. It
# runs as the calling user; the Maildirs are the calling user's.
#
# Needs Debian's python3-twisted (it runs /usr/bin/python3, whose
# dist-packages hold Twisted, whatever python3 comes first in PATH).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# repo, fixtures and the shared functions (parse_users, maildir_add, ...)
. "$here/../lib.sh"
python=/usr/bin/python3

usage_workdir "$@"
if ! "$python" -c 'import twisted.mail.pop3' 2>/dev/null; then
	echo "$0: Twisted is not installed for $python (apt-get install python3-twisted)" >&2
	exit 1
fi

mkdir -p "$1"
work=$(cd "$1" && pwd)
refuse_if_running Twisted "$work/twisted.pid"
rm -rf "$work/maildirs" "$work/accounts" "$work/twisted.log" "$work/twisted.pid"
mkdir -p "$work/maildirs"

# --- accounts and Maildirs from fixtures/mailboxes/users.yaml --------------
accounts="$work/accounts"
: >"$accounts"
chmod 600 "$accounts"
user=""
n=0
while read -r kind rest; do
	case $kind in
	U)
		user=$rest
		# the layout twisted.mail.maildir.initializeMaildir creates
		mkdir -p "$work/maildirs/$user/"{cur,new,tmp} "$work/maildirs/$user/.Trash/"{cur,new,tmp}
		touch "$work/maildirs/$user/.Trash/maildirfolder"
		;;
	P) printf '%s\t%s\n' "$user" "$rest" >>"$accounts" ;;
	M)
		n=$((n + 1))
		maildir_add "$rest" "$work/maildirs/$user" "$n"
		;;
	esac
done < <(parse_users)

# setsid so that it outlives this script's session
launch() { exec setsid "$python" "$here/serve.py" "$1" "$accounts" "$work/maildirs"; }
start_listening "$work/twisted.log" "${POP3_TWISTED_PORT:-}" launch
echo "$pid" >"$work/twisted.pid"

write_stop_sh "$work" "$work/twisted.pid" "the Twisted POP3 server"
write_env "$work" "POP3_PORT=$port" "MAILDIRS=$work/maildirs"
echo "pop3=127.0.0.1:$port"
