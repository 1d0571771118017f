#!/bin/bash
# Where MADV_PAGEOUT spends its time on this kernel, by kernel function: perf cpu-clock samples
# with kernel callchains of unmap_bench (bench/costs/unmap_bench.c) over 32 MiB of clean lazyfree
# PMD THPs (lazy-pmd), of redirtied ones (redirty-pmd) and of 64 KiB lazyfree folios (lazy-64k),
# turned into bench/costs/data/perf-pageout.csv by perf_agg.py (what derive.py reads).
#
# As root: bench/costs/perf_pageout.sh OUTDIR [PERIOD_NS] [CALLS_PMD] [CALLS_64K]
# Per kind: 1000 untimed-by-perf calls (the call time without perf), the profiled run, 1000 more
# calls; vmstat before and after. THP sizes are set as measure.py sets them, under the lock
# tests/test_capture.py takes, and restored on exit (also on failure).
set -euo pipefail
OUT=${1:?usage: perf_pageout.sh OUTDIR [PERIOD_NS] [CALLS_PMD] [CALLS_64K]}
PERIOD=${2:-200000}
CALLS_PMD=${3:-10000}
CALLS_64K=${4:-2000}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
THP=/sys/kernel/mm/transparent_hugepage
[[ $(id -u) == 0 ]] || { echo "$0: must run as root" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
gcc -O2 -static -pthread -o "$OUT/unmap_bench" "$HERE/unmap_bench.c"

exec 9> /run/lock/folio-replay-mthp.lock
flock 9
FILES=("$THP/enabled" "$THP"/hugepages-*kB/enabled)
declare -A SAVED
choice() { local v; v=$(cat "$1"); v=${v#*[}; echo "${v%%]*}"; }
for f in "${FILES[@]}"; do SAVED[$f]=$(choice "$f"); done
restore() { for f in "${FILES[@]}"; do echo "${SAVED[$f]}" > "$f"; done; }
trap restore EXIT

# thp pmd|64: PMD THP only (enabled=always, 2048 kB inherit) or 64 KiB mTHP only.
thp() {
	if [[ $1 == pmd ]]; then echo always > "$THP/enabled"; else echo never > "$THP/enabled"; fi
	for f in "$THP"/hugepages-*kB/enabled; do
		local kb=${f#"$THP"/hugepages-}
		kb=${kb%%kB*}
		if [[ $1 == pmd && $kb == 2048 ]]; then echo inherit > "$f"
		elif [[ $1 == "$kb" ]]; then echo always > "$f"
		else echo never > "$f"; fi
	done
}

vmstat() { grep -E '^(thp_split_pmd|pglazyfree|pglazyfreed|thp_deferred_split_page) ' /proc/vmstat | sed "s/^/$1 /"; }

# kind NAME SIZE CALLS FOLIOS_PER_CALL unmap_bench-args...
kind() {
	local name=$1 size=$2 calls=$3 folios=$4
	shift 4
	thp "$size"
	vmstat before > "$OUT/$name.vmstat"
	"$OUT/unmap_bench" "$@" -s 32768 -r 1000 -w 0 > "$OUT/$name.base.txt"
	perf record -q -e cpu-clock -c "$PERIOD" -g --kernel-callchains -o "$OUT/$name.perf.data" \
		-- "$OUT/unmap_bench" "$@" -s 32768 -r "$calls" -w 0 > "$OUT/$name.perf.txt"
	"$OUT/unmap_bench" "$@" -s 32768 -r 1000 -w 0 >> "$OUT/$name.base.txt"
	vmstat after >> "$OUT/$name.vmstat"
	perf script -i "$OUT/$name.perf.data" -F comm,tid,time,ip,sym > "$OUT/$name.script.txt"
	local base
	base=$(awk -F'pageout_ns=' 'NF > 1 { s += $2; n++ } END { printf "%.1f", s / n / 1000 }' \
		"$OUT/$name.base.txt")
	"$REPO/.venv/bin/python" "$HERE/perf_agg.py" "$name" "$OUT/$name.script.txt" \
		"$OUT/$name.perf.txt" "$PERIOD" "$folios" "$base" > "$OUT/$name.csv"
}

cat /proc/loadavg > "$OUT/loadavg.txt"
kind lazy-pmd pmd "$CALLS_PMD" 16 -m lazy
kind redirty-pmd pmd "$CALLS_PMD" 16 -m lazy -d first -u 2048
kind lazy-64k 64 "$CALLS_64K" 512 -m lazy
cat /proc/loadavg >> "$OUT/loadavg.txt"
{ head -1 "$OUT/lazy-pmd.csv"; tail -q -n +2 "$OUT"/{lazy-pmd,redirty-pmd,lazy-64k}.csv; } \
	> "$OUT/perf-pageout.csv"
echo "wrote $OUT/perf-pageout.csv (copy it to bench/costs/data/)"
