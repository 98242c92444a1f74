/*
 * cancel.c
 *		jobq_cancel(id): a job that has not finished never runs (again).
 *
 * A cancel is a row of jobq.done with state 'cancelled', written in the
 * caller's transaction.  jobq.done is the ledger that makes a job's effects
 * happen once (a worker inserts the job's row before its handler runs, and
 * drops a job whose row is there), so the cancel's row and a worker's run
 * meet on its primary key: whichever commits first wins, the other sees the
 * row and does nothing.  A job that was pending or queued is therefore never
 * run once the cancel commits, and a cancel that rolls back cancelled
 * nothing.  After the commit the job is deleted from its server if it is
 * still there (ready, delayed or buried; a reserved one is dropped by the
 * worker that reserved it), and its unique key is given back.
 *
 * A running job is the worker's to stop: the request goes in the worker's
 * shared-memory slot (shmem_request_cancel) with a signal (worker/
 * job_cancel.c), the handler's subtransaction rolls back, and the worker
 * records the cancel with its batch, whose other jobs commit.  jobq_cancel
 * waits for that commit and returns 'running'.  A handler that finished
 * before the request struck is done, and jobq_cancel says so.
 *
 * Who may cancel: the roles that may enqueue the job (producer_acl.c).
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "job.h"
#include "pool.h"
#include "producer_acl.h"
#include "schema.h"
#include "shmem.h"
#include "status.h"
#include "unique.h"

PG_FUNCTION_INFO_V1(jobq_cancel);

/* a cancelled job to delete from its server once the cancel commits */
typedef struct CancelledJob
{
	int			level;			/* the subtransaction that cancelled it */
	pg_uuid_t	id;
	char		server[BS_MAX_SERVER];	/* "" for a pending job */
	uint64		bs_id;
} CancelledJob;

static CancelledJob *cancelled = NULL;	/* in TopMemoryContext */
static int	ncancelled = 0;
static int	maxcancelled = 0;
static bool callbacks_registered = false;

/*
 * Delete the job from its server if the server still has it, and it is this
 * job (a server restarted without its binlog reuses ids).  Best effort, at
 * commit: a job left behind is dropped by the worker that reserves it.
 */
static void
delete_from_server(const CancelledJob *c)
{
	BsPool	   *pool = pool_backend();
	BeanstalkConn *conn = pool_conn_of(pool, c->server);
	BsJob		job;
	JobBody		body;
	char	   *error;

	if (conn == NULL)
		return;
	for (int i = 0; i < pool->n; i++)
		if (pool->conns[i] == conn && !pool_usable(pool, i))
			return;
	if (bs_peek_job(conn, c->bs_id, &job) == BS_OK &&
		job_decode(job.body, job.len, &body, &error) && body.has_id &&
		memcmp(&body.id, &c->id, sizeof(pg_uuid_t)) == 0)
	{
		bool		deleted = bs_delete(conn, job.id) == BS_OK;

		(void) deleted;			/* reserved since, or the server failed: it is dropped later */
	}
}

/* the transaction has committed: nothing here may throw */
static void
delete_after_commit(const CancelledJob *c)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		delete_from_server(c);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("jobq: a cancelled job stays on beanstalkd at %s: %s",
						c->server, edata->message),
				 errdetail("A worker that reserves it drops it.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

static void
after_commit(void)
{
	for (int i = 0; i < ncancelled; i++)
		if (cancelled[i].server[0] != '\0')
			delete_after_commit(&cancelled[i]);
	if (shmem_available())
		shmem_jobs_finished();
}

static void
cancel_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (ncancelled > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that cancelled a jobq job")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (ncancelled > 0)
				after_commit();
			ncancelled = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ncancelled = 0;
			break;
		default:
			break;
	}
}

static void
cancel_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		int			level = GetCurrentTransactionNestLevel();

		while (ncancelled > 0 && cancelled[ncancelled - 1].level >= level)
			ncancelled--;
	}
}

static void
remember_cancelled(const JobStatus *st)
{
	CancelledJob *c;

	if (!callbacks_registered)
	{
		RegisterXactCallback(cancel_xact_callback, NULL);
		RegisterSubXactCallback(cancel_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (ncancelled == maxcancelled)
	{
		maxcancelled = Max(maxcancelled * 2, 8);
		cancelled = cancelled == NULL
			? MemoryContextAlloc(TopMemoryContext, sizeof(CancelledJob) * maxcancelled)
			: repalloc(cancelled, sizeof(CancelledJob) * maxcancelled);
	}
	c = &cancelled[ncancelled++];
	c->level = GetCurrentTransactionNestLevel();
	c->id = st->id;
	c->server[0] = '\0';
	c->bs_id = 0;
	if (st->state == JOB_QUEUED && st->server != NULL && st->has_bs_id && st->bs_id > 0)
	{
		strlcpy(c->server, st->server, sizeof(c->server));
		c->bs_id = (uint64) st->bs_id;
	}
}

/*
 * The cancel's row in jobq.done; false if the job has one already (done or
 * cancelled, committed meanwhile: the insert waited for it).
 */
static bool
record_cancel(const JobStatus *st, const char *by)
{
	static SPIPlanPtr plan = NULL;
	OwnerContext owner;
	Datum		values[5];
	bool		inserted;

	values[0] = UUIDPGetDatum((pg_uuid_t *) &st->id);
	values[1] = CStringGetTextDatum(st->tube);
	values[2] = CStringGetTextDatum(st->func_name);
	values[3] = CStringGetDatum(by);
	values[4] = CStringGetTextDatum(job_state_name(st->state));
	SPI_connect();
	schema_become_owner(&owner);
	if (plan == NULL)
	{
		Oid			types[5] = {UUIDOID, TEXTOID, TEXTOID, NAMEOID, TEXTOID};

		plan = schema_keep_plan("INSERT INTO jobq.done (id, state, tube, func_name, cancelled_by, "
								"cancelled_in) VALUES ($1, 'cancelled', $2, $3, $4, $5) "
								"ON CONFLICT DO NOTHING", 5, types);
	}
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "jobq: recording a job's cancel failed");
	inserted = (SPI_processed == 1);
	schema_restore_user(&owner);
	SPI_finish();
	return inserted;
}

static void
check_may_cancel(Oid caller, const JobStatus *st)
{
	if (st->tube == NULL || st->func_name == NULL ||
		acl_may_produce(caller, st->tube, st->func_name))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to cancel job %s",
					DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum((pg_uuid_t *) &st->id)))),
			 errdetail("Only the roles that may enqueue jobs for func_name \"%s\" on tube \"%s\" may cancel them.",
					   st->func_name, st->tube)));
}

/* a finished or unknown job: say so, change nothing */
static void
nothing_to_cancel(const JobStatus *st)
{
	char	   *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum((pg_uuid_t *) &st->id)));

	if (st->state == JOB_UNKNOWN)
		ereport(NOTICE,
				(errmsg("job %s is unknown, nothing was cancelled", id),
				 errdetail("It was never enqueued in this database, or it finished longer ago than jobq.done_retention.")));
	else
		ereport(NOTICE,
				(errmsg("job %s is %s already, nothing was cancelled", id,
						job_state_name(st->state))));
}

static bool
not_running(const JobStatus *st)
{
	return st->state != JOB_RUNNING;
}

/*
 * A running job: ask its worker, wait for the worker's commit.  Returns
 * true if the worker cancelled it for us; false with *st read again if the
 * job had left its handler (it may be done, or back in beanstalkd).
 */
static bool
cancel_running(JobStatus *st, const char *by)
{
	pg_uuid_t	id = st->id;	/* status_read clears *st first */
	int			pid;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot cancel a running job in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("Its snapshot would never show the worker's commit."),
				 errhint("Call jobq_cancel in a READ COMMITTED transaction.")));
	pid = shmem_request_cancel(&id, by);
	if (pid != 0)
	{
		if (kill(pid, SIGUSR2) != 0)
			ereport(WARNING,
					(errmsg("could not signal jobq worker process %d: %m", pid)));
		/* the handler's own time limit bounds the wait; query cancel ends it */
		status_wait(&id, GetCurrentTimestamp() + USECS_PER_DAY, not_running);
	}
	status_read(&id, 1, st, true);
	return pid != 0 && st->state == JOB_CANCELLED && st->cancelled_in != NULL &&
		strcmp(st->cancelled_in, "running") == 0 && st->cancelled_by != NULL &&
		strcmp(st->cancelled_by, by) == 0;
}

/*
 * jobq_cancel(id uuid) -> the state the job was cancelled in (pending,
 * queued or running), or NULL, with a notice, if it had finished or is
 * unknown.
 */
Datum
jobq_cancel(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = PG_GETARG_UUID_P(0);
	Oid			caller = GetUserId();
	char	   *by = GetUserNameFromId(caller, false);
	JobStatus	st;
	bool		asked_worker = false;

	PreventCommandIfReadOnly("jobq_cancel()");
	status_read(id, 1, &st, true);
	check_may_cancel(caller, &st);
	/* a job retried at once may be running again, in another worker */
	for (int tries = 0; st.state == JOB_RUNNING; tries++)
	{
		if (tries == 3)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("job is running again each time it is cancelled"),
					 errhint("Try again.")));
		asked_worker = true;
		if (cancel_running(&st, by))
			PG_RETURN_TEXT_P(cstring_to_text("running"));
		check_may_cancel(caller, &st);
	}
	if (job_state_finished(st.state) || st.state == JOB_UNKNOWN)
	{
		nothing_to_cancel(&st);
		PG_RETURN_NULL();
	}
	if (!record_cancel(&st, by))
	{
		/* finished meanwhile: the worker that ran it committed first */
		status_read(id, 1, &st, false);
		if (asked_worker && st.state == JOB_CANCELLED && st.cancelled_by != NULL &&
			strcmp(st.cancelled_by, by) == 0 && st.cancelled_in != NULL &&
			strcmp(st.cancelled_in, "running") == 0)
			PG_RETURN_TEXT_P(cstring_to_text("running"));
		nothing_to_cancel(&st);
		PG_RETURN_NULL();
	}
	unique_release_job(id);
	remember_cancelled(&st);
	PG_RETURN_TEXT_P(cstring_to_text(job_state_name(st.state)));
}
