#!/bin/bash
# Repeated lab runs for the emulation cost tables (replay/costs/*-tcg.toml, issue 12 item 4):
# ROUNDS boots of each kernel of each arch, the lab's seven original scenarios at 32 MiB and pageout-call-64k (one folio: the per-call cost), each
# round into its own bundle root (OUT/rN/<arch>/<release>/<scenario>/), fitted afterwards by
# bench/costs/emulation.py (medians over the rounds, leave-one-out per scenario).
#
#   bench/costs/lab_rounds.sh [ROUNDS] [OUT]        (default 5, /work/lab-timing)
#
# QEMU TCG is slow and the machine is shared: a boot starts only when no other qemu-system and
# no other fixtures/lab/lab.py runs (checked right before each start; waits otherwise), and the
# boots run one at a time. Each boot's wall time and the load average go to OUT/runs.log.
set -euo pipefail
ROUNDS=${1:-5}
OUT=${2:-/work/lab-timing}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SCENARIOS=(microbench redirty-first-64k redirty-last-64k pmd-clean pmd-redirty partial-munmap mixed pageout-call-64k)
# kernels already in the lab's package cache: the newest 6.12 (unbatched) and a 7.x
# (batched-file) per arch
declare -A KERNELS=(
	[x86_64]="6.12.118 7.0.4"
	[aarch64]="6.12.118 7.0.4"
	[riscv64]="6.12.118 7.2.6"
)
mkdir -p "$OUT"

busy() {
	pgrep -f qemu-system > /dev/null || pgrep -f "fixtures/lab/lab.py" > /dev/null
}

for ((round = 1; round <= ROUNDS; round++)); do
	for arch in x86_64 riscv64 aarch64; do
		for release in ${KERNELS[$arch]}; do
			dest=$OUT/r$round
			if compgen -G "$dest/$arch/$release*/${SCENARIOS[-1]}/meta.json" > /dev/null; then
				continue # this boot is done (resume after an interruption)
			fi
			while busy; do sleep 30; done
			start=$(date +%s)
			args=(--arch "$arch" --release "$release" --size-kib 32768 --out "$dest")
			for s in "${SCENARIOS[@]}"; do args+=(--scenario "$s"); done
			echo "$(date -u +%FT%TZ) round $round $arch $release start, load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/runs.log"
			if (cd "$REPO" && python3 fixtures/lab/lab.py "${args[@]}") >> "$OUT/lab.log" 2>&1; then
				status=ok
			else
				status="failed $?"
			fi
			echo "$(date -u +%FT%TZ) round $round $arch $release $status after $(($(date +%s) - start)) s, load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/runs.log"
		done
	done
done
