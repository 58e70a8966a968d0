#!/usr/bin/env bash
# The main job, shown end to end: generate a sample CSV with every awkward
# shape, convert it to JSON Lines with ckpt, kill the conversion with
# SIGKILL and with Ctrl-C (SIGINT) along the way, resume it each time, and
# check that the result is byte-identical to an uninterrupted conversion.
#
#   make demo            (or: scripts/demo.sh [--keep] [ROWS])
#
# The demo writes about 1 GB under demo/ and removes it at the end, unless
# --keep (or DEMO_KEEP=1) is given; `make clean` removes it too.
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=${DEMO_KEEP:-0}
if [[ ${1:-} == --keep ]]; then
	KEEP=1
	shift
fi
ROWS=${1:-3000000}
DEMO=demo
CKPT=.bin/ckpt
JOB=sample # named, so that the commands below can name it too
STORE=$DEMO/.ckpt
CONVERT=("$CKPT" convert "$DEMO/sample.csv" "$DEMO/sample.jsonl" --job "$JOB")

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
note() { printf '   %s\n' "$*" >&2; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }

cleanup() {
	if [[ $KEEP == 1 ]]; then
		note "kept $DEMO/ ($(du -sh "$DEMO" | cut -f1)); make clean removes it"
	else
		rm -rf "$DEMO"
		note "removed $DEMO/ (run with --keep to keep it)"
	fi
}

go build -o "$CKPT" ./cmd/ckpt
mkdir -p "$DEMO"
trap cleanup EXIT
if [[ ! -f $DEMO/sample.csv ]]; then
	say "generating $DEMO/sample.csv ($ROWS rows)"
	go run ./internal/cmd/gendata -rows "$ROWS" -o "$DEMO/sample.csv"
fi
rm -rf "$STORE" "$DEMO/sample.jsonl" "$DEMO/reference.jsonl"

# newest prints the newest checkpoint's sequence number and the output
# length it recorded: what a resume starts from.
newest() {
	local show
	show=$("$CKPT" checkpoints show --store "$STORE" --job "$JOB" --json)
	printf '%s %s\n' "$(grep -m1 -o '"seq": *[0-9]*' <<<"$show" | grep -o '[0-9]*$')" \
		"$(grep -m1 -o '"length": *[0-9]*' <<<"$show" | grep -o '[0-9]*$')"
}

# Start the conversion and stop it with a signal once it has checkpoints.
run_and_stop() { # signal
	"${CONVERT[@]}" --no-progress &
	local pid=$!
	until compgen -G "$STORE/jobs/$JOB/checkpoints/[0-9]*" >/dev/null; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	sleep 0.3
	kill "-$1" "$pid" 2>/dev/null || true
	local rc=0
	wait "$pid" || rc=$?
	local seq length written
	read -r seq length < <(newest)
	written=$(size "$DEMO/sample.jsonl")
	note "exit code $rc; $DEMO/sample.jsonl has $written bytes"
	note "the newest checkpoint, $seq, covers the first $length bytes of it"
	if ((written > length)); then
		note "the $((written - length)) bytes after it were written after the last checkpoint:"
		note "the next run rolls them back (the output shrinks to $length bytes) and writes them again"
	else
		note "nothing was written after it: the next run continues at byte $length"
	fi
}

say "1. convert, then kill -9 it partway (no chance to clean up)"
run_and_stop KILL

say "2. run the same command again: it resumes from that checkpoint; then Ctrl-C (SIGINT) it"
note "SIGINT takes a last checkpoint and exits with code 75"
run_and_stop INT

say "3. run it again to the end: it resumes from the Ctrl-C's checkpoint"
"${CONVERT[@]}"

say "4. its checkpoints"
"$CKPT" checkpoints list --store "$STORE" --job "$JOB"

say "5. running a finished job again does nothing"
"${CONVERT[@]}"

say "6. an uninterrupted conversion, for comparison"
"$CKPT" convert "$DEMO/sample.csv" "$DEMO/reference.jsonl" --job reference --no-progress
if cmp "$DEMO/sample.jsonl" "$DEMO/reference.jsonl"; then
	say "VERDICT: identical. Killed with kill -9 and Ctrl-C, the job lost nothing and wrote nothing twice."
else
	say "VERDICT: DIFFERENT. This is a bug in ckpt: please report it (run with --keep to keep the files)."
	exit 1
fi
