/*
 * clone_bench.c - times the clone engines alone (no server), for
 * scripts/bench-clone.sh.  Links the internal archive.
 *
 *   clone_bench clone HOME SNAPSHOT WHAT N
 *       N clones of SNAPSHOT, WHAT = overlay | reflink | copy (the copy
 *       variant from PGSNAP_COPY_IMPL) | cp-a (coreutils' default:
 *       --reflink=auto since 9.0) | cp-a-never (--reflink=never, a real
 *       copy); one line per clone on
 *       stdout: "clone_ms remove_ms how cpu_ms" where each clone is removed
 *       alternately by pgsnap's way (release + rename into the trash,
 *       then the trash emptied untimed) and by `rm -rf` (timed); cpu_ms
 *       is the CPU time the clone took (threads, io_uring workers, cp).
 *   clone_bench prepare HOME SNAPSHOT
 *       write the manifest of HOME/snapshots/SNAPSHOT (made by hand).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

static double ms(int64_t a, int64_t b)
{
	return (double)(b - a) / 1000.0;
}

/* CPU time (user + system, ms) of this process's threads, the kernel's
 * io_uring workers among them, and of its waited-for children. */
static double cpu_ms(void)
{
	struct rusage a, b;

	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
			b.ru_stime.tv_sec) * 1e3 +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec +
			b.ru_utime.tv_usec + b.ru_stime.tv_usec) / 1e3;
}

static int open_home(const char *home, pgsnap_store **s)
{
	pgsnap_store_opts o = { 0 };
	pgsnap_error err = { 0 };

	o.home = home;
	if (pgsnap_store_open(s, &o, &err) < 0) {
		fprintf(stderr, "clone_bench: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int run_argv(const pgsnap_store *s, char **argv)
{
	spawn_opts so = { 0 };
	(void)s;
	so.out_fd = -1;
	return run_process(argv[0], argv, &so);
}

int main(int argc, char **argv)
{
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	char snapdir[600], golden[700], dir[700], trash[700];
	const clone_engine *eng = NULL;
	pgsnap_method m = PGSNAP_METHOD_AUTO;
	long n, i;
	int r;

	if (argc == 4 && !strcmp(argv[1], "prepare")) {
		if (open_home(argv[2], &s) < 0)
			return 1;
		snapshot_dir(s, argv[3], snapdir, sizeof(snapdir));
		if (clone_prepare_snapshot(s, snapdir, &err) < 0) {
			fprintf(stderr, "clone_bench: %s\n", err.msg);
			return 1;
		}
		return 0;
	}
	if (argc != 6 || strcmp(argv[1], "clone") ||
	    parse_long(argv[5], 1, 100000, &n) < 0) {
		fprintf(stderr, "usage: clone_bench clone HOME SNAPSHOT "
			"overlay|reflink|copy|cp-a|cp-a-never N\n");
		return 2;
	}
	if (open_home(argv[2], &s) < 0)
		return 1;
	if (pgsnap_snapshot_ensure(s, argv[3], &err) < 0) {
		fprintf(stderr, "clone_bench: %s\n", err.msg);
		return 1;
	}
	snapshot_dir(s, argv[3], snapdir, sizeof(snapdir));
	snprintf(golden, sizeof(golden), "%s/data", snapdir);
	if (strncmp(argv[4], "cp-a", 4)) {
		if (pgsnap_method_parse(argv[4], &m) < 0 ||
		    clone_choose_for(s, m, snapdir, &eng, &err) < 0) {
			fprintf(stderr, "clone_bench: %s\n", err.msg[0] ?
				err.msg : "unknown method");
			return 1;
		}
	}
	/* Outside RUN/clones: gc would take unregistered clone directories
	 * there for orphans and remove them under our feet. */
	snprintf(dir, sizeof(dir), "%s/bench-clones", s->run);
	/* Like RUN/clones: the server user's, so it can make clones in it. */
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) ||
	    (s->as_root && chown(dir, s->uid, s->gid) < 0)) {
		fprintf(stderr, "clone_bench: mkdir %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++) {
		clone_job job = { 0 };
		int64_t t0, t1, t2;
		double c0, c1;
		bool rmrf = i % 2;

		snprintf(dir, sizeof(dir), "%s/bench-clones/%d-%ld", s->run,
			 (int)getpid(), i);
		snprintf(trash, sizeof(trash), "%s/trash/bench-%d-%ld",
			 s->run, (int)getpid(), i);
		if ((r = mkdir_server(s, dir)) < 0) {
			fprintf(stderr, "clone_bench: mkdir %s: %s\n", dir,
				strerror(-r));
			return 1;
		}
		job.store = s;
		job.golden = golden;
		job.snapdir = snapdir;
		job.dir = dir;
		c0 = cpu_ms();
		t0 = mono_us();
		if (eng) {
			r = eng->clone(&job, &err);
		} else {
			char dst[760];
			char *cp[] = { "/bin/cp", "-a", golden, dst, NULL,
					NULL };
			if (!strcmp(argv[4], "cp-a-never")) {
				cp[2] = "--reflink=never";
				cp[3] = golden;
				cp[4] = dst;
			}
			snprintf(dst, sizeof(dst), "%s/data", dir);
			r = run_argv(s, cp) == 0 ? 0 : -EIO;
			snprintf(err.msg, sizeof(err.msg), "cp -a failed");
		}
		t1 = mono_us();
		c1 = cpu_ms();
		if (r < 0) {
			fprintf(stderr, "clone_bench: %s\n", err.msg);
			return 1;
		}
		if (eng)
			eng->release(s, dir);
		if (rmrf) {
			char *rm[] = { "/bin/rm", "-rf", dir, NULL };
			run_argv(s, rm);
		} else if (rename(dir, trash) < 0) {
			perror("rename");
			return 1;
		}
		t2 = mono_us();
		/* Empty the trash now, untimed, so that no deleter competes
		 * with the next clone for the CPUs. */
		trash_empty(s);
		printf("%.3f %.3f %s %.3f\n", ms(t0, t1), ms(t1, t2),
		       rmrf ? "rm-rf" : "trash", c1 - c0);
	}
	pgsnap_store_close(s);
	return 0;
}
