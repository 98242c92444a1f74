/*
 * touch.c
 *		Keeping a batch's jobs reserved while its handlers run.
 *
 * A batch's jobs wait reserved while the ones before them run, and the
 * whole batch stays reserved until its transaction commits; a job whose ttr
 * ran out meanwhile would go to another worker.  So every half of the
 * shortest ttr among them (MIN_TOUCH_MS at least), a timer touches them
 * all: one "touch <id>\r\n" per job, per server, prepared when the batch
 * starts (touch_start).  The timer's signal handler only calls send(2)
 * without waiting (bs_send_nowait) and counts the replies it owes in the
 * connection (conn->pending); the main code reads them later, when it
 * settles the batch on that server (touch_settle) or, in a long batch,
 * between jobs before they fill the socket buffers (touch_drain).
 *
 * A send that writes part of the commands (a full socket buffer) leaves the
 * rest in 'rem': later ticks finish those before starting again, and
 * touch_settle sends what is still left before it reads a reply, so the
 * server never sees a torn command followed by another one.  A set is
 * bound to the connection it was prepared on (its generation): after a
 * reconnect nothing of it is sent or owed.
 *
 * No touch goes out past a handler's time limit (touch_limit): a job that
 * outruns it is given back to beanstalkd once its ttr ends.
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "bs_conn.h"
#include "pool.h"
#include "touch.h"

#define MIN_TOUCH_MS		500
#define TOUCH_DRAIN_REPLIES	2000	/* about 20 kB of TOUCHED waiting to be read */

bool		jobq_touch_jobs = true;

/* the touches of one server's jobs of the batch */
typedef struct TouchSet
{
	StringInfoData cmds;		/* "touch <id>\r\n" for each job */
	int			n;				/* commands in it */
	uint64		generation;		/* of the connection they are for */
	volatile size_t rem;		/* bytes of a partly sent round still to send */
} TouchSet;

static BsPool *pool;
static TouchSet sets[BS_MAX_SERVERS];
static volatile uint32 armed = 0;	/* the servers whose touches the timer sends */
static bool touching = false;	/* the timer is on */
static TimeoutId touch_timeout = MAX_TIMEOUTS;
static int	touch_every = 0;	/* ms */
static volatile TimestampTz touch_until = DT_NOEND;

/* whether set s holds touches for server s's current connection */
static bool
set_current(int s)
{
	BeanstalkConn *c = pool->conns[s];

	return bs_connected(c) && c->generation == sets[s].generation;
}

/* one round of server s's touches, or the rest of the last one; a signal handler's */
static void
send_round(int s)
{
	TouchSet   *t = &sets[s];
	BeanstalkConn *c = pool->conns[s];
	ssize_t		n;

	if (!set_current(s))
		return;
	if (t->rem > 0)
	{
		n = bs_send_nowait(c, t->cmds.data + t->cmds.len - t->rem, t->rem);
		if (n > 0)
			t->rem -= n;
	}
	else
	{
		n = bs_send_nowait(c, t->cmds.data, t->cmds.len);
		if (n > 0)
		{
			c->pending += t->n;
			t->rem = t->cmds.len - n;
		}
	}
}

static void
touch_tick(void)
{
	if (GetCurrentTimestamp() >= touch_until)
		return;
	for (int s = 0; s < pool->n; s++)
		if (armed & (1U << s))
			send_round(s);
}

void
touch_init_gucs(void)
{
	DefineCustomBoolVariable("jobq.touch_jobs",
							 "Keep the reservation of jobs whose batch runs long by touching them.",
							 "Off, a worker takes one job per transaction: only touching keeps "
							 "the other jobs of a batch reserved.",
							 &jobq_touch_jobs,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
}

void
touch_init(BsPool *p)
{
	pool = p;
	touch_timeout = RegisterTimeout(USER_TIMEOUT, touch_tick);
	for (int s = 0; s < BS_MAX_SERVERS; s++)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&sets[s].cmds);
		MemoryContextSwitchTo(old);
	}
}

/* a touch every touch_every ms from now on */
static void
timer_start(void)
{
	enable_timeout_every(touch_timeout,
						 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), touch_every),
						 touch_every);
}

/*
 * Touch jobs[0..n) (those not gone) from now until touch_stop.  Also when a
 * handler's time limit is shorter than its ttr: the job must stay ours
 * until the commit, whatever ran before it.
 */
void
touch_start(const BatchJob *jobs, int n)
{
	uint64		min_ttr = PG_UINT64_MAX;
	uint32		mask = 0;

	Assert(!touching);
	if (!jobq_touch_jobs || n == 0)
		return;
	for (int s = 0; s < pool->n; s++)
	{
		TouchSet   *t = &sets[s];

		/* a round partly sent on this connection was finished by touch_settle */
		Assert(t->rem == 0 || !set_current(s));
		resetStringInfo(&t->cmds);
		t->n = 0;
		t->rem = 0;
		t->generation = pool->conns[s]->generation;
		for (int i = 0; i < n; i++)
		{
			if (jobs[i].gone || jobs[i].server != s)
				continue;
			bs_append_touch(&t->cmds, jobs[i].job.id);
			t->n++;
			min_ttr = Min(min_ttr, jobs[i].facts.ttr_ms);
		}
		if (t->n > 0)
			mask |= 1U << s;
	}
	if (mask == 0)
		return;
	touch_every = (int) Min(Max(min_ttr / 2, MIN_TOUCH_MS), (uint64) INT_MAX);
	touch_until = DT_NOEND;
	armed = mask;
	timer_start();
	touching = true;
}

/*
 * The rest of a partly sent round, then the replies server s owes for its
 * touches (TOUCHED, or NOT_FOUND for a job the server gave back meanwhile):
 * before anything else is asked of that connection.  Server s's timer must
 * be off.
 */
BsStatus
touch_settle(int s)
{
	TouchSet   *t = &sets[s];
	BeanstalkConn *c = pool->conns[s];
	BsStatus	st;

	Assert(!(armed & (1U << s)));
	if (t->rem > 0 && set_current(s))
	{
		size_t		rem = t->rem;

		t->rem = 0;
		if ((st = bs_send_touch_rest(c, t->cmds.data + t->cmds.len - rem, rem)) != BS_OK)
			return st;
	}
	t->rem = 0;
	return bs_read_touch_replies(c);
}

/* whether server s is owed anything for touches: see touch_settle */
bool
touch_owed(int s)
{
	return pool->conns[s]->pending > 0 || (sets[s].rem > 0 && set_current(s));
}

/*
 * Between jobs: before the replies to the touches fill the socket buffers
 * (a long batch of many jobs), read them, with the timer off so that its
 * handler does not count along.
 */
void
touch_drain(void)
{
	bool		full = false;
	uint32		mask = armed;

	if (!touching)
		return;
	for (int s = 0; s < pool->n; s++)
		if ((mask & (1U << s)) && pool->conns[s]->pending >= TOUCH_DRAIN_REPLIES)
			full = true;
	if (!full)
		return;
	disable_timeout(touch_timeout, false);
	armed = 0;
	for (int s = 0; s < pool->n; s++)
	{
		BsStatus	st;

		if (!(mask & (1U << s)))
			continue;
		if ((st = touch_settle(s)) != BS_OK)
		{
			/* the batch's reservations on it are gone: the batch ends */
			touching = false;
			if (bs_status_trouble(st))
				pool_failed(pool, s, st);
			bs_report(pool->conns[s]);
		}
	}
	armed = mask;
	timer_start();
}

/* no more touches; what they owe is read by touch_settle */
void
touch_stop(void)
{
	if (!touching)
		return;
	disable_timeout(touch_timeout, false);
	armed = 0;
	touching = false;
}

/* no touch after 'until' (a handler's time limit) ... */
void
touch_limit(TimestampTz until)
{
	touch_until = until;
}

/* ... until the handler ended */
void
touch_no_limit(void)
{
	touch_until = DT_NOEND;
}
