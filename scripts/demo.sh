#!/usr/bin/env bash
# The main job, shown end to end: generate a sample CSV with every awkward
# shape, convert it to JSON Lines with ckpt, kill the conversion with
# SIGKILL and with Ctrl-C (SIGINT) along the way, resume it each time, and
# check that the result is byte-identical to an uninterrupted conversion.
#
#   make demo            (or: scripts/demo.sh [ROWS])
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-3000000}
DEMO=demo
CKPT=.bin/ckpt

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

go build -o "$CKPT" ./cmd/ckpt
mkdir -p "$DEMO"
if [[ ! -f $DEMO/sample.csv ]]; then
	say "generating $DEMO/sample.csv ($ROWS rows)"
	go run ./internal/cmd/gendata -rows "$ROWS" -o "$DEMO/sample.csv"
fi
rm -rf "$DEMO/.ckpt" "$DEMO/sample.jsonl" "$DEMO/reference.jsonl"

# Start a conversion and stop it with a signal once it has a checkpoint.
run_and_stop() { # signal
	"$CKPT" convert "$DEMO/sample.csv" "$DEMO/sample.jsonl" --no-progress &
	local pid=$!
	until compgen -G "$DEMO/.ckpt/jobs/convert-sample.jsonl/checkpoints/[0-9]*" >/dev/null; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	sleep 0.3
	kill "-$1" "$pid" 2>/dev/null || true
	local rc=0
	wait "$pid" || rc=$?
	echo "exit code $rc; output so far: $(stat -c %s "$DEMO/sample.jsonl") bytes" >&2
}

say "1. convert, then kill -9 it halfway (no chance to clean up)"
run_and_stop KILL

say "2. run the same command again: it resumes, then Ctrl-C (SIGINT) it"
run_and_stop INT

say "3. run it again to the end"
"$CKPT" convert "$DEMO/sample.csv" "$DEMO/sample.jsonl"

say "4. its checkpoints"
"$CKPT" checkpoints list --store "$DEMO/.ckpt" --job convert-sample.jsonl

say "5. an uninterrupted conversion, for comparison"
"$CKPT" convert "$DEMO/sample.csv" "$DEMO/reference.jsonl" --job reference
if cmp "$DEMO/sample.jsonl" "$DEMO/reference.jsonl"; then
	say "identical: the interrupted job lost nothing and wrote nothing twice"
else
	say "DIFFERENT: this is a bug"
	exit 1
fi

say "6. running a finished job again does nothing"
"$CKPT" convert "$DEMO/sample.csv" "$DEMO/sample.jsonl"
