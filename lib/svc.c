/*
 * svc.c - what the service's threads share (service.h): waking the
 * watcher, waiting for a burst of handouts to pass, counting connections,
 * a connection's peer, the stores of other server users, and leaving.
 */
#include "internal.h"
#include "service.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SETTLE_US 5000               /* quiet after the last handout */
#define SETTLE_MAX_US 200000

void service_exit(service *sv, int status)
{
	/* On purpose: the sentinel must not start another one. */
	if (sv->sentinel_fd >= 0 && write(sv->sentinel_fd, "x", 1) < 0) {
		/* it is gone already */
	}
	_exit(status);
}

void service_settle(service *sv)
{
	int64_t until = mono_us() + SETTLE_MAX_US, left;

	/* Handouts still coming (a suite's workers asking at once): what
	 * can wait (starting servers, a gc pass) does, not on the two cores
	 * their callers wait for; never long. */
	while ((left = __atomic_load_n(&sv->handout_us, __ATOMIC_RELAXED) +
		SETTLE_US - mono_us()) > 0 && mono_us() < until)
		poll(NULL, 0, (int)(left / 1000) + 1);
}

/* The start time of owner when it is the peer, asked once per connection:
 * a connected peer lives, so its pid is not yet another's (a burst of 64
 * handouts read /proc 64 times for it otherwise). */
unsigned long long conn_owner_start(conn *c, pid_t owner)
{
	if (owner <= 0 || owner != c->pid)
		return 0;
	if (!c->pid_start)
		c->pid_start = proc_start_time(owner);
	return c->pid_start;
}

void service_wake(service *sv)
{
	uint64_t one = 1;

	if (write(sv->wake_fd, &one, sizeof(one)) < 0) {
		/* eventfd overflow: it is awake */
	}
}

void service_quit(service *sv)
{
	pthread_mutex_lock(&sv->mu);
	sv->exiting = true;
	pthread_mutex_unlock(&sv->mu);
	shutdown(sv->listen_fd, SHUT_RDWR);
	close(sv->listen_fd);
	unlink(sv->sock);
	if (ftruncate(sv->lock_fd, 0) < 0) {
		/* only the pid shown to people */
	}
	close(sv->lock_fd);
}

pgsnap_store *service_store_for(service *sv, const char *user,
				pgsnap_error *err)
{
	pgsnap_store_opts o = { 0 };
	char homerun[600];
	pgsnap_store *s = NULL;
	size_t i;

	if (!user || !strcmp(user, sv->s->user))
		return (pgsnap_store *)sv->s;
	pthread_mutex_lock(&sv->mu);
	for (i = 0; i < ARRAY_SIZE(sv->others) && sv->others[i]; i++)
		if (!strcmp(sv->others[i]->user, user))
			s = sv->others[i];
	pthread_mutex_unlock(&sv->mu);
	if (s)
		return s;
	/* The same store: a home given explicitly keeps run/ inside it;
	 * other stores come from the environment, which we inherited. */
	snprintf(homerun, sizeof(homerun), "%s/run", sv->s->home);
	if (!strcmp(homerun, sv->s->run))
		o.home = sv->s->home;
	o.user = user;
	o.bindir = sv->s->bindir;
	if (pgsnap_store_open(&s, &o, err) < 0)
		return NULL;
	pthread_mutex_lock(&sv->mu);
	for (i = 0; i < ARRAY_SIZE(sv->others) && sv->others[i]; i++)
		;
	if (i < ARRAY_SIZE(sv->others))
		sv->others[i] = s;
	pthread_mutex_unlock(&sv->mu);
	if (i == ARRAY_SIZE(sv->others)) {
		pgsnap_store_close(s);
		pgsnap_err(err, EMFILE, "too many server users for one service");
		return NULL;
	}
	return s;
}

void conn_done(conn *c)
{
	service *sv = c->sv;
	bool idle;

	close(c->fd);
	free(c);
	pthread_mutex_lock(&sv->mu);
	idle = --sv->conns == 0 && !sv->tasks;
	sv->last_use_ms = mono_us() / 1000;
	pthread_mutex_unlock(&sv->mu);
	if (idle) /* the watcher may leave after its linger */
		service_wake(sv);
}
