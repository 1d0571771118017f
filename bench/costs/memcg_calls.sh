#!/bin/bash
# The memcg reclaim call's own cost on this machine, measured from memory.force_empty: a
# process holds MIB of clean lazyfree anon in the capture's v1 memory cgroup and the traced
# shell writes memory.force_empty, whose loop calls try_to_free_mem_cgroup_pages() until the
# cgroup is empty (mm/memcontrol-v1.c mem_cgroup_force_empty()). Each call reclaims at least
# SWAP_CLUSTER_MAX pages: two 64 KiB folios, or one PMD THP. Sizes 16..128 MiB of 64 KiB mTHP
# and of PMD THP give 8..1024 calls per write; bench/costs/memcg_calls.py fits the write's and
# the call's costs over them.
#
# As root, on a quiet machine (THP settings are system-wide; restored on exit, 64 KiB mTHP
# under the lock the tests and fixtures take):
#   bench/costs/memcg_calls.sh RAW_DIR [ROUNDS]      (default 5 rounds, interleaved)
# Then: .venv/bin/python bench/costs/memcg_calls.py RAW_DIR [--write]
source "$(dirname "$0")/../../fixtures/host/make_common.sh"
RAW=${1:?usage: bench/costs/memcg_calls.sh RAW_DIR [ROUNDS]}
ROUNDS=${2:-5}
SIZES=(16 32 64 128)
require_host
gcc -O2 -static -o "$WORK/host_kinds" "$HOST_DIR/workloads/host_kinds.c"
mkdir -p "$RAW"
RAW=$(cd "$RAW" && pwd)
mthp64_always
TOP=$(thp_choice "$THP/enabled")
at_exit "echo $TOP > $THP/enabled"

# force_empty NAME MIB: one bundle RAW/NAME of a force_empty write over MIB of lazyfree anon.
force_empty() {
	rm -f "$WORK/ready"
	(cd "$WORK" && "$FOLIO_REPLAY" capture --force -o "$RAW/$1" -- sh -c "./host_kinds hold-lazyfree -s $2 -r ready & holder=\$!
		while [ ! -e ready ]; do sleep 0.05; done
		echo 0 > \"\$FOLIO_REPLAY_CGROUP/memory.force_empty\"
		kill \$holder; wait \$holder") > /dev/null
}

for round in $(seq "$ROUNDS"); do
	# 64 KiB mTHP (transparent_hugepage/enabled as found: madvise, so no PMD THP)
	echo always > "$THP/hugepages-64kB/enabled"
	echo "$TOP" > "$THP/enabled"
	for mib in "${SIZES[@]}"; do force_empty "mthp64-${mib}m-r$round" "$mib"; done
	# PMD THP only
	echo never > "$THP/hugepages-64kB/enabled"
	echo always > "$THP/enabled"
	for mib in "${SIZES[@]}"; do force_empty "pmd-${mib}m-r$round" "$mib"; done
	echo "round $round of $ROUNDS: $(cut -d' ' -f1-3 /proc/loadavg)"
done
