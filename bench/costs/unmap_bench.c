/*
 * unmap_bench: the reclaim-unmap microbenchmarks behind replay/costs/x86.toml's measured costs
 * (bench/costs/README in /work/notes/readme-costs.md; issue 12).
 *
 * Each repetition builds REGION KiB of large folios of one kind, then times one
 * madvise(MADV_PAGEOUT) over it (CLOCK_MONOTONIC here; the capture script takes the
 * sys_enter_madvise -> sys_exit_madvise interval from the trace clock as the measurement).
 * The folio size is set from outside (hugepages-<N>kB/enabled for anonymous memory, the write
 * chunk -c for ext4 page-cache folios, which write_begin_get_folio() sizes from the write
 * length on 6.16+ ext4).
 *
 *   -m lazy    anonymous private memory, memset, MADV_FREE (lazyfree: discarded by reclaim;
 *              6.15+ unmaps each folio in one batch)
 *   -m file    a MAP_SHARED mapping of FILE (-f) written with pwrite() in -c KiB chunks,
 *              fsync()ed (clean), every page read through the mapping (PTEs present); reclaim
 *              unmaps file folios one PTE at a time on 6.18 (file batching came in 7.0)
 *   -m swap    anonymous swap-backed memory (memset, no MADV_FREE): swapped out, unmapped one
 *              PTE at a time on every release (needs a swap device: zram)
 *   -m zap     the flush primitive alone: fault in -n 4 KiB pages (no large folios), then
 *              madvise(MADV_DONTNEED) them: zap_pte_range() clears the PTEs and
 *              tlb_finish_mmu() flushes the range once (x86: an INVLPG per page up to
 *              tlb_single_page_flush_ceiling = 33 pages, a full flush beyond); -r calls, timed
 *              from the trace (sys_enter_madvise behavior 4), nothing printed per call;
 *              -z: the pages are never touched, so the call clears nothing and flushes nothing
 *              (the call's own cost); -e KIB: between the touch and the call, read one byte
 *              per page of another KIB region, so that the TLB no longer holds the zapped
 *              pages (as for the cold memory reclaim unmaps)
 *   -d first|last   (lazy) after MADV_FREE write one byte to the first / last page of each
 *              -u KiB unit: the folios are found dirty and kept
 *   -R CPU     a helper thread of the same process spins on CPU while MADV_PAGEOUT runs, so the
 *              mm is active on a second CPU (x86 then defers the unmap flushes and sends IPIs)
 *   -X         (lazy, swap) the folios belong to a child process that built them and then sleeps
 *              (blocked in read(), pinned to the same CPU); the timed thread reclaims them with
 *              process_madvise(pidfd, MADV_PAGEOUT): the child's mm is loaded on no CPU, so x86
 *              flushes nothing (flush_tlb_mm_range() finds no CPU in mm_cpumask() but lazy ones)
 *              and the call's time is its software work alone
 *   -p CPU     pin the timed thread to CPU (default 0)
 *   -r REPS    repetitions (default 5); -w MS sleep between them (default 20)
 *
 * Prints "rep=N mode=M size=BYTES pageout_ns=T" per repetition.
 * Build: cc -O2 -static -pthread -o unmap_bench unmap_bench.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

#define PAGE 4096UL
#define ALIGN (2UL << 20)

static atomic_int helper_state; /* 0 starting, 1 spinning on its CPU, 2 stop */

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *helper(void *arg)
{
	volatile unsigned long spins = 0;

	pin(*(int *)arg);
	atomic_store(&helper_state, 1);
	while (atomic_load(&helper_state) != 2)
		spins++;
	return NULL;
}

/* SIZE bytes of anonymous memory starting on a 2 MiB boundary, the slack unmapped. */
static char *map_anon(unsigned long size)
{
	char *raw = mmap(NULL, size + ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (raw == MAP_FAILED)
		die("mmap");
	char *p = (char *)(((uintptr_t)raw + ALIGN - 1) & ~(ALIGN - 1));

	if (p > raw && munmap(raw, p - raw))
		die("munmap head");
	if (munmap(p + size, raw + size + ALIGN - (p + size)))
		die("munmap tail");
	return p;
}

/* FILE rewritten in CHUNK-byte pwrite()s (page-cache folios of that size), fsync()ed, mapped
 * shared at a 2 MiB aligned address and read page by page. */
static char *map_file(const char *path, unsigned long size, unsigned long chunk, int *fdp)
{
	static char *buf;
	int fd = open(path, O_RDWR | O_CREAT, 0600);

	if (fd < 0)
		die(path);
	if (!buf) {
		buf = aligned_alloc(PAGE, chunk);
		if (!buf)
			die("aligned_alloc");
		memset(buf, 7, chunk);
	}
	if (ftruncate(fd, 0) || ftruncate(fd, size))
		die("ftruncate");
	for (unsigned long off = 0; off < size; off += chunk)
		if (pwrite(fd, buf, chunk, off) != (ssize_t)chunk)
			die("pwrite");
	if (fsync(fd))
		die("fsync");
	char *hint = map_anon(size);

	if (munmap(hint, size))
		die("munmap hint");
	char *p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap file");
	volatile char sink = 0;
	for (unsigned long off = 0; off < size; off += PAGE)
		sink += p[off];
	*fdp = fd;
	return p;
}

/* SIZE bytes of anonymous folios, memset; lazyfree (MADV_FREE) unless swap-backed is asked;
 * with DIRTY, one byte written to the first / last page of each UNIT after MADV_FREE. */
static char *build_anon(unsigned long size, int lazy, const char *dirty, unsigned long unit)
{
	char *p = map_anon(size);

	memset(p, 1, size);
	if (lazy && madvise(p, size, MADV_FREE))
		die("madvise(MADV_FREE)");
	if (dirty) {
		unsigned long at = strcmp(dirty, "last") ? 0 : unit - PAGE;

		for (unsigned long off = 0; off < size; off += unit)
			p[off + at] = 2;
	}
	return p;
}

/* A child that builds the folios, reports their address on READY and sleeps until GO closes;
 * the parent reclaims them from outside. Returns the child's pid, *addr the folios. */
static pid_t build_in_child(unsigned long size, int lazy, const char *dirty, unsigned long unit,
			    int *go_fd, char **addr)
{
	int ready[2], go[2];

	if (pipe(ready) || pipe(go))
		die("pipe");
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (!pid) {
		char *p = build_anon(size, lazy, dirty, unit);
		char byte;

		close(ready[0]);
		close(go[1]);
		if (write(ready[1], &p, sizeof(p)) != sizeof(p))
			_exit(1);
		while (read(go[0], &byte, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], addr, sizeof(*addr)) != sizeof(*addr))
		die("read child address");
	close(ready[0]);
	*go_fd = go[1];
	return pid;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s -m lazy|file|swap|zap [-n PAGES] [-s SIZE_KIB] [-c CHUNK_KIB] [-f FILE] "
		"[-d first|last] [-u UNIT_KIB] [-R CPU] [-X] [-p CPU] [-r REPS] [-w MS] [-z] [-e KIB]\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *mode = "lazy", *file = NULL, *dirty = NULL;
	unsigned long size = 32768, chunk = 64, unit = 64, zap_pages = 1;
	int remote = -1, cpu = 0, reps = 5, wait_ms = 20, untouched = 0, external = 0, opt;
	unsigned long evict = 0;
	pthread_t thread;

	while ((opt = getopt(argc, argv, "m:s:c:f:d:u:R:Xp:r:w:n:ze:")) != -1) {
		switch (opt) {
		case 'm': mode = optarg; break;
		case 's': size = strtoul(optarg, NULL, 0); break;
		case 'c': chunk = strtoul(optarg, NULL, 0); break;
		case 'f': file = optarg; break;
		case 'd': dirty = optarg; break;
		case 'u': unit = strtoul(optarg, NULL, 0); break;
		case 'R': remote = atoi(optarg); break;
		case 'X': external = 1; break;
		case 'p': cpu = atoi(optarg); break;
		case 'r': reps = atoi(optarg); break;
		case 'w': wait_ms = atoi(optarg); break;
		case 'n': zap_pages = strtoul(optarg, NULL, 0); break;
		case 'z': untouched = 1; break;
		case 'e': evict = strtoul(optarg, NULL, 0) << 10; break;
		default: usage(argv[0]);
		}
	}
	if (strcmp(mode, "lazy") && strcmp(mode, "file") && strcmp(mode, "swap") &&
	    strcmp(mode, "zap"))
		usage(argv[0]);
	if (!strcmp(mode, "file") && !file)
		usage(argv[0]);
	if (external && (remote >= 0 || (strcmp(mode, "lazy") && strcmp(mode, "swap"))))
		usage(argv[0]);
	size <<= 10;
	chunk <<= 10;
	unit <<= 10;
	pin(cpu);
	if (!strcmp(mode, "zap")) {
		unsigned long len = zap_pages * PAGE;
		char *p = map_anon(len < ALIGN ? ALIGN : len);

		if (madvise(p, len < ALIGN ? ALIGN : len, MADV_NOHUGEPAGE))
			die("madvise(MADV_NOHUGEPAGE)");
		if (len < ALIGN)  /* the page table exists for every call, -z or not */
			p[ALIGN - PAGE] = 1;
		char *other = evict ? map_anon(evict) : NULL;

		if (other) {
			if (madvise(other, evict, MADV_NOHUGEPAGE))
				die("madvise(MADV_NOHUGEPAGE)");
			memset(other, 1, evict);
		}
		for (int rep = 0; rep < reps; rep++) {
			volatile char sink = 0;

			for (unsigned long off = 0; off < len && !untouched; off += PAGE)
				p[off] = 1;
			for (unsigned long off = 0; off < evict; off += PAGE)
				sink += other[off];
			if (madvise(p, len, MADV_DONTNEED))
				die("madvise(MADV_DONTNEED)");
		}
		printf("mode=zap pages=%lu calls=%d\n", zap_pages, reps);
		return 0;
	}
	for (int rep = 0; rep < reps; rep++) {
		int fd = -1, go = -1;
		pid_t child = -1;
		char *p;

		if (!strcmp(mode, "file"))
			p = map_file(file, size, chunk, &fd);
		else if (external)
			child = build_in_child(size, !strcmp(mode, "lazy"), dirty, unit, &go, &p);
		else
			p = build_anon(size, !strcmp(mode, "lazy"), dirty, unit);
		if (remote >= 0) {
			atomic_store(&helper_state, 0);
			if (pthread_create(&thread, NULL, helper, &remote))
				die("pthread_create");
			while (atomic_load(&helper_state) != 1)
				;
		}
		long long t0, t1;

		if (external) {
			int pidfd = syscall(SYS_pidfd_open, child, 0);
			struct iovec iov = { .iov_base = p, .iov_len = size };

			if (pidfd < 0)
				die("pidfd_open");
			usleep(wait_ms * 1000);  /* the child asleep in read() */
			t0 = now_ns();
			if (syscall(SYS_process_madvise, pidfd, &iov, 1, MADV_PAGEOUT, 0) != (long)size)
				die("process_madvise(MADV_PAGEOUT)");
			t1 = now_ns();
			close(pidfd);
			close(go);
			if (waitpid(child, NULL, 0) != child)
				die("waitpid");
		} else {
			t0 = now_ns();
			if (madvise(p, size, MADV_PAGEOUT))
				die("madvise(MADV_PAGEOUT)");
			t1 = now_ns();
		}
		if (remote >= 0) {
			atomic_store(&helper_state, 2);
			pthread_join(thread, NULL);
		}
		printf("rep=%d mode=%s size=%lu pageout_ns=%lld\n", rep, mode, size, t1 - t0);
		fflush(stdout);
		if (!external && munmap(p, size))
			die("munmap");
		if (fd >= 0)
			close(fd);
		if (wait_ms)
			usleep(wait_ms * 1000);
	}
	return 0;
}
