#!/usr/bin/env bash
# testbed/selftest.sh: checks that testbed/with.sh keeps runs apart (root; starts four throw-away test beds, a few
# minutes). Run it after changing with.sh, up.sh or down.sh: `make testbed-selftest`.
#
#  1. Two runs at once get different state dirs and loopback blocks; the second one finishing (and stopping its
#     servers) leaves the first one's servers and dir alone.
#  2. A failing command: its exit code comes back, its servers are stopped, its dir is kept for the logs, its
#     block is released.
#  3. Ctrl-C (SIGINT to the run's process group): exit 130, servers stopped.
# It never touches the manual test bed (/tmp/writeback-testbed, 127.0.0.x).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/writeback-selftest.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
fail() { printf 'selftest: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'selftest: ok: %s\n' "$*"; }

# What a run's command records about its test bed: state dir, block, pids.
record='set -eu
out=$1
cat >"$out" <<EOF
dir=$WRITEBACK_TESTBED_DIR
env=$WRITEBACK_TESTBED_ENV
ad=$(sed -n "s/^WB_TEST_AD_URL=//p" "$WRITEBACK_TESTBED_ENV")
ldap=$(sed -n "s/^WB_TEST_LDAP_URL=//p" "$WRITEBACK_TESTBED_ENV")
samba=$(cat "$WRITEBACK_TESTBED_DIR/samba.pid")
slapd=$(cat "$WRITEBACK_TESTBED_DIR/slapd.pid")
postgres=$(cat "$WRITEBACK_TESTBED_DIR/postgres.pid")
pg=$(sed -n "s/^WB_TEST_POSTGRES_URL=//p" "$WRITEBACK_TESTBED_ENV")
ca=$(sed -n "s/^WB_TEST_CA_FILE=//p" "$WRITEBACK_TESTBED_ENV")
EOF
'
answers() { # $1 URL, $2 CA file: does an LDAPS server answer there with a certificate from that CA?
	LDAPTLS_CACERT=$2 LDAPTLS_REQCERT=demand ldapsearch -x -LLL -o nettimeout=5 -H "$1" -s base -b "" namingContexts >/dev/null 2>&1
}
get() { sed -n "s/^$2=//p" "$1"; }
alive() { kill -0 "$1" 2>/dev/null; }

# --- 1. two runs at once ------------------------------------------------------------------------------------------
bash "$here/with.sh" bash -c "$record"'
	# Wait for run B to finish, then check our own servers still answer.
	for ((i = 0; i < 600; i++)); do [[ -e '"$work"'/b.done ]] && break; sleep 0.5; done
	[[ -e '"$work"'/b.done ]] || { echo "B never finished" >&2; exit 1; }
	. "$out"
	LDAPTLS_CACERT=$ca LDAPTLS_REQCERT=demand ldapsearch -x -LLL -o nettimeout=5 -H "$ad" -s base -b "" >/dev/null
	LDAPTLS_CACERT=$ca LDAPTLS_REQCERT=demand ldapsearch -x -LLL -o nettimeout=5 -H "$ldap" -s base -b "" >/dev/null
	psql "$pg" -Atqc "SELECT 1" >/dev/null
	[[ -f $env ]]
	echo "A: still up after B stopped"' _ "$work/a" >"$work/a.log" 2>&1 &
a_pid=$!
# B starts once A's servers are up, so B's whole life (start, tests, stop) falls inside A's.
for ((i = 0; i < 600; i++)); do [[ -s $work/a ]] && break; sleep 0.5; done
[[ -s $work/a ]] || { cat "$work/a.log" >&2; fail "run A did not come up"; }
bash "$here/with.sh" bash -c "$record"'. "$out"; LDAPTLS_CACERT=$ca LDAPTLS_REQCERT=demand ldapsearch -x -LLL -o nettimeout=5 -H "$ad" -s base -b "" >/dev/null' _ "$work/b" >"$work/b.log" 2>&1 ||
	{ cat "$work/b.log" >&2; fail "run B failed"; }
touch "$work/b.done"
for p in "$(get "$work/b" samba)" "$(get "$work/b" slapd)" "$(get "$work/b" postgres)"; do ! alive "$p" || fail "run B left pid $p running"; done
wait "$a_pid" || { cat "$work/a.log" >&2; fail "run A failed after run B stopped"; }
grep -q 'A: still up after B stopped' "$work/a.log" || fail "run A did not check its servers"
[[ $(get "$work/a" dir) != "$(get "$work/b" dir)" ]] || fail "both runs used $(get "$work/a" dir)"
[[ $(get "$work/a" ad) != "$(get "$work/b" ad)" ]] || fail "both runs used $(get "$work/a" ad)"
[[ $(get "$work/a" pg) != "$(get "$work/b" pg)" ]] || fail "both runs used one PostgreSQL"
for r in a b; do
	[[ ! -e $(get "$work/$r" dir) ]] || fail "run $r left its state dir behind after success"
	for p in "$(get "$work/$r" samba)" "$(get "$work/$r" slapd)" "$(get "$work/$r" postgres)"; do ! alive "$p" || fail "run $r left pid $p"; done
done
ok "two runs at once: A on $(get "$work/a" ad), B on $(get "$work/b" ad); B's stop left A alone; both cleaned up"

# --- 2. a failing command -----------------------------------------------------------------------------------------
set +e
bash "$here/with.sh" bash -c "$record"'exit 7' _ "$work/c" >"$work/c.log" 2>&1
rc=$?
set -e
((rc == 7)) || { cat "$work/c.log" >&2; fail "a command's exit code 7 came back as $rc"; }
for p in "$(get "$work/c" samba)" "$(get "$work/c" slapd)" "$(get "$work/c" postgres)"; do ! alive "$p" || fail "failed run left pid $p"; done
cdir=$(get "$work/c" dir)
[[ -d $cdir/samba/log ]] || fail "failed run did not keep its logs in $cdir"
rm -rf -- "$cdir"
ok "failing command: exit code kept, servers stopped, logs kept"

# --- 3. Ctrl-C ------------------------------------------------------------------------------------------------------
# Job control gives the run its own process group, as a terminal does, and leaves SIGINT at its default (a plain
# background job would ignore it).
set -m
bash "$here/with.sh" bash -c "$record"'sleep 600' _ "$work/d" >"$work/d.log" 2>&1 &
d_pid=$!
set +m
for ((i = 0; i < 600; i++)); do [[ -s $work/d ]] && break; sleep 0.5; done
[[ -s $work/d ]] || { cat "$work/d.log" >&2; fail "run D did not come up"; }
kill -INT -- "-$d_pid" # the whole process group, as a terminal's Ctrl-C does
set +e
wait "$d_pid"
rc=$?
set -e
((rc == 130)) || { cat "$work/d.log" >&2; fail "Ctrl-C: exit $rc, want 130"; }
for p in "$(get "$work/d" samba)" "$(get "$work/d" slapd)" "$(get "$work/d" postgres)"; do ! alive "$p" || fail "Ctrl-C left pid $p"; done
! answers "$(get "$work/d" ad)" "$(get "$work/d" ca)" 2>/dev/null || fail "Ctrl-C: the DC still answers"
rm -rf -- "$(get "$work/d" dir)"
ok "Ctrl-C: exit 130, servers stopped"
echo "selftest: all passed"
