#!/usr/bin/env bash
# testbed/fuzz.sh DURATION: runs every `func FuzzX(f *testing.F)` in the repository for DURATION each (`make fuzz`
# with FUZZTIME, `make test` with FUZZTIME_TEST). Targets are found by `go test -list` in every package whose tests
# declare one, so a new target is picked up without touching this file. Go fuzzes one target per `go test -fuzz`.
#
# A crash fails the run and Go writes its input to the package's testdata/fuzz/FuzzX/: fix the bug and commit that
# file as a seed. One failure is not a finding: Go 1.26's fuzz coordinator sometimes reports "context deadline
# exceeded" when -fuzztime ends while a worker is busy (go.dev/issue/75804, fixed in Go 1.27). That exact outcome,
# with no failing input written, is reported and not counted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${1:?usage: testbed/fuzz.sh DURATION (e.g. 60s)}
GO=${GO:-go}

start=$SECONDS
n=0 races=0
failed=()
dirs=$(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' . | xargs -r -n1 dirname | sort -u)
for d in $dirs; do
	names=$("$GO" test -list '^Fuzz' -run '^$' "$d" | grep -E '^Fuzz' || true)
	for name in $names; do
		n=$((n + 1))
		echo "fuzz: $d $name for $fuzztime"
		corpus=$d/testdata/fuzz/$name
		before=$(ls -A "$corpus" 2>/dev/null || true)
		log=$(mktemp)
		if "$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$d" 2>&1 | tee "$log"; then
			rm -f "$log"
			continue
		fi
		after=$(ls -A "$corpus" 2>/dev/null || true)
		if [[ $before == "$after" ]] && ! grep -q 'Failing input written to' "$log" &&
			[[ $(grep -c -- '--- FAIL' "$log") -eq 1 ]] && grep -qxE '\s+context deadline exceeded' "$log"; then
			echo "fuzz: $name: \"context deadline exceeded\" as -fuzztime ended, no failing input: Go's fuzz" \
				"coordinator race (go.dev/issue/75804), not a finding"
			races=$((races + 1))
		else
			failed+=("$d $name")
		fi
		rm -f "$log"
	done
done
if ((n == 0)); then
	echo "fuzz: no Fuzz targets found" >&2
	exit 1
fi
note=""
((races == 0)) || note="; coordinator races ignored: $races"
echo "fuzz: $n targets, $fuzztime each, $((SECONDS - start)) s$note"
if ((${#failed[@]})); then
	printf 'fuzz: FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
