/*
 * snapsync.c - an imported snapshot made durable after the import returns.
 *
 * A syncfs of the snapshots' filesystem waits for every dirty page on it,
 * other people's too: 100-130 ms of a 330 ms import of the default
 * snapshot on a busy ext4 (strace, Dec 2026), for files that the kernel
 * writes back within seconds anyway.  So import names the snapshot with
 * `unsynced=BOOT_ID` in its meta (written and fsynced before the rename),
 * and a detached process runs the syncfs, then replaces meta by the same
 * text without that line (fsync, rename, fsync of the directory).  A
 * snapshot whose meta still names another boot was not known to be on
 * disk when the machine went down: it is never cloned (meta_lost).
 *
 * The child uses only system calls and the stack (it is forked from a
 * process that may have other threads), and works through a descriptor
 * of the directory: a snapshot replaced meanwhile gets its meta written in
 * the retired directory, which is harmless.
 */
#include "snapshot.h"

#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define SYNCED_TMP "meta.synced"

static void sync_child(int dfd, const char *text, size_t len, bool chown_it,
		       uid_t uid, gid_t gid)
{
	int fd;

	setpriority(PRIO_PROCESS, 0, 10);
	if (syncfs(dfd) < 0)
		return;
	fd = openat(dfd, SYNCED_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW, 0644);
	if (fd < 0)
		return;
	if ((chown_it && fchown(fd, uid, gid) < 0) ||
	    write_all(fd, text, len) < 0 || fsync(fd) < 0) {
		close(fd);
		unlinkat(dfd, SYNCED_TMP, 0);
		return;
	}
	close(fd);
	if (renameat(dfd, SYNCED_TMP, dfd, "meta") < 0) {
		unlinkat(dfd, SYNCED_TMP, 0);
		return;
	}
	fsync(dfd);
}

typedef struct sync_job {
	const char *text;
	size_t len;
	bool chown_it;
	uid_t uid;
	gid_t gid;
} sync_job;

static void sync_run(void *arg)
{
	const sync_job *j = arg;

	sync_child(3, j->text, j->len, j->chown_it, j->uid, j->gid);
}

int snap_sync_later(const pgsnap_store *s, int dfd, const char *meta_text,
		    size_t len)
{
	sync_job j = { meta_text, len, s->as_root, s->uid, s->gid };

	return spawn_detached(dfd, sync_run, &j);
}
