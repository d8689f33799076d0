#!/usr/bin/env bash
# testbed/with.sh CMD [ARG…]: runs CMD against a test bed of its own and stops exactly that test bed afterwards.
#
# `make test` and `make bench` use it, so two runs on one machine never meet:
#   - a fresh state dir per run (mktemp -d), never a fixed path another run could wipe;
#   - a loopback block 127.A.B.0/24 per run, A in 10..250 (127.0.x.x stays free for manual test beds, the host
#     name and resolvers), claimed with an flock'd lock file and probed to be unused: Samba on 127.A.B.2:389/636,
#     slapd on 127.A.B.3:3389/3636, the dead URL ldaps://127.A.B.4:636, PostgreSQL on 127.A.B.5 at a free port;
#   - CMD runs with WRITEBACK_TESTBED_ENV pointing at that run's env file;
#   - on exit, failure, Ctrl-C or SIGTERM the trap stops that run's servers by their pid files and releases the block.
# The state dir is deleted after a successful run and kept (for its logs) after a failed one.
#
# The lock is an open file descriptor, so the kernel releases it when the run ends however it ends. Samba and
# slapd inherit it: a block stays claimed while servers of a run killed with SIGKILL are still up.
# CMD runs in the foreground, so Ctrl-C reaches it directly; a SIGTERM sent to this script alone takes effect
# (cleanup included) when CMD has exited. Stopping a whole process group, as CI runners do, stops both at once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
(($# > 0)) || { echo "usage: testbed/with.sh CMD [ARG…]" >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then
	echo "the test bed needs root: Samba AD binds ports 389/636 (run it as root, e.g. sudo make test)" >&2
	exit 1
fi

# One lock folder for every run on the machine, whatever TMPDIR says: a run that looked elsewhere would not see the
# others' claims.
locks=/tmp/writeback-testbed-locks
mkdir -p "$locks"

listening() { # $1 host, $2 port: does anything accept connections there?
	timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

block=""
for ((attempt = 0; attempt < 64; attempt++)); do
	cand=127.$((10 + RANDOM % 241)).$((1 + RANDOM % 254))
	exec {lockfd}>"$locks/$cand.lock"
	if ! flock -n "$lockfd"; then # another run holds this block
		exec {lockfd}>&-
		continue
	fi
	busy=""
	pgport=$((20000 + RANDOM % 40000))
	for hp in "$cand.2:389" "$cand.2:636" "$cand.3:3389" "$cand.3:3636" "$cand.4:636" "$cand.5:$pgport"; do
		if listening "${hp%:*}" "${hp##*:}"; then
			busy=$hp
			break
		fi
	done
	if [[ -n $busy ]]; then # someone uses it without our lock (or listens on every address)
		exec {lockfd}>&-
		continue
	fi
	block=$cand
	break
done
[[ -n $block ]] || { echo "testbed: no free loopback block after 64 tries (does something listen on all addresses at 389 or 636?)" >&2; exit 1; }

state=$(mktemp -d "${TMPDIR:-/tmp}/writeback-testbed-run.XXXXXXXX")
export WRITEBACK_TESTBED_DIR=$state
export WRITEBACK_TESTBED_AD_ADDR=$block.2
export WRITEBACK_TESTBED_LDAP_ADDR=$block.3
export WRITEBACK_TESTBED_DEAD_ADDR=$block.4:636
export WRITEBACK_TESTBED_PG_ADDR=$block.5:$pgport
export WRITEBACK_TESTBED_ENV=$state/env

rc=1
cleanup() {
	trap - EXIT INT TERM HUP
	# Only this run's dir: down.sh kills nothing but the pids named in its pid files.
	WRITEBACK_TESTBED_DIR=$state bash "$here/down.sh" >&2 || true
	if ((rc == 0)); then
		rm -rf -- "$state"
	else
		echo "testbed: kept $state for its logs (remove it with: rm -rf $state)" >&2
	fi
	exec {lockfd}>&- # releases the block
	exit "$rc"
}
trap cleanup EXIT
trap 'rc=130; exit 130' INT
trap 'rc=143; exit 143' TERM
trap 'rc=129; exit 129' HUP

echo "testbed: this run uses $state and loopback block $block.0/24 (Samba $block.2:389/636, slapd $block.3:3389/3636, dead URL $block.4:636, PostgreSQL $block.5:$pgport)"
bash "$here/up.sh"
set +e
"$@"
rc=$?
set -e
exit "$rc"
