/*
 * worker.c
 *		A job worker: reserve a job from beanstalkd, run its handler in a
 *		transaction, then delete, release or bury it.
 *
 * Order of events for one job:
 *	1. reserve (with a 1 s timeout, so registry changes and SIGHUP are seen)
 *	2. decode the body; a body that is not a jobq job is buried and recorded
 *	3. in one transaction: look up the handler, then in a subtransaction
 *	   record the job id in jobq.done (a second delivery of a completed job
 *	   finds it there and is dropped) and call the handler as its role
 *	4. commit, then delete the job; on failure, release it with back-off, or
 *	   bury it and record it in jobq.failed once max_attempts are used up
 * A crash between 4's commit and delete redelivers the job, and step 3
 * drops it: effects inside PostgreSQL happen once.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "beanstalk.h"
#include "job.h"
#include "jobq.h"
#include "shmem.h"
#include "worker.h"

#define RESERVE_TIMEOUT_S	1
#define REFRESH_TUBES_MS	1000
#define RAW_BODY_KEEP		2048	/* bytes of a bad body kept in jobq.failed */

static int	my_slot;
static BeanstalkConn *conn;
static List *watched = NIL;		/* tube names (TopMemoryContext) */
static bool watch_set_valid = false;
static TimestampTz tubes_refreshed = 0;
static char servers_now[256];
static SPIPlanPtr done_plan = NULL;

/* the touch timer writes this command from its signal handler */
static TimeoutId touch_timeout = MAX_TIMEOUTS;
static char touch_cmd[64];
static volatile size_t touch_len = 0;

/* the outcome of running one job */
typedef struct Outcome
{
	bool		ok;
	bool		duplicate;		/* already done: drop it */
	bool		bury_now;		/* not worth retrying: no handler */
	char		sqlstate[6];
	char	   *message;
	int			max_attempts;
	int64		backoff_ms;
} Outcome;

static void
touch_handler(void)
{
	if (touch_len > 0)
		bs_send_raw_touch(conn, touch_cmd, touch_len);
}

/* The tubes that have handlers, read in a short transaction. */
static List *
read_tubes(void)
{
	List	   *tubes = NIL;
	MemoryContext ctx = CurrentMemoryContext;
	int			rc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	rc = SPI_execute("SELECT DISTINCT tube FROM jobq.handlers ORDER BY 1", true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: reading tubes failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext spi = MemoryContextSwitchTo(ctx);

		tubes = lappend(tubes, pstrdup(SPI_getvalue(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1)));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(ctx);
	return tubes;
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

/*
 * Make the connection's watch list the set of tubes with handlers.  The
 * "default" tube every connection starts with is ignored unless it has a
 * handler.  Returns false when there is nothing to watch.
 */
static bool
refresh_watch_list(void)
{
	List	   *tubes = read_tubes();
	ListCell   *lc;
	MemoryContext ctx = MemoryContextSwitchTo(TopMemoryContext);

	tubes_refreshed = GetCurrentTimestamp();
	if (!watch_set_valid)
	{
		list_free_deep(watched);
		watched = list_make1(pstrdup("default"));
	}
	if (tubes == NIL)
	{
		list_free_deep(watched);
		watched = NIL;
		watch_set_valid = false;
		bs_close(conn);			/* nothing reserved, nothing watched */
		MemoryContextSwitchTo(ctx);
		return false;
	}
	foreach(lc, tubes)
	{
		if (!list_has_string(watched, lfirst(lc)))
		{
			bs_watch(conn, lfirst(lc));
			watched = lappend(watched, pstrdup(lfirst(lc)));
		}
	}
	foreach(lc, watched)
	{
		if (!list_has_string(tubes, lfirst(lc)))
		{
			bs_ignore(conn, lfirst(lc));
			pfree(lfirst(lc));
			watched = foreach_delete_current(watched, lc);
		}
	}
	watch_set_valid = true;
	MemoryContextSwitchTo(ctx);
	return true;
}

static void
record_failure(const JobBody *body, const BsJob *job, const Outcome *out,
			   int attempts, bool keep_raw)
{
	Oid			types[9] = {UUIDOID, INT8OID, TEXTOID, TEXTOID, JSONBOID, TEXTOID,
	TEXTOID, TEXTOID, INT4OID};
	Datum		values[9];
	char		nulls[9];
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = body && body->has_id ? UUIDPGetDatum((pg_uuid_t *) &body->id) : (Datum) 0;
	nulls[0] = body && body->has_id ? ' ' : 'n';
	values[1] = Int64GetDatum((int64) job->id);
	values[2] = body && body->tube ? CStringGetTextDatum(body->tube) : (Datum) 0;
	nulls[2] = body && body->tube ? ' ' : 'n';
	values[3] = body && body->func_name ? CStringGetTextDatum(body->func_name) : (Datum) 0;
	nulls[3] = body && body->func_name ? ' ' : 'n';
	values[4] = body && body->kwargs ? JsonbPGetDatum(body->kwargs) : (Datum) 0;
	nulls[4] = body && body->kwargs ? ' ' : 'n';
	nulls[5] = 'n';
	if (keep_raw)
	{
		/* untrusted bytes: keep a printable, valid prefix */
		size_t		n = Min(job->len, RAW_BODY_KEEP);
		char	   *raw = palloc(n + 1);

		for (size_t i = 0; i < n; i++)
		{
			unsigned char c = (unsigned char) job->body[i];

			raw[i] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
		}
		raw[n] = '\0';
		values[5] = CStringGetTextDatum(raw);
		nulls[5] = ' ';
	}
	values[6] = CStringGetTextDatum(out->sqlstate);
	values[7] = CStringGetTextDatum(out->message);
	values[8] = Int32GetDatum(attempts);
	rc = SPI_execute_with_args("INSERT INTO jobq.failed (job_id, bs_id, tube, func_name, kwargs, "
							   "raw_body, sqlstate, message, attempts, source) "
							   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'worker')",
							   9, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "jobq: recording a failed job failed: %s", SPI_result_code_string(rc));
}

/*
 * The job's ttr, and how many times beanstalkd has reserved it (this time
 * included): the attempt number.
 */
static void
job_stats(uint64 id, uint64 *ttr_ms, int *reserves)
{
	size_t		len;
	char	   *yaml = bs_stats(conn, psprintf("stats-job " UINT64_FORMAT, id), &len);
	char	   *ttr = yaml ? bs_yaml_get(yaml, "ttr") : NULL;
	char	   *res = yaml ? bs_yaml_get(yaml, "reserves") : NULL;

	*ttr_ms = (ttr ? (uint64) strtoull(ttr, NULL, 10) : 60) * 1000;
	*reserves = res ? atoi(res) : 1;
}

static void
set_outcome_error(Outcome *out, ErrorData *edata)
{
	strlcpy(out->sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(out->sqlstate));
	out->message = pstrdup(edata->message ? edata->message : "unknown error");
}

/*
 * Steps 3 of the header comment, inside the caller's transaction and SPI
 * connection.  Never throws for a handler's error: that is the outcome.
 */
static void
run_handler(const JobBody *body, const BsJob *job, uint64 ttr_ms, Outcome *out)
{
	Handler		h;
	MemoryContext ctx = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ConstraintsSetStmt all_immediate = {.type = T_ConstraintsSetStmt,.constraints = NIL,.deferred = false};

	if (!dispatch_lookup(body->tube, body->func_name, &h))
	{
		out->bury_now = true;
		strlcpy(out->sqlstate, "42883", sizeof(out->sqlstate));
		out->message = psprintf("no handler is registered for func_name \"%s\" on tube \"%s\"",
								body->func_name, body->tube);
		return;
	}
	out->max_attempts = h.max_attempts;
	out->backoff_ms = h.backoff_ms;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(ctx);
	PG_TRY();
	{
		Oid			save_user;
		int			save_sec;
		/* the time limit: the handler's, else just under the job's ttr */
		int64		limit_ms = h.timeout_ms > 0 ? h.timeout_ms
			: (int64) Max(ttr_ms > 1000 ? ttr_ms - 1000 : ttr_ms / 2, 1);
		bool		run = true;

		if (body->has_id)
		{
			Datum		id = UUIDPGetDatum((pg_uuid_t *) &body->id);
			int			rc;

			if (done_plan == NULL)
			{
				Oid			type = UUIDOID;
				SPIPlanPtr	plan = SPI_prepare("INSERT INTO jobq.done (id) VALUES ($1) "
											   "ON CONFLICT DO NOTHING", 1, &type);

				if (plan == NULL)
					elog(ERROR, "jobq: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
				SPI_keepplan(plan);
				done_plan = plan;
			}
			rc = SPI_execute_plan(done_plan, &id, NULL, false, 0);
			if (rc != SPI_OK_INSERT)
				elog(ERROR, "jobq: recording job completion failed");
			run = (SPI_processed == 1);
		}
		if (run)
		{
			GetUserIdAndSecContext(&save_user, &save_sec);
			SetUserIdAndSecContext(h.run_as, save_sec | SECURITY_LOCAL_USERID_CHANGE);
			(void) set_config_option("search_path", "pg_catalog, public, pg_temp",
									 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
									 true, 0, false);
			if (jobq_touch_jobs && limit_ms > (int64) ttr_ms / 2)
			{
				int			every = (int) Max(ttr_ms / 2, 500);

				snprintf(touch_cmd, sizeof(touch_cmd), "touch " UINT64_FORMAT "\r\n", job->id);
				touch_len = strlen(touch_cmd);
				enable_timeout_every(touch_timeout,
									 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), every),
									 every);
			}
			enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(limit_ms, INT_MAX));
			dispatch_call(&h, body->kwargs);
			/* deferred constraints fail here, as the handler's error */
			AfterTriggerSetState(&all_immediate);
			disable_timeout(STATEMENT_TIMEOUT, false);
			if (touch_len > 0)
			{
				disable_timeout(touch_timeout, false);
				touch_len = 0;
			}
			SetUserIdAndSecContext(save_user, save_sec);
		}
		else
			out->duplicate = true;
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ctx);
		CurrentResourceOwner = owner;
		out->ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(STATEMENT_TIMEOUT, false);
		if (touch_len > 0)
		{
			disable_timeout(touch_timeout, false);
			touch_len = 0;
		}
		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ctx);
		CurrentResourceOwner = owner;
		set_outcome_error(out, edata);
		FreeErrorData(edata);
		out->ok = false;
	}
	PG_END_TRY();
}

/* The body is untrusted: any failure to read it is the job's, not ours. */
static bool
decode_safely(BsJob *job, JobBody *body, char **error)
{
	MemoryContext ctx = CurrentMemoryContext;
	volatile bool decoded = false;

	PG_TRY();
	{
		decoded = job_decode(job->body, job->len, body, error);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		*error = pstrdup(edata->message);
		decoded = false;
	}
	PG_END_TRY();
	return decoded;
}

static void
process_job(BsJob *job)
{
	JobBody		body;
	char	   *error = NULL;
	bool		decoded = false;
	Outcome		out;
	int			attempts = 1;
	uint64		ttr_ms = 60000;
	bool		final_failure = false;
	MemoryContext ctx = CurrentMemoryContext;

	memset(&out, 0, sizeof(out));

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(ctx);
	decoded = decode_safely(job, &body, &error);

	if (!decoded)
	{
		strlcpy(out.sqlstate, "22P02", sizeof(out.sqlstate));
		out.message = error;
		out.bury_now = true;
		slot_set_state(my_slot, "rejecting", NULL, NULL, job->id);
	}
	else
	{
		slot_set_state(my_slot, "running", body.tube, body.func_name, job->id);
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("jobq: %s on tube %s, job " UINT64_FORMAT,
										body.func_name, body.tube, job->id));
		job_stats(job->id, &ttr_ms, &attempts);
		run_handler(&body, job, ttr_ms, &out);
	}

	if (!out.ok)
	{
		final_failure = out.bury_now || attempts >= out.max_attempts;
		if (final_failure)
			record_failure(decoded ? &body : NULL, job, &out, attempts, !decoded);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(ctx);
	pgstat_report_activity(STATE_IDLE, NULL);

	/* the transaction is durable: now tell beanstalkd */
	bs_drain_pending(conn);
	if (out.ok)
	{
		(void) bs_delete(conn, job->id);
		slot_count(my_slot, true, NULL);
	}
	else if (final_failure)
	{
		(void) bs_bury(conn, job->id, 0);
		slot_count(my_slot, false, out.message);
		ereport(LOG,
				(errmsg("jobq: job " UINT64_FORMAT " buried after %d attempt(s): %s",
						job->id, attempts, out.message)));
	}
	else
	{
		/* backoff * 2^(attempt-1), in whole seconds, rounded up */
		int64		delay_ms = out.backoff_ms << Min(attempts - 1, 30);
		uint64		delay_s = (uint64) ((delay_ms + 999) / 1000);

		if (delay_s > BS_MAX_UINT32)
			delay_s = BS_MAX_UINT32;
		(void) bs_release(conn, job->id, 1024, delay_s);
		slot_note_error(my_slot, out.message);
	}
	slot_set_state(my_slot, "idle", NULL, NULL, 0);
}

static void
worker_iteration(void)
{
	BsJob		job;
	BsStatus	st;

	if (strcmp(servers_now, jobq_servers) != 0)
	{
		strlcpy(servers_now, jobq_servers, sizeof(servers_now));
		bs_set_server(conn, jobq_servers);
		watch_set_valid = false;
	}
	if (!bs_connected(conn))
		watch_set_valid = false;
	if (!watch_set_valid ||
		TimestampDifferenceExceeds(tubes_refreshed, GetCurrentTimestamp(), REFRESH_TUBES_MS))
	{
		if (!refresh_watch_list())
		{
			slot_set_state(my_slot, "idle (no handlers)", NULL, NULL, 0);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 REFRESH_TUBES_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			return;
		}
	}
	st = bs_reserve(conn, RESERVE_TIMEOUT_S, &job);
	if (st == BS_OK)
		process_job(&job);
}

void
jobq_worker_main(Datum arg)
{
	MemoryContext loop_ctx;
	bool		in_outage = false;
	volatile int backoff_ms = 0;

	my_slot = DatumGetInt32(arg);
	worker_startup(my_slot, psprintf("jobq worker %d", my_slot));
	touch_timeout = RegisterTimeout(USER_TIMEOUT, touch_handler);

	conn = MemoryContextAllocZero(TopMemoryContext, sizeof(BeanstalkConn));
	bs_init(conn, jobq_servers, TopMemoryContext);
	strlcpy(servers_now, jobq_servers, sizeof(servers_now));
	worker_wait_for_extension(my_slot);
	slot_set_state(my_slot, "idle", NULL, NULL, 0);

	loop_ctx = AllocSetContextCreate(TopMemoryContext, "jobq worker loop",
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
			if (in_outage)
				ereport(LOG,
						(errmsg("jobq worker %d: beanstalkd at %s answers again",
								my_slot, conn->server)));
			in_outage = false;
			backoff_ms = 0;
		}
		PG_CATCH();
		{
			worker_report_error(my_slot, psprintf("worker %d", my_slot), &in_outage);
			bs_close(conn);
			watch_set_valid = false;
			backoff_ms = Min(Max(backoff_ms * 2, 100), 5000);
		}
		PG_END_TRY();

		/* what handlers write must reach autovacuum; flushed 1/s at most */
		pgstat_report_stat(false);
		if (backoff_ms > 0)
		{
			worker_sleep(backoff_ms);
			if (!worker_extension_ready())
				worker_wait_for_extension(my_slot);
		}
	}
}
