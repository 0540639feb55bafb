#!/usr/bin/env bash
# The side-by-side benchmark of issue 6: the reference server (exchange2010)
# and a private Dovecot (probe/peers/dovecot/start.sh, unchanged; the
# load generator adds its users and a few limits, listed in the report),
# measured interleaved, written to reports/bench/latest.{md,json}.
#
#   probe/bench/run.sh            full run (3 rounds, 5000 idle sessions; under 10 minutes)
#   QUICK=1 probe/bench/run.sh    one round, smaller counts (under 2 minutes)
#
# The probe rows audit the reference server with the probe on loopback and
# behind a 50 ms round trip (internal/netsim); QUICK estimates the latter.
# Extra arguments go to pop3bench (e.g. --no-dovecot, --rounds 5, -v,
# --probe-only for the probe rows alone).
# Without dovecot-pop3d installed the reference server is measured alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
GO=${GO:-go}

# 5000 idle sessions need 5000 descriptors in the server and as many in
# the load generator: take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

bin=$(mktemp -d "${TMPDIR:-/tmp}/pop3bench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
$GO build -o "$bin/reference-server" ./reference-server
$GO build -o "$bin/pop3bench" ./probe/bench/cmd/pop3bench
$GO build -o "$bin/pop3probe" ./probe/cmd/pop3probe

args=()
if [ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ]; then
	args+=(--quick)
fi
if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/pop3 ]; then
	echo "run.sh: dovecot-core/dovecot-pop3d not installed: measuring the reference server only" >&2
	args+=(--no-dovecot)
fi
"$bin/pop3bench" --repo "$repo" --ref-bin "$bin/reference-server" --probe-bin "$bin/pop3probe" --out "$repo/reports/bench" "${args[@]}" "$@"
