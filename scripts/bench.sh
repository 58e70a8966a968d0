#!/usr/bin/env bash
# Runs the benchmarks of docs/BENCHMARKS.md and prints their tables as
# Markdown on standard output; go test's own output goes to standard error
# as it runs.
#
#   scripts/bench.sh [SECTION...]     SECTION: engine, pipeline, postgres, s3, stream, keyed, s3io, compress, parquet, river; none means all
#
# Environment:
#   COUNT   runs of every benchmark (default 1); the tables show medians
#   TMPDIR  where the benchmarks write (b.TempDir), and so which disk is
#           measured; default /tmp
#
# Every section is one function bench_NAME below; a new section is a new
# function and its name in SECTIONS.
set -euo pipefail
cd "$(dirname "$0")/.."

SECTIONS=(engine pipeline postgres s3 stream keyed s3io compress parquet river)
COUNT=${COUNT:-1}

# gobench PKG PATTERN BENCHTIME: one go test run, echoed to stderr.
gobench() {
	go test -run '^$' -bench "$2" -benchtime "$3" -count "$COUNT" -timeout 60m "$1" | tee /dev/stderr
}

table() {
	go run ./internal/benchtab "$@"
}

# machine prints what the numbers were measured on.
machine() {
	local tmp=${TMPDIR:-/tmp} fstype src opts
	read -r fstype src opts < <(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T "$tmp" 2>/dev/null || echo "unknown filesystem")
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- $(go version | cut -d' ' -f3-)${GOMAXPROCS:+, GOMAXPROCS=$GOMAXPROCS}"
	echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs; memory $(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo) GiB; kernel $(uname -r)"
	echo "- directory: $tmp, on $src: $fstype${opts:+ ($opts)}"
	echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- command: $( ((COUNT != 1)) && echo "COUNT=$COUNT ")scripts/bench.sh${*:+ $*}"
}

# The checkpoint engine: save and load of large state next to a plain file
# write and read of the same size, and a small checkpoint next to one
# atomic small-file write. The 512 MiB runs are few (3 iterations), so
# the section takes a few minutes.
bench_engine() {
	echo "## Checkpoint engine"
	echo
	{
		gobench . '^BenchmarkEngineSmallCheckpoint$' 2s
		gobench . '^BenchmarkEngine(Save|Load)$/^size=1MiB$' 1s
		gobench . '^BenchmarkEngine(Save|Load)$/^size=64MiB$' 5x
		gobench . '^BenchmarkEngine(Save|Load)$/^size=512MiB$' 3x
	} | table -base codec=raw -order stored-MiB,raw/stored,fsyncs/ckpt,extra-heap-MiB
}

# Record pipelines, as users run them: ckpt convert with the default
# triggers vs with checkpointing off, convert and aggregate vs Miller,
# resuming at 99% of a 2 GB input vs re-reading up to there, and peak
# memory on a small and a large input. Inputs are generated once into
# $BENCH_DIR (default $TMPDIR/ckpt-bench, about 2.2 GB) and kept. Installs
# Miller (Debian package miller) if it is missing. About ten minutes.
bench_pipeline() {
	echo "## Record pipelines"
	echo
	if ! command -v mlr >/dev/null; then
		echo "bench.sh: installing miller for the comparison" >&2
		if ! { apt-get install -y miller || sudo -n apt-get install -y miller; } >&2; then
			echo "bench.sh: miller could not be installed; its rows say so" >&2
		fi
	fi
	go build -o .bin/ckpt ./cmd/ckpt
	go run ./internal/cmd/pipebench -ckpt .bin/ckpt -runs "${RUNS:-5}" -dir "${BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench}"
}

# PostgreSQL: a small checkpoint's commit latency next to the local
# store's, 256 MiB of state saved and loaded next to a raw COPY and SELECT
# of the same bytes, and 2 million CSV rows loaded through the exactly-once
# table sink next to plain COPY FROM STDIN of the file. Needs the server of
# CKPT_POSTGRES_URL (default: the local one); a few minutes.
bench_postgres() {
	echo "## PostgreSQL"
	echo
	gobench ./store/pgstore '^BenchmarkPostgresSmallCheckpoint$' 3s | table -base store=local
	echo
	gobench ./store/pgstore '^BenchmarkPostgresState(Save|Load)$' 3x | table -base codec=raw
	echo
	gobench ./sink/pgsink '^BenchmarkPostgresSink$' 3x | table -base load=copy
}

# S3, on a versitygw server on loopback (scripts/tools.sh installs it): a
# small checkpoint's commit latency next to the local store's, and 256 MiB
# of state saved and loaded next to one Put and one Get of the same bytes
# through the same store. About a minute.
bench_s3() {
	echo "## S3"
	echo
	gobench ./store/s3store '^BenchmarkS3SmallCheckpoint$' 3s | table -base store=local
	echo
	gobench ./store/s3store '^BenchmarkS3LargeState$' 3x | table -base way=raw
}

# JetStream: a stream of a million messages into a JSON Lines file through
# a ckpt pipeline checkpointing every second vs a plain consumer loop
# writing the same bytes, and the resume latency after a SIGKILL. Needs
# the NATS server of CKPT_NATS_URL (default: the local one, with
# JetStream); a few minutes.
bench_stream() {
	echo "## Streams"
	echo
	mkdir -p .bin
	go build -o .bin/ckpt ./cmd/ckpt
	go build -o .bin/streambench ./internal/cmd/streambench
	.bin/streambench -ckpt .bin/ckpt -runs "${RUNS:-5}" -nats "${CKPT_NATS_URL:-nats://127.0.0.1:4222}" -dir "${BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-streambench}"
}

# Keyed state: BenchmarkKeyedState once (CKPT_KEYED_BENCH_KEYS keys,
# default 1,000,000, about 100 MiB), then ckpt aggregate over a CSV of
# GROUPS rows with as many distinct groups (default 8,000,000; kept in
# $BENCH_DIR) with checkpoints every second, with checkpointing off, and
# DuckDB's GROUP BY through its Node.js package (npm installs
# @duckdb/node-api into $BENCH_DIR/duckdb; its rows say so if it cannot).
# Times and peak RSS from GNU time, in one run. Tens of minutes.
bench_keyed() {
	echo "## Keyed state"
	echo
	gobench . '^BenchmarkKeyedState$' 1x | table -drop ns/op,allocs/op \
		-order written/full,written-max/full,pause-p99-ms,ckpt-time/full,update/map,restore/load,restore-local/load,space/live
	echo
	local dir=${BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench} groups=${GROUPS:-8000000}
	mkdir -p "$dir"
	local in=$dir/groups-$groups.csv
	if [[ ! -s $in ]]; then
		awk -v n="$groups" 'BEGIN { print "g,v"; srand(1); for (i = 0; i < n; i++) printf "g%d,%d.%02d\n", i, int(rand() * 1000), int(rand() * 100) }' >"$in"
	fi
	go build -o .bin/ckpt ./cmd/ckpt
	local duck=$dir/duckdb
	if [[ ! -d $duck/node_modules/@duckdb/node-api ]] && command -v npm >/dev/null; then
		mkdir -p "$duck" && (cd "$duck" && npm install --no-audit --no-fund @duckdb/node-api >&2) || true
	fi
	cat >"$duck/agg.mjs" 2>/dev/null <<'JS' || true
import { DuckDBInstance } from '@duckdb/node-api';
const [input, output] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:');
const c = await db.connect();
await c.run(`COPY (SELECT g, count(*) AS count, sum(v) AS v_sum FROM read_csv('${input}') GROUP BY g ORDER BY g) TO '${output}' (HEADER)`);
JS
	echo "ckpt aggregate --group-by g --agg count,sum:v over $groups rows, $groups distinct groups:"
	echo
	echo "| run | seconds | peak RSS MiB |"
	echo "| --- | ------: | -----------: |"
	measure() {
		local name=$1
		shift
		if /usr/bin/time -o "$dir/time.txt" -f '%e %M' "$@" >/dev/null 2>&1; then
			read -r secs kib <"$dir/time.txt"
			echo "| $name | $secs | $((kib / 1024)) |"
		else
			echo "| $name | failed | |"
		fi
	}
	local agg=(.bin/ckpt aggregate "$in" "$dir/groups-out.csv" --group-by g --agg count,sum:v --no-progress -q --restart)
	measure "ckpt, checkpoint every second, --memory 512MiB (default)" "${agg[@]}"
	measure "ckpt, checkpointing off" "${agg[@]}" --every 0 --interval 0
	if [[ -d $duck/node_modules/@duckdb/node-api ]]; then
		measure "DuckDB (Node.js @duckdb/node-api), sorted into a CSV file" node "$duck/agg.mjs" "$in" "$dir/groups-duck.csv"
	else
		echo "| DuckDB | not installed | |"
	fi
}

# S3 output: 128 MiB of lines written to an object through the
# exactly-once S3 output (checkpoints at the end only, and every 8 MiB)
# next to a plain multipart upload of the same lines through the same
# client, against versitygw on loopback. Under a minute.
bench_s3io() {
	echo "## S3 output"
	echo
	gobench ./s3io '^BenchmarkS3Output$' 3x | table -base way=plain
}

# Compressed files: ckpt convert reading gzip and zstd against
# decompressing first (ckpt reads no standard input: it could not resume
# it), writing them against writing plain and compressing after with the
# gzip and zstd commands, and resuming at 99 % of a compressed input, one
# member against a member per 16 MiB (go test -bench; BIG=1 for 2 GB of
# text instead of 200 MB). Inputs: $ROWS rows (default 3 million, about
# 180 MB) of sample CSV in $BENCH_DIR/compress. Times from GNU time, one
# run each: on a machine shared with other work, the CPU seconds (user and
# system, of every process of the run) are the steadier measure. A few
# minutes.
bench_compress() {
	echo "## Compressed files"
	echo
	local dir=${BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench}/compress rows=${ROWS:-3000000}
	mkdir -p "$dir"
	local in=$dir/in-$rows.csv
	if [[ ! -s $in ]]; then
		go run ./internal/cmd/gendata -rows "$rows" -seed 14 -o "$in"
	fi
	[[ -s $in.gz ]] || gzip -6 -k -c "$in" >"$in.gz"
	[[ -s $in.zst ]] || zstd -3 -q -c "$in" >"$in.zst"
	go build -o .bin/ckpt ./cmd/ckpt
	local ck=(.bin/ckpt convert --no-progress -q --restart --store "$dir/store")
	echo "ckpt convert of $rows rows of CSV ($(($(stat -c %s "$in") / 1000000)) MB; gzip -6 $(($(stat -c %s "$in.gz") / 1000000)) MB, zstd -3 $(($(stat -c %s "$in.zst") / 1000000)) MB) to JSON Lines, checkpoints at the defaults:"
	echo
	echo "| run | seconds | ÷ plain | CPU seconds | ÷ plain | output MB |"
	echo "| --- | ------: | ------: | ----------: | ------: | --------: |"
	local base="" cbase=""
	measure() {
		local name=$1 out=$2
		shift 2
		rm -f "$dir"/out.*
		if /usr/bin/time -o "$dir/time.txt" -f '%e %U %S' bash -c "$*" >/dev/null 2>&1; then
			local secs user sys cpu
			read -r secs user sys < <(tail -1 "$dir/time.txt")
			cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
			[[ -n $base ]] || base=$secs cbase=$cpu
			echo "| $name | $secs | $(awk -v a="$secs" -v b="$base" 'BEGIN { printf "%.2f", a / b }') | $cpu | $(awk -v a="$cpu" -v b="$cbase" 'BEGIN { printf "%.2f", a / b }') | $(($(stat -c %s "$out") / 1000000)) |"
		else
			echo "| $name | failed | | | | |"
		fi
	}
	local o=$dir/out
	measure "plain to plain" "$o.jsonl" "${ck[*]} $in $o.jsonl"
	measure "gzip input" "$o.jsonl" "${ck[*]} $in.gz $o.jsonl"
	measure "zcat to a file, then convert" "$o.jsonl" "zcat $in.gz >$dir/tmp.csv && ${ck[*]} $dir/tmp.csv $o.jsonl"
	measure "zstd input" "$o.jsonl" "${ck[*]} $in.zst $o.jsonl"
	measure "zstd -d to a file, then convert" "$o.jsonl" "zstd -d -q -c $in.zst >$dir/tmp.csv && ${ck[*]} $dir/tmp.csv $o.jsonl"
	measure "gzip output (.jsonl.gz, level 6)" "$o.jsonl.gz" "${ck[*]} $in $o.jsonl.gz"
	measure "plain output, then gzip -6" "$o.jsonl.gz" "${ck[*]} $in $o.jsonl && gzip -6 $o.jsonl"
	measure "zstd output (.jsonl.zst, level 3)" "$o.jsonl.zst" "${ck[*]} $in $o.jsonl.zst"
	measure "plain output, then zstd -3" "$o.jsonl.zst" "${ck[*]} $in $o.jsonl && zstd -3 -q --rm $o.jsonl"
	rm -f "$dir"/out.* "$dir/tmp.csv"
	echo
	gobench ./sink '^BenchmarkCompressedOutput$' 3x | table -base out=plain -order stored/text
	echo
	gobench ./source '^BenchmarkCompressedResume$' 3x | table -base file=plain -drop allocs/op,ns/op -order ms-to-first-record,text-MB/s
}

# Parquet: ckpt convert of a CSV file of ROWS rows (default 2,000,000,
# from internal/cmd/gendata, kept in $BENCH_DIR) into Parquet with typed
# columns, with its default checkpoints (a row group every million rows)
# and with checkpointing off, next to DuckDB's COPY ... TO 'x.parquet'
# through its Node.js package (npm installs @duckdb/node-api into
# $BENCH_DIR/duckdb; its rows say so if it cannot); then the Parquet file
# back into CSV by both. Times and peak RSS from GNU time, in one run. A
# minute or two.
bench_parquet() {
	echo "## Parquet"
	echo
	local dir=${BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench} rows=${ROWS:-2000000}
	mkdir -p "$dir"
	local in=$dir/parquet-$rows.csv
	if [[ ! -s $in ]]; then
		go run ./internal/cmd/gendata -rows "$rows" -o "$in"
	fi
	local ckpt=$dir/ckpt
	go build -o "$ckpt" ./cmd/ckpt
	local duck=$dir/duckdb
	if [[ ! -d $duck/node_modules/@duckdb/node-api ]] && command -v npm >/dev/null; then
		mkdir -p "$duck" && (cd "$duck" && npm install --no-audit --no-fund @duckdb/node-api >&2) || true
	fi
	cat >"$duck/copy.mjs" 2>/dev/null <<'JS' || true
import { DuckDBInstance } from '@duckdb/node-api';
const [input, output, to] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:');
const c = await db.connect();
const from = input.endsWith('.parquet') ? `read_parquet('${input}')` : `read_csv('${input}')`;
await c.run(`COPY (SELECT * FROM ${from}) TO '${output}' (FORMAT ${to})`);
JS
	# run NAME OUT CMD...: one timed run, a table row without its ratio.
	local names=() secs=() rss=() sizes=()
	run() {
		local name=$1 out=$2
		shift 2
		rm -f "$out"
		names+=("$name")
		if /usr/bin/time -o "$dir/time.txt" -f '%e %M' "$@" >/dev/null 2>&1; then
			local s kib
			read -r s kib <"$dir/time.txt"
			secs+=("$s") rss+=("$((kib / 1024))") sizes+=("$(awk -v n="$(stat -c %s "$out")" 'BEGIN { printf "%.1f", n / 1048576 }')")
		else
			secs+=(failed) rss+=("") sizes+=("")
		fi
	}
	# print: the rows run since the last print, each with its time over
	# the first row's (DuckDB's, when it is installed).
	print() {
		echo "| run | seconds | / first row | peak RSS MiB | output MiB |"
		echo "| --- | ------: | ----------: | -----------: | ---------: |"
		local i
		for i in "${!names[@]}"; do
			local ratio
			ratio=$(awk -v a="${secs[i]}" -v b="${secs[0]}" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "—" }')
			echo "| ${names[i]} | ${secs[i]} | $ratio | ${rss[i]} | ${sizes[i]} |"
		done
		names=() secs=() rss=() sizes=()
	}
	local have_duck=""
	[[ -d $duck/node_modules/@duckdb/node-api ]] && have_duck=1 || echo "bench.sh: DuckDB is not installed; its rows are missing" >&2
	echo "$rows rows, $(($(stat -c %s "$in") / 1048576)) MiB of CSV, into Parquet:"
	echo
	if [[ -n $have_duck ]]; then
		run "DuckDB COPY TO parquet (Node.js @duckdb/node-api)" "$dir/duck.parquet" node "$duck/copy.mjs" "$in" "$dir/duck.parquet" parquet
	fi
	local conv=("$ckpt" convert --infer-types --no-progress -q --restart "$in")
	run "ckpt convert --infer-types, a checkpoint and row group every 1M rows (default)" "$dir/ckpt.parquet" "${conv[@]}" "$dir/ckpt.parquet"
	run "ckpt convert --infer-types, a checkpoint every 100,000 rows" "$dir/ckpt-100k.parquet" "${conv[@]}" "$dir/ckpt-100k.parquet" --every 100000
	run "ckpt convert --infer-types, checkpointing off (one row group)" "$dir/ckpt-off.parquet" "${conv[@]}" "$dir/ckpt-off.parquet" --every 0 --every-bytes 0
	run "ckpt convert, string columns" "$dir/ckpt-str.parquet" "$ckpt" convert --no-progress -q --restart "$in" "$dir/ckpt-str.parquet"
	print
	echo
	echo "The Parquet file ckpt wrote (typed, default), back into CSV:"
	echo
	if [[ -n $have_duck ]]; then
		run "DuckDB COPY TO csv" "$dir/duck-back.csv" node "$duck/copy.mjs" "$dir/ckpt.parquet" "$dir/duck-back.csv" csv
	fi
	run "ckpt convert (checkpoints every second and 1M rows, the default)" "$dir/ckpt-back.csv" "$ckpt" convert --no-progress -q --restart "$dir/ckpt.parquet" "$dir/ckpt-back.csv"
	run "ckpt convert, checkpointing off" "$dir/ckpt-back.csv" "$ckpt" convert --no-progress -q --restart "$dir/ckpt.parquet" "$dir/ckpt-back.csv" --every 0 --interval 0
	print
	if cmp -s "$in" "$dir/ckpt-back.csv"; then
		echo
		echo "ckpt's CSV read back from its Parquet file is the input, byte for byte."
	fi
}

# Asset runs on River workers (asset/riverexec): a CPU-bound backfill on
# one worker process and on two, the time a worker adds to each step, and
# the dispatch of a 10,000-partition backfill. Needs PostgreSQL.
bench_river() {
	echo "## Asset runs on River workers"
	echo
	echo '```'
	gobench ./asset/riverexec '^BenchmarkRiver(Scaling|StepOverhead|Dispatch)$' 1x | grep '^Benchmark'
	echo '```'
}

main() {
	local run=("$@")
	if ((${#run[@]} == 0)); then
		run=("${SECTIONS[@]}")
	fi
	for s in "${run[@]}"; do
		if ! declare -F "bench_$s" >/dev/null; then
			echo "bench.sh: unknown section $s (sections: ${SECTIONS[*]})" >&2
			exit 2
		fi
	done
	machine "$@"
	for s in "${run[@]}"; do
		echo
		"bench_$s"
	done
}

main "$@"
