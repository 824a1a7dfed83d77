/*
 * spawn.c - start programs without a shell.
 *
 * vfork() so that a process holding large mappings or pinned io_uring
 * buffers never pays for (or breaks on) a fork.  Between vfork and execve
 * the child may only make raw system calls: glibc's setuid() would signal
 * every thread of the parent (setxid broadcast), so the uid switch uses
 * syscall() directly.
 */
#include "internal.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

/* Everything the child needs, in memory rather than registers: vfork
 * shares our stack, and the child must not depend on clobberable locals. */
struct child_args {
	const char *path;
	char *const *argv;
	char *const *envp;
	const char *cwd;
	int devnull, in, out;
	bool drop, new_session;
	uid_t uid;
	gid_t gid;
	volatile int err;
};

static __attribute__((noinline, noreturn)) void child_exec(struct child_args *a)
{
	sigset_t none;

	/* stdin from /dev/null, stdout and stderr to out. */
	if (dup2(a->in, 0) < 0 || dup2(a->out, 1) < 0 ||
	    dup2(a->out, 2) < 0)
		goto fail;
	sigemptyset(&none);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
	if (a->new_session && setsid() < 0)
		goto fail;
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
	/* vfork shares our memory: the parent reads this. */
	a->err = errno ? errno : EIO;
	_exit(127);
}

pid_t spawn_process(const char *path, char *const argv[], const spawn_opts *o)
{
	struct child_args a = { 0 };
	pid_t pid;

	a.path = path;
	a.argv = argv;
	a.envp = o->envp ? o->envp : environ;
	a.cwd = o->cwd;
	a.new_session = o->new_session;
	a.drop = o->store && o->store->as_root;
	if (a.drop) {
		a.uid = o->store->uid;
		a.gid = o->store->gid;
	}
	a.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (a.devnull < 0)
		return -errno;
	a.out = o->out_fd >= 0 ? o->out_fd : a.devnull;
	a.in = o->in_fd > 0 ? o->in_fd : a.devnull;

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
