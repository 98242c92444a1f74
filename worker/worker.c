/*
 * worker.c
 *		A job worker: reserve a batch of jobs from beanstalkd, run them in a
 *		transaction (each in a subtransaction of its own, job_run.c), commit,
 *		then delete, release or bury all of them in one write.
 *
 * The worker keeps a connection to every server of jobq.servers (pool.c),
 * each watching the tubes that have handlers.  Order of events for one
 * batch:
 *	1. reserve (with a 1 s timeout, so registry changes and SIGHUP are seen):
 *	   from the first server with a job ready, or, when none has one, from
 *	   whichever answers first a reserve sent to all (reserve_first)
 *	2. in one pipelined write to that server: stats-job of that job (its
 *	   tube, ttr, reserve count) and up to jobq.batch_size - 1
 *	   "reserve-with-timeout 0", which answer at once: an idle queue gives a
 *	   batch of one, without waiting
 *	3. in one more pipelined write per server: stats-job of the other jobs
 *	   (a batch may hold jobs of several servers; each job is touched,
 *	   deleted, released or buried on its own)
 *	4. one transaction runs the batch's jobs in order (job_run.c), with every
 *	   job of the batch touched each half of the shortest ttr among them (touch.c), so
 *	   none is given to another worker while the ones before it run
 *	5. commit, then one pipelined write per server: delete each job that ran, release
 *	   with back-off one that failed, bury one that failed for the last time;
 *	   when the batch came back full, the same write reserves the next batch
 *	   (steps 1 and 2 are then skipped: under load a batch costs the round
 *	   trip of its stats and that of its settling)
 * A crash between 5's commit and deletes redelivers the jobs, and job_run
 * drops each as done already (jobq.done): effects inside PostgreSQL happen
 * once.
 *
 * A job reserved before (beanstalkd's reserve count above one) runs in a
 * transaction of its own: it failed, or a worker ended while it ran, maybe
 * because of it (a handler that catches its cancel past the hard limit, a
 * crash); the jobs that shared its batch must not pay again.  A transaction
 * also ends when its subtransaction xids near PGPROC_MAX_CACHED_SUBXIDS
 * (job_may_share_xact).  The batch adapts: it grows while batches come back
 * full, and holds no more jobs than the average run time fits twice into
 * the shortest ttr seen.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "jobq.h"
#include "pool.h"
#include "shmem.h"
#include "touch.h"
#include "worker.h"

#define RESERVE_TIMEOUT_S	1
#define REFRESH_TUBES_MS	1000
#define ROTATE_AFTER		4	/* full batches from one server before looking at the others */
#define LATE_GRACE_US		300 /* for the jobs that came with the first, see reserve_late */
#define AVG_WEIGHT			0.2 /* of the last batch in the running average */


static int	my_slot;
static BsPool pool;				/* the servers of jobq.servers */
static ProcessBackoff backoff;	/* static: survives the main loop's longjmp */
static char worker_name[32];

/* the tubes with handlers, and what each server's connection watches */
typedef struct WatchState
{
	List	   *tubes;			/* the tubes with handlers (TopMemoryContext) */
	TimestampTz refreshed;
	List	   *watched[BS_MAX_SERVERS];	/* per server: the tubes it watches ... */
	uint64		generation[BS_MAX_SERVERS];	/* ... on this connection */
} WatchState;

static WatchState watch;

/*
 * Where the worker's batches come from, and how big they are.  Errors need
 * none of it to find their server: each request's status names it
 * (check_request, pool_call).
 */
typedef struct BatchState
{
	int			cur;			/* the server of the batch at hand */
	int			next_server;	/* where the next look for ready jobs starts */
	int			streak;			/* full batches in a row from cur */
	bool		server_failure; /* the iteration ended for a server's failure */
	uint32		still_waiting;	/* servers with a blocking reserve sent, unanswered */

	/*
	 * Under load, the next batch is reserved in the write that settles the
	 * last one: its jobs wait in next_jobs, in the one of two memory
	 * contexts that the running batch does not use.
	 */
	MemoryContext cxt[2];
	int			cxt_cur;
	BatchJob   *next_jobs;
	int			next_n;
	int			next_from;		/* the server that reserved them ... */
	uint64		next_generation;	/* ... on this connection */

	/* sizing */
	int			want_next;		/* what the next batch asks for, at most */
	double		job_avg_us;		/* running average of a job's time, commit included */
	uint64		min_ttr_ms;		/* the shortest ttr of the last batch */
} BatchState;

static BatchState batch = {.cur = -1, .next_from = -1, .want_next = 1, .min_ttr_ms = 1000};

static int	jobq_batch_size = JOBQ_DEFAULT_BATCH_SIZE;

void
worker_init_gucs(void)
{
	DefineCustomIntVariable("jobq.batch_size",
							"Most jobs a worker reserves at once and runs in one transaction.",
							"Each job still runs in a subtransaction of its own; 1 runs "
							"every job in a transaction of its own.",
							&jobq_batch_size,
							JOBQ_DEFAULT_BATCH_SIZE, 1, JOBQ_MAX_BATCH_SIZE,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
}

/* The tubes that have handlers, read in a short transaction. */
static List *
read_tubes(void)
{
	List	   *found = NIL;
	MemoryContext ctx = CurrentMemoryContext;
	int			rc;

	process_xact_begin();
	rc = SPI_execute("SELECT DISTINCT tube FROM jobq.handlers ORDER BY 1", true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: reading tubes failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext spi = MemoryContextSwitchTo(ctx);

		found = lappend(found, pstrdup(SPI_getvalue(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1)));
		MemoryContextSwitchTo(spi);
	}
	process_xact_end();
	return found;
}

static bool
list_has_string(List *l, const char *s)
{
	ListCell   *lc;

	foreach(lc, l)
		if (strcmp(lfirst(lc), s) == 0)
		return true;
	return false;
}

/* Read the tubes with handlers again, every REFRESH_TUBES_MS. */
static void
refresh_tubes(void)
{
	List	   *now = read_tubes();
	MemoryContext ctx = MemoryContextSwitchTo(TopMemoryContext);
	ListCell   *lc;

	list_free_deep(watch.tubes);
	watch.tubes = NIL;
	foreach(lc, now)
		watch.tubes = lappend(watch.tubes, pstrdup(lfirst(lc)));
	watch.refreshed = GetCurrentTimestamp();
	MemoryContextSwitchTo(ctx);
}

/*
 * Make server i's watch list the set of tubes with handlers.  The
 * "default" tube every connection starts with is ignored unless it has a
 * handler.  A new connection (its generation changed) starts over.
 */
static BsStatus
sync_watch(BeanstalkConn *c, int i)
{
	ListCell   *lc;
	MemoryContext ctx;
	BsStatus	st;
	int			n;

	if ((st = bs_connect_now(c)) != BS_OK)
		return st;
	ctx = MemoryContextSwitchTo(TopMemoryContext);
	if (watch.generation[i] != c->generation)
	{
		list_free_deep(watch.watched[i]);
		watch.watched[i] = list_make1(pstrdup("default"));
		watch.generation[i] = c->generation;
	}
	foreach(lc, watch.tubes)
	{
		if (!list_has_string(watch.watched[i], lfirst(lc)))
		{
			if ((st = bs_watch(c, lfirst(lc), &n)) != BS_OK)
				break;
			watch.watched[i] = lappend(watch.watched[i], pstrdup(lfirst(lc)));
		}
	}
	foreach(lc, watch.watched[i])
	{
		if (st == BS_OK && !list_has_string(watch.tubes, lfirst(lc)))
		{
			if ((st = bs_ignore(c, lfirst(lc), &n)) != BS_OK)
				break;
			pfree(lfirst(lc));
			watch.watched[i] = foreach_delete_current(watch.watched[i], lc);
		}
	}
	MemoryContextSwitchTo(ctx);
	return st;
}

static BsStatus
sync_watch_call(BeanstalkConn *c, void *arg)
{
	return sync_watch(c, *(int *) arg);
}

/*
 * A request to server s outside pool_call came to st: nothing, unless it
 * failed; then, as pool_call would, the server is marked down, and the
 * iteration ends with the request's error (the main loop gives back what
 * the batch had reserved).
 */
static void
check_request(int s, BsStatus st)
{
	if (!bs_status_trouble(st) && st != BS_BAD_REQUEST)
		return;
	if (bs_status_trouble(st))
	{
		pool_failed(&pool, s, st);
		batch.server_failure = true;
	}
	bs_report(pool.conns[s]);
}

/* close every connection: nothing reserved, nothing watched */
static void
close_all(void)
{
	for (int i = 0; i < pool.n; i++)
		bs_close(pool.conns[i]);
	batch.next_n = 0;
	batch.still_waiting = 0;
}

/* a count of beanstalkd's, as far as a uint32 goes */
static uint64
count32(uint64 n)
{
	return Min(n, BS_MAX_UINT32);
}

/* What stats-job says of a job. */
static void
facts_from_stats(const BsJobStats *js, JobFacts *facts)
{
	facts->put_at = GetCurrentTimestamp() - (TimestampTz) count32(js->age) * USECS_PER_SEC;
	facts->priority = count32(js->pri);
	strlcpy(facts->tube, js->tube, sizeof(facts->tube));
	facts->ttr_ms = count32(js->ttr) * 1000;
	facts->attempt = (int) Min(js->reserves, (uint64) INT_MAX);
	facts->failures = (int) Min(count32(js->releases) + count32(js->buries), (uint64) INT_MAX);
}

/* the job's facts, or gone if it was deleted meanwhile */
static void
read_facts(BatchJob *bj)
{
	BsJobStats	js;
	BsStatus	st = bs_read_stats_job_reply(pool.conns[bj->server], &js);

	if (st != BS_NOT_FOUND)
		check_request(bj->server, st);
	bj->gone = st == BS_NOT_FOUND;
	if (!bj->gone)
		facts_from_stats(&js, &bj->facts);
}

/* the servers of jobs[from..n) (not gone), as a mask */
static uint32
servers_of(const BatchJob *jobs, int from, int n)
{
	uint32		mask = 0;

	for (int i = from; i < n; i++)
		if (!jobs[i].gone)
			mask |= 1U << jobs[i].server;
	return mask;
}

/*
 * How many jobs the next batch may hold: jobq.batch_size at most (1 when
 * jobq.touch_jobs is off: only touches keep waiting jobs reserved), no more
 * than the average job fits twice into the shortest ttr seen, and twice
 * what the last batch got unless it came back full: after an idle spell the
 * first batch asks for 2, the next for all.
 */
static int
batch_want(void)
{
	double		cap = jobq_touch_jobs ? jobq_batch_size : 1;

	if (batch.job_avg_us > 0)
		cap = Min(cap, (double) batch.min_ttr_ms * 1000.0 / 2.0 / batch.job_avg_us);
	return Max(Min(batch.want_next, (int) cap), 1);
}

/* stats-job of jobs[from..n): one write to each of their servers, then the replies */
static void
read_stats(BatchJob *jobs, int from, int n)
{
	uint32		used = servers_of(jobs, from, n);

	for (int s = 0; s < pool.n; s++)
	{
		if (!(used & (1U << s)))
			continue;
		check_request(s, bs_pipeline_begin(pool.conns[s]));
		for (int i = from; i < n; i++)
			if (jobs[i].server == s)
				bs_queue_stats_job(pool.conns[s], jobs[i].job.id);
		check_request(s, bs_flush(pool.conns[s]));
	}
	for (int s = 0; s < pool.n; s++)
	{
		if (!(used & (1U << s)))
			continue;
		for (int i = from; i < n; i++)
			if (jobs[i].server == s)
				read_facts(&jobs[i]);
	}
}

/*
 * Read the replies to 'count' pipelined "reserve-with-timeout 0" sent to
 * server s into jobs[0..count); *n says how many jobs came.
 */
static BsStatus
read_reserved(BatchJob *jobs, int count, int s, int *n)
{
	*n = 0;
	for (int i = 0; i < count; i++)
	{
		BsStatus	st = bs_read_reserve_reply(pool.conns[s], &jobs[*n].job);

		if (st == BS_OK)
			jobs[(*n)++].server = s;
		else if (st != BS_TIMED_OUT && st != BS_DEADLINE_SOON)
			return st;
	}
	return BS_OK;
}

/* the answer to one reserve: a job (r->got), none, or the failure */
static BsStatus
reserve_answer(BeanstalkConn *c, BsJob *job, bool *got)
{
	BsStatus	st = bs_read_reserve_reply(c, job);

	*got = st == BS_OK;
	return (st == BS_TIMED_OUT || st == BS_DEADLINE_SOON) ? BS_OK : st;
}

/* one server's part in looking for a job: see reserve_first */
typedef struct ServerReserve
{
	int			server;
	bool		got;
	BsJob		first;
} ServerReserve;

/* a job that is ready now on this server, if there is one */
static BsStatus
reserve_ready(BeanstalkConn *c, void *arg)
{
	ServerReserve *r = (ServerReserve *) arg;
	BsStatus	st;

	if ((st = sync_watch(c, r->server)) != BS_OK ||
		(st = bs_pipeline_begin(c)) != BS_OK)
		return st;
	bs_queue_reserve(c, 0);
	if ((st = bs_flush(c)) != BS_OK)
		return st;
	return reserve_answer(c, &r->first, &r->got);
}

static BsStatus
send_blocking_reserve(BeanstalkConn *c, void *arg)
{
	ServerReserve *r = (ServerReserve *) arg;
	BsStatus	st;

	if ((st = sync_watch(c, r->server)) != BS_OK ||
		(st = bs_pipeline_begin(c)) != BS_OK)
		return st;
	bs_queue_reserve(c, RESERVE_TIMEOUT_S);
	return bs_flush(c);
}

static BsStatus
read_blocking_reserve(BeanstalkConn *c, void *arg)
{
	ServerReserve *r = (ServerReserve *) arg;

	return reserve_answer(c, &r->first, &r->got);
}

/*
 * Step 1: the first jobs of a batch, into jobs[]; returns how many (at most
 * one per server; 0 when none came within the reserve's timeout), the
 * first from cur.  With several servers, first a job ready now, looking at
 * each server in turn from next_server (so that no server's jobs starve
 * another's); when none has one, a blocking reserve goes to every server
 * and the first job that comes wins, with those that came with it from
 * other servers: they join the batch, touched with it.  The reserves still
 * waiting are ended by closing their connections, which gives back at once
 * a job reserved in the instant since (it counts one more reservation): no
 * job waits reserved, untouched, while this worker runs another server's
 * batch.  A server that fails is marked down (pool.c) and skipped for a
 * while.
 */
static int
reserve_first(BatchJob *jobs)
{
	ServerReserve rs[BS_MAX_SERVERS];
	uint32		sent = 0;
	int			n = 0;
	TimestampTz deadline;

	batch.still_waiting = 0;
	for (int k = 0; pool.n > 1 && k < pool.n; k++)
	{
		int			i = (batch.next_server + k) % pool.n;

		rs[i] = (ServerReserve) {i, false};
		if (pool_usable(&pool, i) && pool_call(&pool, i, reserve_ready, &rs[i]) && rs[i].got)
		{
			jobs[0].job = rs[i].first;
			jobs[0].server = batch.cur = i;
			return 1;
		}
	}
	for (int i = 0; i < pool.n; i++)
	{
		rs[i] = (ServerReserve) {i, false};
		if (pool_usable(&pool, i) && pool_call(&pool, i, send_blocking_reserve, &rs[i]))
			sent |= 1U << i;
	}
	if (sent == 0)
	{
		/* every server is down: wait until one may be tried again */
		slot_set_state(my_slot, JOBQ_STATE_WAITING_BEANSTALKD, NULL, NULL, 0);
		worker_sleep(Max(pool_next_retry_ms(&pool), 100));
		return 0;
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   RESERVE_TIMEOUT_S * 1000 + jobq_io_timeout);
	while (sent != 0)
	{
		/* once a job came, only the replies that are there already */
		int			i = bs_wait_any(pool.conns, pool.n, sent,
									n > 0 ? GetCurrentTimestamp() : deadline);

		if (i < 0)
			break;
		sent &= ~(1U << i);
		if (pool_call(&pool, i, read_blocking_reserve, &rs[i]) && rs[i].got)
		{
			if (n == 0)
				batch.cur = i;
			jobs[n].job = rs[i].first;
			jobs[n++].server = i;
		}
	}
	if (n == 0)
	{
		for (int j = 0; j < pool.n; j++)
		{
			if (!(sent & (1U << j)))
				continue;
			bs_close(pool.conns[j]);
			/* a late reply is this process's finding only (see pool_failed) */
			pool_mark_down(&pool, j, "no reply to reserve-with-timeout in time", false);
		}
		return 0;
	}
	batch.still_waiting = sent;
	return n;
}

/*
 * The blocking reserves still waiting after the first job came: a job that
 * came with it on another server (the relay puts to every server in one
 * go) is on its way; take what comes within LATE_GRACE_US more, into
 * jobs[n..], then close the connections still waiting (see
 * reserve_first).  Returns the new n.
 */
static int
reserve_late(BatchJob *jobs, int n)
{
	TimestampTz until = GetCurrentTimestamp() + LATE_GRACE_US;

	while (batch.still_waiting != 0)
	{
		ServerReserve r;
		int			i = bs_wait_any(pool.conns, pool.n, batch.still_waiting, 0);

		if (i < 0)
		{
			if (GetCurrentTimestamp() >= until)
				break;
			pg_usleep(50);
			continue;
		}
		batch.still_waiting &= ~(1U << i);
		r = (ServerReserve) {i, false};
		if (pool_call(&pool, i, read_blocking_reserve, &r) && r.got)
		{
			jobs[n].job = r.first;
			jobs[n++].server = i;
		}
	}
	for (int j = 0; j < pool.n; j++)
		if (batch.still_waiting & (1U << j))
			bs_close(pool.conns[j]);
	batch.still_waiting = 0;
	return n;
}

/*
 * Steps 1 to 3 when nothing was reserved ahead: reserve up to 'want' jobs
 * (the first ones from whichever servers had them, the rest from cur);
 * returns how many (0: none came within the reserve's timeout).
 */
static int
reserve_batch(BatchJob **jobs, int want)
{
	int			first;
	int			more;
	int			n;
	BeanstalkConn *conn;

	*jobs = palloc0(sizeof(BatchJob) * (want + pool.n));
	first = reserve_first(*jobs);
	if (first == 0)
		return 0;
	conn = pool.conns[batch.cur];
	more = Max(want - first, 0);
	check_request(batch.cur, bs_pipeline_begin(conn));
	bs_queue_stats_job(conn, (*jobs)[0].job.id);
	for (int i = 0; i < more; i++)
		bs_queue_reserve(conn, 0);
	check_request(batch.cur, bs_flush(conn));
	read_facts(&(*jobs)[0]);
	check_request(batch.cur, read_reserved(*jobs + first, more, batch.cur, &n));
	n = reserve_late(*jobs, first + n);
	read_stats(*jobs, 1, n);
	return n;
}

/* backoff * 2^(attempt-1), in whole seconds rounded up, within beanstalkd's range */
static uint64
retry_delay_s(int64 backoff_ms, int attempt)
{
	uint64		ms = (uint64) Max(backoff_ms, 0);

	for (int i = 1; i < attempt && ms < BS_MAX_UINT32 * 1000; i++)
		ms *= 2;
	return Min((ms + 999) / 1000, BS_MAX_UINT32);
}

/* what step 5 tells beanstalkd of a job */
static BsSettle
settle_of(const BatchJob *bj)
{
	if (bj->out.ok || bj->out.cancelled)
		return BS_SETTLE_DELETE;
	return bj->final_failure ? BS_SETTLE_BURY : BS_SETTLE_RELEASE;
}

/*
 * Step 5: the transaction of jobs[0..n) is durable; now tell beanstalkd, in
 * one write.  A NOT_FOUND is fine: the job was deleted meanwhile, or its
 * reservation lapsed and another worker has it (which drops it as done).
 * With prefetch > 0, the same write reserves that many jobs for the next
 * batch ("reserve-with-timeout 0": those that are ready now), into
 * next_jobs.
 */
typedef struct ServerSettle
{
	BatchJob   *jobs;
	int			n;
	int			server;
	int			prefetch;		/* reserves for the next batch (on cur only) */
} ServerSettle;

/* step 5 on one server: its jobs of jobs[0..n), and the prefetch on cur */
static BsStatus
settle_on_server(BeanstalkConn *c, void *arg)
{
	ServerSettle *ss = (ServerSettle *) arg;
	BatchJob   *jobs = ss->jobs;
	BsStatus	st;

	/* the replies to the touches come first */
	if ((st = touch_settle(ss->server)) != BS_OK || (st = bs_pipeline_begin(c)) != BS_OK)
		return st;
	for (int i = 0; i < ss->n; i++)
	{
		BatchJob   *bj = &jobs[i];

		if (bj->gone || bj->server != ss->server)
			continue;
		switch (settle_of(bj))
		{
			case BS_SETTLE_DELETE:
				bs_queue_delete(c, bj->job.id);
				break;
			case BS_SETTLE_BURY:
				bs_queue_bury(c, bj->job.id, bj->facts.priority);
				break;
			case BS_SETTLE_RELEASE:
				bs_queue_release(c, bj->job.id, bj->facts.priority,
								 retry_delay_s(bj->out.backoff_ms, bj->facts.failures + 1));
				break;
		}
	}
	for (int i = 0; i < ss->prefetch; i++)
		bs_queue_reserve(c, 0);
	if (!bs_pipeline_pending(c))
		return BS_OK;
	if ((st = bs_flush(c)) != BS_OK)
		return st;
	for (int i = 0; i < ss->n; i++)
	{
		BatchJob   *bj = &jobs[i];

		if (bj->gone || bj->server != ss->server)
			continue;
		/* NOT_FOUND (or BURIED for a release) is fine, see above */
		st = bs_read_settle_reply(c, settle_of(bj));
		if (bs_status_trouble(st) || st == BS_BAD_REQUEST)
			return st;
		if (bj->out.cancelled)
			continue;
		if (bj->out.ok)
			slot_count(my_slot, true);
		else if (bj->final_failure)
		{
			slot_count(my_slot, false);
			slot_note_error(my_slot, bj->out.message, bj->facts.tube, bj->out.func_name);
			ereport(LOG,
					(errmsg("jobq: job " UINT64_FORMAT " of beanstalkd at %s buried after %d attempt(s): %s",
							bj->job.id, c->server, bj->facts.attempt, bj->out.message)));
		}
		else
			slot_note_error(my_slot, bj->out.message, bj->facts.tube, bj->out.func_name);
	}
	if (ss->prefetch > 0)
	{
		MemoryContext next = batch.cxt[1 - batch.cxt_cur];
		MemoryContext old;

		MemoryContextReset(next);
		old = MemoryContextSwitchTo(next);
		batch.next_jobs = palloc0(sizeof(BatchJob) * ss->prefetch);
		st = read_reserved(batch.next_jobs, ss->prefetch, ss->server, &batch.next_n);
		batch.next_from = ss->server;
		batch.next_generation = c->generation;
		MemoryContextSwitchTo(old);
		return st;
	}
	return BS_OK;
}

/*
 * Step 5, each server in turn.  A server that fails here is marked down
 * and its connection closed, which gives its jobs back: those that ran are
 * dropped as done when they come again (jobq.done), those that failed run
 * again without their back-off.  The other servers' jobs are settled.
 * Returns the servers whose connection is gone (a mask): the batch's jobs
 * still to run from them are no longer this worker's.  A connection is
 * never opened again here: a new one holds none of the batch's jobs.
 */
static uint32
settle_jobs(BatchJob *jobs, int n, int prefetch)
{
	uint32		used = servers_of(jobs, 0, n) | (prefetch > 0 ? 1U << batch.cur : 0);
	uint32		lost = 0;

	for (int s = 0; s < pool.n; s++)
	{
		BeanstalkConn *c = pool.conns[s];
		ServerSettle ss = {jobs, n, s, s == batch.cur ? prefetch : 0};

		if (!bs_connected(c))
		{
			/* closed since (a failed settle): its jobs were given back */
			lost |= 1U << s;
			continue;
		}
		/* a server with nothing to settle may still owe touch replies */
		if (!(used & (1U << s)) && !touch_owed(s))
			continue;
		if (!pool_call(&pool, s, settle_on_server, &ss))
			lost |= 1U << s;
	}
	if (lost & (1U << batch.cur))
		batch.next_n = 0;
	return lost;
}

/* Whether jobs[i] may join the transaction that jobs[first] began. */
static bool
shares_xact(const BatchJob *jobs, int first, int i)
{
	return jobs[first].facts.attempt <= 1 && jobs[i].facts.attempt <= 1 &&
		job_may_share_xact();
}

/*
 * Steps 4 and 5, a transaction at a time (the last settling also reserves
 * 'prefetch' jobs for the next batch); then the batch's sizing.
 */
static void
run_batch(BatchJob *jobs, int n, int prefetch)
{
	int			i = 0;
	int			ran = 0;
	TimestampTz start = GetCurrentTimestamp();
	MemoryContext ctx = CurrentMemoryContext;
	uint32		lost;

	batch.min_ttr_ms = PG_UINT64_MAX;
	for (int k = 0; k < n; k++)
		if (!jobs[k].gone)
			batch.min_ttr_ms = Min(batch.min_ttr_ms, jobs[k].facts.ttr_ms);
	if (batch.min_ttr_ms == PG_UINT64_MAX)
		batch.min_ttr_ms = 1000;

	touch_start(jobs, n);
	while (i < n)
	{
		int			first = i;

		if (jobs[i].gone)
		{
			i++;
			continue;
		}
		process_xact_begin();
		/* outcomes outlive the transaction: they are settled after it */
		MemoryContextSwitchTo(ctx);
		job_run(&jobs[i++]);
		ran++;
		while (i < n && (jobs[i].gone || shares_xact(jobs, first, i)))
		{
			if (!jobs[i].gone)
			{
				MemoryContextSwitchTo(ctx); /* SPI leaves its own current */
				touch_drain();
				job_run(&jobs[i]);
				ran++;
			}
			i++;
		}
		process_xact_end();
		shmem_jobs_finished();
		pgstat_report_activity(STATE_IDLE, NULL);
		touch_stop();
		lost = settle_jobs(jobs + first, i - first, i < n ? 0 : prefetch);
		for (int k = i; k < n; k++)
			if (lost & (1U << jobs[k].server))
				jobs[k].gone = true;	/* given back with the connection */
		if (i < n)
			touch_start(jobs + i, n - i);
	}
	slot_set_state(my_slot, JOBQ_STATE_IDLE, NULL, NULL, 0);

	if (ran > 0)
	{
		double		us = (double) (GetCurrentTimestamp() - start) / ran;

		batch.job_avg_us = batch.job_avg_us == 0 ? us :
			(1 - AVG_WEIGHT) * batch.job_avg_us + AVG_WEIGHT * us;
	}
}

/*
 * Every REFRESH_TUBES_MS, the tubes that have handlers, and every open
 * connection watching them.  False when there are none (after waiting a
 * while for some).
 */
static bool
watch_current_tubes(void)
{
	if (watch.tubes != NIL &&
		!TimestampDifferenceExceeds(watch.refreshed, GetCurrentTimestamp(), REFRESH_TUBES_MS))
		return true;
	refresh_tubes();
	if (watch.tubes == NIL)
	{
		close_all();			/* gives back what was reserved ahead */
		slot_set_state(my_slot, JOBQ_STATE_IDLE_NO_HANDLERS, NULL, NULL, 0);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 REFRESH_TUBES_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		return false;
	}
	/*
	 * Open connections watch the new set now: under load, batches may come
	 * from prefetches only, which do not look at it.
	 */
	for (int s = 0; s < pool.n; s++)
		if (bs_connected(pool.conns[s]))
			(void) pool_call(&pool, s, sync_watch_call, &s);
	return true;
}

static void
worker_iteration(void)
{
	BatchJob   *jobs;
	int			want;
	int			n;
	int			prefetch;

	batch.server_failure = false;
	if (pool_set_servers(&pool, jobq_servers))
	{
		close_all();
		batch.cur = -1;
		batch.next_server = 0;
		/* indexes now name other connections, whose generations mean nothing here */
		for (int s = 0; s < BS_MAX_SERVERS; s++)
			watch.generation[s] = 0;
	}
	if (!watch_current_tubes())
		return;
	want = batch_want();
	/* a connection closed or opened since gave them back */
	if (batch.next_n > 0 &&
		(batch.next_from >= pool.n || !bs_connected(pool.conns[batch.next_from]) ||
		 pool.conns[batch.next_from]->generation != batch.next_generation))
		batch.next_n = 0;
	if (batch.next_n > 0)
	{
		/* reserved while the last batch was settled */
		batch.cur = batch.next_from;
		jobs = batch.next_jobs;
		n = batch.next_n;
		batch.next_n = 0;
		batch.cxt_cur = 1 - batch.cxt_cur;
		read_stats(jobs, 0, n);
	}
	else
	{
		MemoryContext old;

		MemoryContextReset(batch.cxt[batch.cxt_cur]);
		old = MemoryContextSwitchTo(batch.cxt[batch.cxt_cur]);
		n = reserve_batch(&jobs, want);
		MemoryContextSwitchTo(old);
		if (n == 0)
			return;
		/* a reload that came in during the wait applies to this batch */
		worker_reload_config();
	}
	batch.want_next = n >= want ? Min(2 * want, JOBQ_MAX_BATCH_SIZE) : Max(2 * n, 2);

	/*
	 * A full batch: more are likely ready, ask for them with the settling;
	 * but with several servers, after ROTATE_AFTER full batches from one,
	 * look at the others first, so that a backlog on one does not starve
	 * them.
	 */
	prefetch = n >= want ? batch_want() : 0;
	batch.streak = n >= want ? batch.streak + 1 : 0;
	if (pool.n > 1 && batch.streak >= ROTATE_AFTER)
	{
		prefetch = 0;
		batch.streak = 0;
	}
	batch.next_server = (batch.cur + 1) % pool.n;
	run_batch(jobs, n, prefetch);
}

void
jobq_worker_main(Datum arg)
{
	MemoryContext loop_ctx;

	my_slot = DatumGetInt32(arg);
	snprintf(worker_name, sizeof(worker_name), "worker %d", slot_number(my_slot));
	worker_startup(my_slot, psprintf("jobq worker %d", slot_number(my_slot)));

	pool_init(&pool, jobq_servers, worker_name, TopMemoryContext);
	job_run_init(my_slot, &pool);
	worker_wait_for_extension(my_slot);
	slot_set_state(my_slot, JOBQ_STATE_IDLE, NULL, NULL, 0);

	loop_ctx = AllocSetContextCreate(TopMemoryContext, "jobq worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < 2; i++)
		batch.cxt[i] = AllocSetContextCreate(TopMemoryContext, "jobq batch",
											 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		worker_reload_config();
		MemoryContextSwitchTo(loop_ctx);
		MemoryContextReset(loop_ctx);

		PG_TRY();
		{
			worker_iteration();
			process_succeeded(&backoff);
		}
		PG_CATCH();
		{
			touch_stop();
			/* not psprintf here: this is ErrorContext, which the recovery resets */
			(void) process_recover(my_slot, worker_name, &backoff);
			/* what the batch had reserved goes back at once */
			close_all();
			/* a server failed (and is marked down): the others need not wait */
			if (batch.server_failure && pool.n > 1)
				backoff.backoff_ms = 0;
		}
		PG_END_TRY();

		/* what handlers write must reach autovacuum; flushed 1/s at most */
		pgstat_report_stat(false);
		process_back_off(my_slot, &backoff);
	}
}
