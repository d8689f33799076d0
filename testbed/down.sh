#!/usr/bin/env bash
# Stops the test bed started by up.sh: only the processes named in its pid files, never anything found by name
# (a developer may run their own samba or slapd). Harmless when nothing runs. The state dir is kept for its logs;
# up.sh wipes it on the next run.
set -euo pipefail

DIR=${WRITEBACK_TESTBED_DIR:-/tmp/writeback-testbed}

# The env file means "the test bed is up" to testbed.Load: remove it first so tests skip instead of dialling
# servers that are going away.
rm -f "$DIR/env"

stop() { # $1 = pid file, $2 = expected executable name, $3 = the signal that stops it (default TERM)
	local pidfile=$DIR/$1 pid exe i sig=${3:-TERM}
	[[ -f $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	# A stale pid file may name a pid the kernel has since given to something else: check it is still ours.
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
	if [[ $pid =~ ^[0-9]+$ && ${exe##*/} == "$2" ]]; then
		kill "-$sig" "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do # samba needs ~2 s to shut down
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "testbed: $2 (pid $pid) ignored SIG$sig for 10 s, sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
		fi
		echo "testbed: stopped $2 (pid $pid)"
	fi
	rm -f "$pidfile"
}

stop samba.pid samba
stop slapd.pid slapd
# SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to disconnect).
stop postgres.pid postgres INT
