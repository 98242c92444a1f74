/*
 * pool.c
 *		The servers of jobq.servers as one pool.
 *
 * A job goes to one server, chosen by rendezvous hashing of its uuid: each
 * server scores the job (a hash of the uuid mixed with a hash of the
 * server's name) and the highest score wins.  Jobs spread evenly; a job's
 * server depends only on its uuid and the servers listed, so adding or
 * removing a server moves only the jobs that go to, or went to, that one;
 * and when a server is down, its jobs go to their second choice, which is
 * spread over all the others rather than piled on one neighbour.
 *
 * A server whose request fails with a connection error (or that is
 * draining, or out of memory) is marked down: it gets no jobs for a second,
 * then two, up to ten, and is tried again after that (the next job that
 * hashes to it); the first success marks it up.  A server that fails again
 * within a minute of that keeps its last wait, doubled.  What the relay
 * and the workers find unreachable (refused, reset, or no connection made
 * in time; not a late reply) is shared (shmem.c): the other
 * processes, sessions included, skip that server until its wait is over,
 * instead of each paying a failed connect (up to jobq.connect_timeout for
 * a host that drops packets).  A session's own findings stay its own: its
 * timeouts are its user's to set.  Each process keeps its own
 * marks.  When every server is marked down, all are tried anyway: the
 * caller's own back-off then paces the retries.
 *
 * Ordering and priority are per server: beanstalkd orders the jobs of each
 * server, and a job on one does not wait for a more urgent one on another.
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "jobq.h"
#include "pool.h"
#include "rendezvous.h"
#include "settings.h"
#include "shmem.h"

#define DOWN_FIRST_MS	1000
#define DOWN_MAX_MS		10000
#define UP_RESET_MS		60000

static int	pool_find(BsPool *pool, const char *server);

void
pool_init(BsPool *pool, const char *servers, const char *who, MemoryContext mcxt)
{
	memset(pool, 0, sizeof(*pool));
	pool->mcxt = mcxt;
	pool->who = who;
	if (!pool_set_servers(pool, servers))
		elog(ERROR, "jobq: invalid jobq.servers \"%s\"", servers);
}

/*
 * Make the pool the servers of 'servers': connections to servers still
 * listed are kept (with their down marks), the others closed.  Returns
 * whether the list changed; an invalid list (the GUC check prevents one)
 * leaves the pool as it was.
 */
bool
pool_set_servers(BsPool *pool, const char *servers)
{
	char		(*names)[BS_MAX_SERVER];
	char	   *detail;
	int			n;
	BeanstalkConn *conns[BS_MAX_SERVERS];
	TimestampTz retry_at[BS_MAX_SERVERS];
	int			down_ms[BS_MAX_SERVERS];
	TimestampTz up_at[BS_MAX_SERVERS];
	bool		kept[BS_MAX_SERVERS] = {0};

	if (pool->setting != NULL && strcmp(pool->setting, servers) == 0)
		return false;
	names = MemoryContextAlloc(pool->mcxt, sizeof(char[BS_MAX_SERVERS][BS_MAX_SERVER]));
	n = bs_split_servers(servers, names, &detail);
	if (n < 0)
	{
		pfree(names);
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		int			old = pool_find(pool, names[i]);

		if (old >= 0)
		{
			conns[i] = pool->conns[old];
			retry_at[i] = pool->retry_at[old];
			down_ms[i] = pool->down_ms[old];
			up_at[i] = pool->up_at[old];
			kept[old] = true;
		}
		else
		{
			conns[i] = MemoryContextAllocZero(pool->mcxt, sizeof(BeanstalkConn));
			bs_init(conns[i], names[i], pool->mcxt);
			retry_at[i] = 0;
			down_ms[i] = 0;
			up_at[i] = 0;
		}
	}
	for (int i = 0; i < pool->n; i++)
	{
		if (kept[i])
			continue;
		bs_free(pool->conns[i]);
		pfree(pool->conns[i]);
	}
	pool->n = n;
	for (int i = 0; i < n; i++)
	{
		pool->conns[i] = conns[i];
		pool->retry_at[i] = retry_at[i];
		pool->down_ms[i] = down_ms[i];
		pool->up_at[i] = up_at[i];
		pool->seed[i] = rendezvous_seed(names[i]);
	}
	if (pool->setting != NULL)
		pfree(pool->setting);
	pool->setting = MemoryContextStrdup(pool->mcxt, servers);
	pfree(names);
	return true;
}

/* the index of server "host:port" as jobq.servers spells it, or -1 */
static int
pool_find(BsPool *pool, const char *server)
{
	for (int i = 0; i < pool->n; i++)
		if (strcmp(pool->conns[i]->server, server) == 0)
			return i;
	return -1;
}

/*
 * The connection to the server a job id was given by: 'server' (NULL when
 * not recorded, which is only unambiguous with one server); NULL when that
 * server is not in the pool.
 */
BeanstalkConn *
pool_conn_of(BsPool *pool, const char *server)
{
	int			i;

	if (server == NULL)
		return pool->n == 1 ? pool->conns[0] : NULL;
	i = pool_find(pool, server);
	return i >= 0 ? pool->conns[i] : NULL;
}

/* until when server i is down: by this process's mark, or another's */
static TimestampTz
down_until(BsPool *pool, int i)
{
	return Max(pool->retry_at[i], shmem_server_retry_at(pool->seed[i]));
}

/* not marked down, or its wait is over */
bool
pool_usable(BsPool *pool, int i)
{
	TimestampTz until = down_until(pool, i);

	return until == 0 || GetCurrentTimestamp() >= until;
}


/* how long until a server marked down may be tried again (0: one may now) */
int
pool_next_retry_ms(BsPool *pool)
{
	TimestampTz now = GetCurrentTimestamp();
	long		best = DOWN_MAX_MS;

	for (int i = 0; i < pool->n; i++)
	{
		TimestampTz until = down_until(pool, i);

		if (until == 0 || now >= until)
			return 0;
		best = Min(best, TimestampDifferenceMilliseconds(now, until));
	}
	return (int) best;
}

/* the servers usable now, as a mask: taken once for a batch of placements */
uint32
pool_usable_mask(BsPool *pool)
{
	uint32		mask = 0;

	for (int i = 0; i < pool->n; i++)
		if (pool_usable(pool, i))
			mask |= 1U << i;
	return mask;
}

/*
 * The server a job goes to: its first choice that is in 'usable' (see
 * pool_usable_mask) and not in 'failed' (servers that failed during the
 * caller's batch); when none is usable, the first not in 'failed'; -1 when
 * all failed.
 */
int
pool_place(BsPool *pool, const pg_uuid_t *id, uint32 usable, uint32 failed)
{
	int			order[BS_MAX_SERVERS];
	int			fallback = -1;

	if (pool->n == 1)
		return (failed & 1) ? -1 : 0;
	rendezvous_order(pool->seed, pool->n, id->data, order);
	for (int k = 0; k < pool->n; k++)
	{
		int			i = order[k];

		if (failed & (1U << i))
			continue;
		if (usable & (1U << i))
			return i;
		if (fallback < 0)
			fallback = i;
	}
	return fallback;
}

/* A request to server i failed: no jobs for it for a while.  Logged once. */
void
pool_mark_down(BsPool *pool, int i, const char *why, bool share)
{
	bool		was_up = pool->retry_at[i] == 0;
	TimestampTz shared = shmem_server_retry_at(pool->seed[i]);

	/*
	 * The wait starts over after a minute of service; a server that fails
	 * again soon after it answered (half working) keeps doubling it.
	 */
	if (was_up && TimestampDifferenceExceeds(pool->up_at[i], GetCurrentTimestamp(), UP_RESET_MS))
		pool->down_ms[i] = 0;
	pool->down_ms[i] = pool->down_ms[i] == 0 ? DOWN_FIRST_MS :
		Min(pool->down_ms[i] * 2, DOWN_MAX_MS);
	pool->retry_at[i] = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pool->down_ms[i]);
	if (share)
		shmem_set_server_retry_at(pool->seed[i], Max(pool->retry_at[i], shared));

	/*
	 * Logged once per outage by the relay and each worker; a backend
	 * (jobq_put_now, the admin functions) only when it found out first,
	 * so that many sessions do not repeat it.
	 */
	if (was_up && (pool->who != NULL || shared == 0))
		ereport(LOG,
				(errmsg("jobq%s%s: beanstalkd at %s is unusable: %s",
						pool->who ? " " : "", pool->who ? pool->who : "",
						pool->conns[i]->server, why),
				 pool->n > 1 ?
				 errhint("The other servers of jobq.servers are used meanwhile; this one is "
						 "tried again every few seconds.") :
				 errhint("Retrying; the next message says when it answers again.")));
}

void
pool_mark_up(BsPool *pool, int i)
{
	if (pool->retry_at[i] == 0)
		return;
	pool->retry_at[i] = 0;
	pool->up_at[i] = GetCurrentTimestamp();

	/*
	 * Only a process that had marked it down clears the shared mark, once
	 * its own try worked: a request that merely began before the outage
	 * must not erase another's fresher mark (marks expire anyway).
	 */
	if (pool->who != NULL)
		shmem_set_server_retry_at(pool->seed[i], 0);
	ereport(LOG,
			(errmsg("jobq%s%s: beanstalkd at %s answers again",
					pool->who ? " " : "", pool->who ? pool->who : "",
					pool->conns[i]->server)));
}

/*
 * A request to server i came to a status that says the server is unusable
 * (bs_status_trouble): close the connection and mark the server down.
 */
void
pool_failed(BsPool *pool, int i, BsStatus st)
{
	BeanstalkConn *conn = pool->conns[i];

	Assert(bs_status_trouble(st));
	snprintf(pool->last_error, sizeof(pool->last_error), "%s: %s",
			 conn->server, conn->error.message);
	bs_close(conn);

	/*
	 * Shared with the other processes: what the relay and the workers
	 * found unreachable, a connection refused, reset or not made in time.
	 * Not a session's finding (its jobq.io_timeout and jobq.connect_timeout
	 * are its user's to set), nor a reply that was late (the asking
	 * process's own load may be why), nor a reply that made no sense, nor
	 * a server that is draining or out of memory, which the workers must
	 * still empty.
	 */
	pool_mark_down(pool, i, conn->error.message,
				   pool->who != NULL && st == BS_LOST &&
				   ERRCODE_TO_CATEGORY(conn->error.sqlerrcode) == ERRCODE_CONNECTION_EXCEPTION &&
				   conn->error.sqlerrcode != ERRCODE_PROTOCOL_VIOLATION &&
				   !conn->error.reply_timed_out);
}

/*
 * fn(conn of server i, arg), which returns the status of its requests
 * (BS_OK once it has dealt with the answers).  A status that says the
 * server is unusable closes the connection, marks the server down and
 * returns false; any other marks it up and returns true, except
 * BS_BAD_REQUEST, a request jobq got wrong, which is the caller's ERROR.
 * Nothing is caught here: an ERROR that fn throws (a cancel, a refusal fn
 * reports) goes on to the caller.
 */
bool
pool_call(BsPool *pool, int i, PoolFn fn, void *arg)
{
	BsStatus	st = fn(pool->conns[i], arg);

	if (st == BS_BAD_REQUEST)
		bs_report(pool->conns[i]);
	if (bs_status_trouble(st))
	{
		pool_failed(pool, i, st);
		return false;
	}
	pool_mark_up(pool, i);
	return true;
}

/*
 * Every server of the pool failed a request: the caller's error, the one
 * message for it ('outcome' says what none did: "took the job",
 * "answered").
 */
void
pool_error_all_failed(BsPool *pool, const char *outcome)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("no beanstalkd server of jobq.servers %s", outcome),
			 errdetail("Tried the %d server(s) of \"%s\"; the last error was %s.",
					   pool->n, pool->setting, pool->last_error),
			 errhint("Is beanstalkd running there? The server log says why each failed.")));
	pg_unreachable();
}

/* the smallest max-job-size among the servers read so far, -1 if none */
int64
pool_min_job_size(BsPool *pool)
{
	int64		min = -1;

	for (int i = 0; i < pool->n; i++)
	{
		int64		m = pool->conns[i]->max_job_size;

		if (m >= 0 && (min < 0 || m < min))
			min = m;
	}
	return min;
}

/*---- the jobq.servers setting, and the backend's pool ----*/

char	   *jobq_servers = NULL;
static BsPool *backend_pool = NULL;

static bool
servers_check_hook(char **newval, void **extra, GucSource source)
{
	char		(*names)[BS_MAX_SERVER];
	char	   *detail;
	int			n;

	if (!jobq_setting_source_ok(source))
		return false;
	names = palloc(sizeof(char[BS_MAX_SERVERS][BS_MAX_SERVER]));
	n = bs_split_servers(*newval, names, &detail);
	pfree(names);
	if (n < 0)
	{
		GUC_check_errdetail("%s", detail);
		return false;
	}
	return true;
}

static void
servers_assign_hook(const char *newval, void *extra)
{
	/* the next request of this backend goes to the new servers */
	if (backend_pool != NULL)
		pool_set_servers(backend_pool, newval);
}

void
pool_init_gucs(void)
{
	DefineCustomStringVariable("jobq.servers",
							   "beanstalkd servers, as host:port[,host:port...].",
							   "Producers spread jobs over them and fail over; workers reserve from all of them.",
							   &jobq_servers,
							   "127.0.0.1:11300",
							   PGC_SUSET, 0,
							   servers_check_hook, servers_assign_hook, NULL);
}

/* The backend's pool of persistent connections, created on first use. */
BsPool *
pool_backend(void)
{
	if (backend_pool == NULL)
	{
		BsPool	   *pool = MemoryContextAllocZero(TopMemoryContext, sizeof(BsPool));

		pool_init(pool, jobq_servers, NULL, TopMemoryContext);
		backend_pool = pool;
	}
	return backend_pool;
}
