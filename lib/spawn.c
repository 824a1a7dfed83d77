/*
 * spawn.c - start programs without a shell.
 *
 * vfork() so that a process holding large mappings or pinned io_uring
 * buffers never pays for (or breaks on) a fork; fork() only for a child
 * that must enter a user namespace (an overlay as an ordinary user).  Between vfork and execve
 * the child may only make raw system calls: glibc's setuid() would signal
 * every thread of the parent (setxid broadcast), so the uid switch uses
 * syscall() directly.
 */
#include "internal.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

/* Everything the child needs, in memory rather than registers: vfork
 * shares our stack, and the child must not depend on clobberable locals. */
struct child_args {
	const char *path;            /* NULL: _exit(0) once set up (a probe) */
	char *const *argv;
	char *const *envp;
	const char *cwd;
	int devnull, in, out;
	bool drop, new_session;
	struct sched_param sched;    /* zero: SCHED_OTHER's */
	uid_t uid;
	gid_t gid;
	/* An overlay mounted in a user+mount namespace of the child's own. */
	bool userns;
	const char *mnt_target;
	char mnt_opts[2200], uid_map[48], gid_map[48];
	int err_fd;                  /* fork: errno goes here; vfork: err */
	volatile int err;
};

static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* A user namespace mapping only the caller gives it CAP_SYS_ADMIN over a
 * new mount namespace, where it may mount an overlay with "userxattr"
 * (kernel 5.11+).  The mount lives and dies with that namespace, i.e. with
 * the server.  The kernel refuses CLONE_NEWUSER to a process sharing its
 * memory: this child comes from fork(), not vfork(). */
static int enter_userns(const struct child_args *a)
{
	if (syscall(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS) < 0 ||
	    write_proc("/proc/self/setgroups", "deny") < 0 ||
	    write_proc("/proc/self/uid_map", a->uid_map) < 0 ||
	    write_proc("/proc/self/gid_map", a->gid_map) < 0 ||
	    syscall(SYS_mount, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    syscall(SYS_mount, "overlay", a->mnt_target, "overlay",
		    MS_NOSUID | MS_NODEV, a->mnt_opts) < 0)
		return -1;
	return 0;
}

static __attribute__((noinline, noreturn)) void child_exec(struct child_args *a)
{
	sigset_t none;
	int e;

	/* stdin from /dev/null, stdout and stderr to out. */
	if (dup2(a->in, 0) < 0 || dup2(a->out, 1) < 0 ||
	    dup2(a->out, 2) < 0)
		goto fail;
	sigemptyset(&none);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
	/* The service's connection threads are batch threads (serve.c):
	 * what they start is scheduled as usual. */
	syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, &a->sched);
	if (a->new_session && setsid() < 0)
		goto fail;
	if (a->userns && enter_userns(a) < 0)
		goto fail;
	if (!a->path)
		_exit(0);
	if (a->drop) {
		if (syscall(SYS_setgroups, 0, NULL) < 0 ||
		    syscall(SYS_setresgid, a->gid, a->gid, a->gid) < 0 ||
		    syscall(SYS_setresuid, a->uid, a->uid, a->uid) < 0)
			goto fail;
	}
	if (a->cwd && chdir(a->cwd) < 0)
		goto fail;
	execve(a->path, a->argv, a->envp);
fail:
	e = errno ? errno : EIO;
	/* vfork shares our memory: the parent reads err.  After fork it
	 * reads the pipe (closed without a word by a successful exec). */
	if (a->err_fd >= 0) {
		if (write(a->err_fd, &e, sizeof(e)) < 0) {
			/* the parent sees a status of 127 */
		}
	} else {
		a->err = e;
	}
	_exit(127);
}

static int overlay_args(struct child_args *a, const spawn_overlay *ov)
{
	int n = snprintf(a->mnt_opts, sizeof(a->mnt_opts), "lowerdir=%s,"
			 "upperdir=%s,workdir=%s,index=off,volatile,userxattr",
			 ov->lower, ov->upper, ov->work);

	if (n < 0 || (size_t)n >= sizeof(a->mnt_opts))
		return -ENAMETOOLONG;
	snprintf(a->uid_map, sizeof(a->uid_map), "%u %u 1\n",
		 (unsigned)getuid(), (unsigned)getuid());
	snprintf(a->gid_map, sizeof(a->gid_map), "%u %u 1\n",
		 (unsigned)getgid(), (unsigned)getgid());
	a->mnt_target = ov->target;
	a->userns = true;
	return 0;
}

/* fork(), for a child that enters namespaces; errno through a pipe. */
static pid_t fork_child(struct child_args *a)
{
	int p[2], e = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	a->err_fd = p[1];
	pid = fork();
	if (pid == 0)
		child_exec(a);
	e = pid < 0 ? errno : 0;
	close(p[1]);
	while (pid > 0 && (n = read(p[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (pid > 0 && e) {
		waitpid(pid, NULL, 0);
		return -e;
	}
	return pid < 0 ? -e : pid;
}

pid_t spawn_process(const char *path, char *const argv[], const spawn_opts *o)
{
	struct child_args a = { 0 };
	pid_t pid;
	int r;

	a.path = path;
	a.argv = argv;
	a.envp = o->envp ? o->envp : environ;
	a.cwd = o->cwd;
	a.new_session = o->new_session;
	a.drop = o->store && o->store->as_root;
	a.err_fd = -1;
	if (a.drop) {
		a.uid = o->store->uid;
		a.gid = o->store->gid;
	}
	if (o->overlay && (r = overlay_args(&a, o->overlay)) < 0)
		return r;
	a.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (a.devnull < 0)
		return -errno;
	a.out = o->out_fd >= 0 ? o->out_fd : a.devnull;
	a.in = o->in_fd > 0 ? o->in_fd : a.devnull;

	if (a.userns) {
		pid = fork_child(&a);
		close(a.devnull);
		return pid;
	}
	pid = vfork();
	if (pid == 0)
		child_exec(&a);
	if (pid < 0)
		a.err = errno;
	close(a.devnull);
	if (pid > 0 && a.err) {
		waitpid(pid, NULL, 0);
		return -a.err;
	}
	return pid < 0 ? -a.err : pid;
}

int run_process(const char *path, char *const argv[], const spawn_opts *o)
{
	int status;
	pid_t pid = spawn_process(path, argv, o);

	if (pid < 0)
		return pid;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

ssize_t spawn_capture(const char *path, char *const argv[],
		      const spawn_opts *o, int timeout_ms, char *buf, size_t len)
{
	spawn_opts so = *o;
	size_t got = 0;
	int pfd[2];
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	so.out_fd = pfd[1];
	pid = spawn_process(path, argv, &so);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return pid;
	}
	while (got + 1 < len && (n = read(pfd[0], buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(pfd[0]);
	wait_pid_exit(pid, timeout_ms);
	buf[got] = '\0';
	return (ssize_t)got;
}

int pidfd_open_pid(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
}

int wait_pid_exit(pid_t pid, int timeout_ms)
{
	cleanup_close int pfd = pidfd_open_pid(pid);
	struct pollfd p;
	int r;

	if (pfd < 0)
		return pfd == -ESRCH ? 0 : pfd;
	p.fd = pfd;
	p.events = POLLIN;
	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	waitpid(pid, NULL, WNOHANG); /* reap it if it was our child */
	return 0;
}

int spawn_detached(int fd, void (*fn)(void *arg), void *arg)
{
	cleanup_close int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	pid_t pid;
	int status;

	if (fd < 0 || devnull < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* The middle child exits at once: the worker is orphaned to
		 * init (or a subreaper) and nobody has to wait for it. */
		if (fork() != 0)
			_exit(0);
		setsid();
		/* No lock of the caller's, no pipe a shell waits on for EOF. */
		if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 ||
		    dup2(devnull, 2) < 0 || dup2(fd, 3) < 0)
			_exit(1);
		syscall(SYS_close_range, 4, ~0U, 0);
		fn(arg);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}
