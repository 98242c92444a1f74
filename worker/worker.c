/*
 * worker.c
 *		A job worker: reserve a job from beanstalkd, run its handler in a
 *		transaction, then delete, release or bury it.
 *
 * Order of events for one job:
 *	1. reserve (with a 1 s timeout, so registry changes and SIGHUP are seen)
 *	2. read the job's tube, ttr and reserve count (stats-job); check the
 *	   body's signature (jobq.signing_key) and decode it; a body that is not
 *	   a jobq job, is not signed as required, or names another tube than the
 *	   one it was reserved from is buried and recorded
 *	3. in one transaction: look up the handler and check that its
 *	   registration still holds (run_as, the function's owner, EXECUTE);
 *	   then in a subtransaction record the job id in jobq.done (a second
 *	   delivery of a completed job finds it there and is dropped) and call
 *	   the handler as its role
 *	4. commit, then delete the job; on failure, release it with back-off, or
 *	   bury it and record it in jobq.failed once max_attempts are used up
 * A crash between 4's commit and delete redelivers the job, and step 3
 * drops it: effects inside PostgreSQL happen once.
 *
 * Nothing a handler does outlives its job.  It runs as run_as with
 * SECURITY_LOCAL_USERID_CHANGE, as in a SECURITY DEFINER function, so it
 * cannot SET ROLE or SET SESSION AUTHORIZATION.  Its settings, session-level
 * ones included, live in a GUC nest level that is undone when the job ends;
 * then whatever else it left in the session goes, as DISCARD ALL would drop
 * it: temporary objects, prepared statements, cursors, LISTENs,
 * session-level advisory locks and sequence state (lastval).  So the next
 * job, of whatever role, and jobq's own SQL start from the same session.
 * (A SECURITY_RESTRICTED_OPERATION, as for index expressions, would forbid
 * most of that up front, but PostgreSQL fires no deferred trigger inside
 * one, and handlers rely on deferred constraints.)
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "commands/async.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "beanstalk.h"
#include "failed.h"
#include "job.h"
#include "jobq.h"
#include "shmem.h"
#include "schema.h"
#include "signing.h"
#include "worker.h"

#define RESERVE_TIMEOUT_S	1
#define REFRESH_TUBES_MS	1000
#define MIN_TOUCH_MS		500
#define HARD_LIMIT_GRACE_MS	5000	/* past its time limit, a handler that
										 * swallowed the cancel ends the worker */
/* what a handler's search_path starts as; functions pin their own with SET */
#define HANDLER_SEARCH_PATH	"pg_catalog, public, pg_temp"

bool		jobq_touch_jobs = true;
int			jobq_max_handler_time = 3600 * 1000;

static int	my_slot;
static BeanstalkConn *conn;
static List *watched = NIL;		/* tube names (TopMemoryContext) */
static bool watch_set_valid = false;
static TimestampTz tubes_refreshed = 0;
static char servers_now[BS_MAX_SERVER];
static ProcessBackoff backoff;	/* static: survives the main loop's longjmp */
static SPIPlanPtr done_plan = NULL;

/* the touch timer sends the connection's touch command (bs_touch_arm) */
static TimeoutId touch_timeout = MAX_TIMEOUTS;
static bool touch_armed = false;
static TimestampTz touch_until = 0;	/* no touch past the handler's time limit */
static TimeoutId hard_limit_timeout = MAX_TIMEOUTS;

/* what stats-job says of a reserved job */
typedef struct JobFacts
{
	char		tube[BS_MAX_NAME + 1];	/* the tube it was reserved from */
	TimestampTz put_at;			/* at the latest (beanstalkd counts whole seconds) */
	uint64		priority;		/* the job's own: released and recorded with it */
	uint64		ttr_ms;
	int			attempt;		/* beanstalkd's reserve count, this one included */
} JobFacts;

/* the outcome of running one job */
typedef struct Outcome
{
	bool		ok;
	bool		bury_now;		/* not worth retrying: no handler */
	char		sqlstate[6];
	char	   *message;
	int			max_attempts;
	int64		backoff_ms;
} Outcome;

void
worker_init_gucs(void)
{
	DefineCustomBoolVariable("jobq.touch_jobs",
							 "Keep the reservation of a job whose handler runs long by touching it.",
							 NULL,
							 &jobq_touch_jobs,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.max_handler_time",
							"Longest a handler registered without a timeout may run.",
							"A job's ttr (the producer's choice) can only shorten it.",
							&jobq_max_handler_time,
							3600 * 1000, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

static void
touch_handler(void)
{
	if (GetCurrentTimestamp() < touch_until)
		bs_send_raw_touch(conn);
}

/*
 * A handler still running well past its time limit caught the statement
 * timeout's cancel (EXCEPTION WHEN query_canceled) and carried on: end the
 * process as SIGTERM would.  Its job goes back to beanstalkd, and comes
 * back buried once its reservations exceed max_attempts (see run_handler).
 */
static void
hard_limit_handler(void)
{
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/* The tubes that have handlers, read in a short transaction. */
static List *
read_tubes(void)
{
	List	   *tubes = NIL;
	MemoryContext ctx = CurrentMemoryContext;
	int			rc;

	process_xact_begin();
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
	process_xact_end();
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
			   const JobFacts *facts, bool keep_raw)
{
	FailedJob	f = {0};

	f.job_id = body && body->has_id ? &body->id : NULL;
	f.bs_id = job->id;
	f.tube = body ? body->tube : NULL;
	f.func_name = body ? body->func_name : NULL;
	f.kwargs = body ? body->kwargs : NULL;
	f.raw_body = keep_raw ? job->body : NULL;
	f.raw_len = job->len;
	f.sqlstate = out->sqlstate;
	f.message = out->message;
	f.attempts = facts->attempt;
	/* what jobq_retry_failed puts the job back with */
	f.priority = (int64) facts->priority;
	f.ttr = (int64) (facts->ttr_ms / 1000);
	f.source = "worker";
	failed_record(&f);
}


/* false if the job is gone (deleted meanwhile): then there is nothing to do */
static bool
job_facts(uint64 id, JobFacts *facts)
{
	size_t		len;
	char	   *yaml = bs_stats_job(conn, id, &len);
	char	   *tube;
	char	   *ttr;
	char	   *res;
	char	   *age;
	char	   *pri;

	if (yaml == NULL)
		return false;
	tube = bs_yaml_get(yaml, "tube");
	age = bs_yaml_get(yaml, "age");
	facts->put_at = GetCurrentTimestamp() -
		(TimestampTz) Min(age ? strtoull(age, NULL, 10) : 0, BS_MAX_UINT32) * USECS_PER_SEC;
	ttr = bs_yaml_get(yaml, "ttr");
	pri = bs_yaml_get(yaml, "pri");
	facts->priority = Min(pri ? (uint64) strtoull(pri, NULL, 10) : (uint64) jobq_default_priority,
						  BS_MAX_UINT32);
	res = bs_yaml_get(yaml, "reserves");
	strlcpy(facts->tube, tube ? tube : "", sizeof(facts->tube));
	facts->ttr_ms = Min(ttr ? (uint64) strtoull(ttr, NULL, 10) : 60, BS_MAX_UINT32) * 1000;
	facts->attempt = res ? (int) Min(strtoull(res, NULL, 10), (uint64) INT_MAX) : 1;
	return true;
}

static void
set_outcome_error(Outcome *out, ErrorData *edata)
{
	strlcpy(out->sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(out->sqlstate));
	out->message = pstrdup(edata->message ? edata->message : "unknown error");
}

/* a job that must not run at all: buried and recorded at once */
static void
set_outcome_rejected(Outcome *out, const char *sqlstate, char *message)
{
	out->ok = false;
	out->bury_now = true;
	strlcpy(out->sqlstate, sqlstate, sizeof(out->sqlstate));
	out->message = message;
}

/*
 * Whether the registration still holds as jobq_register checked it: the
 * registering role and the function's owner are members of run_as, which
 * may execute the function.  A revoked membership or EXECUTE, or a changed
 * owner, stops the job for good.
 */
static bool
handler_rights_hold(const Handler *h, Outcome *out)
{
	const char *why = NULL;
	Oid			fn_owner = OidIsValid(h->fn) ? schema_func_owner(h->fn) : InvalidOid;

	if (OidIsValid(h->fn) && !OidIsValid(fn_owner))
	{
		set_outcome_rejected(out, "42883",
							 psprintf("handler function with OID %u does not exist: it was dropped after registration",
									  h->fn));
		return false;
	}
	if (!OidIsValid(h->fn))
	{
		if (!superuser_arg(h->registered_by))
			why = "the role that registered this C handler is no longer a superuser";
	}
	else if (!is_member_of_role(h->registered_by, h->run_as))
		why = "the role that registered the handler is no longer a member of its run_as role";
	else if (!is_member_of_role(fn_owner, h->run_as))
		why = "the owner of the handler's function is not a member of its run_as role";
	else if (pg_proc_aclcheck(h->fn, h->run_as, ACL_EXECUTE) != ACLCHECK_OK)
		why = "the handler's run_as role may not execute its function";
	if (why == NULL)
		return true;
	set_outcome_rejected(out, "42501", psprintf("permission denied to run the handler: %s", why));
	return false;
}

/*
 * Whether the job may run now: its registration still holds; it was put
 * after (tube, func_name) was registered to run as run_as (nobody checked a
 * job put before against that registration: for all we know, a producer
 * planted it in advance); and it has not come back without an outcome more
 * often than max_attempts allows (a handler that ends the worker each time,
 * e.g. through exit_on_error or a crash, must not keep every worker busy).
 */
static bool
job_admissible(const Handler *h, const JobFacts *facts, Outcome *out)
{
	if (!handler_rights_hold(h, out))
		return false;
	if (facts->put_at < h->registered_at)
	{
		set_outcome_rejected(out, "42501",
							 psprintf("job was put before its handler was registered to run as role \"%s\" (at %s)",
									  GetUserNameFromId(h->run_as, true) ? GetUserNameFromId(h->run_as, true) : "?",
									  timestamptz_to_str(h->registered_at)));
		return false;
	}
	if (facts->attempt > h->max_attempts + 1)
	{
		set_outcome_rejected(out, "XX000",
							 psprintf("job was reserved %d times without an outcome (max_attempts is %d): its handler ends the worker",
									  facts->attempt, h->max_attempts));
		return false;
	}
	return true;
}

/*
 * How long the handler may run: its registration's timeout, else just under
 * the job's ttr, but never more than jobq.max_handler_time (the ttr is the
 * producer's choice, and may only shorten it).
 */
static int64
handler_time_limit_ms(const Handler *h, uint64 ttr_ms)
{
	int64		limit;

	if (h->timeout_ms > 0)
		return h->timeout_ms;
	limit = ttr_ms > 1000 ? (int64) ttr_ms - 1000 : (int64) Max(ttr_ms / 2, 1);
	return Min(limit, (int64) jobq_max_handler_time);
}

/* Record the job in jobq.done; false if it was there already (a duplicate). */
static bool
record_done(const JobBody *body)
{
	Datum		id = UUIDPGetDatum((pg_uuid_t *) &body->id);
	int			rc;

	if (done_plan == NULL)
	{
		Oid			type = UUIDOID;

		done_plan = schema_keep_plan("INSERT INTO jobq.done (id) VALUES ($1) "
									 "ON CONFLICT DO NOTHING", 1, &type);
	}
	rc = SPI_execute_plan(done_plan, &id, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "jobq: recording job completion failed");
	return SPI_processed == 1;
}

static void
timers_start(uint64 job_id, int64 limit_ms, uint64 ttr_ms)
{
	int			limit = (int) Min(limit_ms, (int64) INT_MAX - HARD_LIMIT_GRACE_MS);

	touch_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), limit);
	if (jobq_touch_jobs && limit_ms > (int64) ttr_ms / 2)
	{
		int			every = (int) Min(Max(ttr_ms / 2, MIN_TOUCH_MS), (uint64) INT_MAX);

		bs_touch_arm(conn, job_id);
		touch_armed = true;
		enable_timeout_every(touch_timeout,
							 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), every),
							 every);
	}
	enable_timeout_after(STATEMENT_TIMEOUT, limit);
	enable_timeout_after(hard_limit_timeout, limit + HARD_LIMIT_GRACE_MS);
}

static void
timers_stop(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
	disable_timeout(hard_limit_timeout, false);
	if (touch_armed)
	{
		disable_timeout(touch_timeout, false);
		bs_touch_disarm(conn);
		touch_armed = false;
	}
}

/*
 * Call the handler as run_as, in a GUC nest level of its own
 * that is undone afterwards, whatever the handler set.  Runs inside the
 * job's subtransaction; an error leaves through it, and the subtransaction
 * abort restores the user and the settings.
 */
static void
call_restricted(const Handler *h, const BsJob *job, const JobBody *body, uint64 ttr_ms)
{
	ConstraintsSetStmt all_immediate = {.type = T_ConstraintsSetStmt,.constraints = NIL,.deferred = false};
	Oid			save_user;
	int			save_sec;
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", HANDLER_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(h->run_as, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	timers_start(job->id, handler_time_limit_ms(h, ttr_ms), ttr_ms);
	dispatch_call(h, body->kwargs);
	/* deferred constraints fail here, as the handler's error */
	AfterTriggerSetState(&all_immediate);
	timers_stop();
	SetUserIdAndSecContext(save_user, save_sec);
	AtEOXact_GUC(false, nest);
}

/*
 * What a job may have left in the session that the GUC nest level does not
 * cover; each step costs nothing when there is nothing to undo.
 */
static void
session_reset(void)
{
	LockReleaseSession(USER_LOCKMETHOD);	/* session advisory locks */
	ResetSequenceCaches();		/* lastval() */
	ResetTempTableNamespace();
	DropAllPreparedStatements();
	PortalHashTableDeleteAll(); /* cursors, WITH HOLD ones included */
	Async_UnlistenAll();
}

/*
 * Step 3 of the header comment, inside the caller's transaction and SPI
 * connection.  Never throws for a handler's error: that is the outcome.
 */
static void
run_handler(const JobBody *body, const BsJob *job, const JobFacts *facts, Outcome *out)
{
	Handler		h;
	MemoryContext ctx = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	if (!dispatch_lookup(body->tube, body->func_name, &h))
	{
		set_outcome_rejected(out, "42883",
							 psprintf("no handler is registered for func_name \"%s\" on tube \"%s\"",
									  body->func_name, body->tube));
		return;
	}
	out->max_attempts = h.max_attempts;
	out->backoff_ms = h.backoff_ms;
	if (!job_admissible(&h, facts, out))
		return;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(ctx);
	PG_TRY();
	{
		/* a second delivery of a job done already is just deleted */
		if (!body->has_id || record_done(body))
			call_restricted(&h, job, body, facts->ttr_ms);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ctx);
		CurrentResourceOwner = owner;
		out->ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		timers_stop();
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
	session_reset();
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

/*
 * Step 2: whether the job may run at all.  On false, *out says why, and
 * *decoded whether body was read (for what jobq.failed records).
 */
static bool
admit_job(BsJob *job, const JobFacts *facts, JobBody *body, bool *decoded, Outcome *out)
{
	SigStatus	sig = SIG_NONE;
	char	   *error = NULL;

	*decoded = false;
	if (signing_enabled() || jobq_require_signature)
		sig = signing_verify(job->body, job->len);
	if (sig == SIG_BAD || (sig == SIG_NONE && jobq_require_signature))
	{
		set_outcome_rejected(out, "42501",
							 pstrdup(sig == SIG_BAD ? "job body has a bad signature"
									 : "job body is not signed, and jobq.require_signature is on"));
		return false;
	}
	*decoded = decode_safely(job, body, &error);
	if (!*decoded)
	{
		set_outcome_rejected(out, "22P02", error);
		return false;
	}
	if (strcmp(body->tube, facts->tube) != 0)
	{
		set_outcome_rejected(out, "42501",
							 psprintf("job body names tube \"%s\" but was reserved from tube \"%s\"",
									  body->tube, facts->tube));
		return false;
	}
	return true;
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

/* Step 4: the transaction is durable; now tell beanstalkd. */
static void
settle_job(const BsJob *job, const Outcome *out, const JobFacts *facts, bool final_failure)
{
	int			attempt = facts->attempt;

	bs_drain_pending(conn);
	if (out->ok)
	{
		(void) bs_delete(conn, job->id);
		slot_count(my_slot, true, NULL);
	}
	else if (final_failure)
	{
		(void) bs_bury(conn, job->id, 0);
		slot_count(my_slot, false, out->message);
		ereport(LOG,
				(errmsg("jobq: job " UINT64_FORMAT " buried after %d attempt(s): %s",
						job->id, attempt, out->message)));
	}
	else
	{
		(void) bs_release(conn, job->id, facts->priority, retry_delay_s(out->backoff_ms, attempt));
		slot_note_error(my_slot, out->message);
	}
}

static void
process_job(BsJob *job)
{
	JobBody		body;
	JobFacts	facts;
	bool		decoded = false;
	Outcome		out;
	bool		final_failure = false;
	MemoryContext ctx = CurrentMemoryContext;

	memset(&out, 0, sizeof(out));
	if (!job_facts(job->id, &facts))
		return;					/* deleted meanwhile: nothing to run or settle */

	process_xact_begin();
	MemoryContextSwitchTo(ctx);

	if (!admit_job(job, &facts, &body, &decoded, &out))
		slot_set_state(my_slot, JOBQ_STATE_REJECTING, NULL, NULL, job->id);
	else
	{
		slot_set_state(my_slot, JOBQ_STATE_RUNNING, body.tube, body.func_name, job->id);
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("jobq: %s on tube %s, job " UINT64_FORMAT,
										body.func_name, body.tube, job->id));
		run_handler(&body, job, &facts, &out);
	}

	if (!out.ok)
	{
		final_failure = out.bury_now || facts.attempt >= out.max_attempts;
		if (final_failure)
			record_failure(decoded ? &body : NULL, job, &out, &facts, !decoded);
	}
	process_xact_end();
	pgstat_report_activity(STATE_IDLE, NULL);

	settle_job(job, &out, &facts, final_failure);
	slot_set_state(my_slot, JOBQ_STATE_IDLE, NULL, NULL, 0);
}

static void
worker_iteration(void)
{
	BsJob		job;
	BsStatus	st;

	if (process_servers_changed(servers_now, sizeof(servers_now)))
	{
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
			slot_set_state(my_slot, JOBQ_STATE_IDLE_NO_HANDLERS, NULL, NULL, 0);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 REFRESH_TUBES_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			return;
		}
	}
	st = bs_reserve(conn, RESERVE_TIMEOUT_S, &job);
	if (st == BS_OK)
	{
		/* a reload that came in during the wait applies to this job */
		worker_reload_config();
		process_job(&job);
	}
}

void
jobq_worker_main(Datum arg)
{
	MemoryContext loop_ctx;

	my_slot = DatumGetInt32(arg);
	worker_startup(my_slot, psprintf("jobq worker %d", my_slot));
	touch_timeout = RegisterTimeout(USER_TIMEOUT, touch_handler);
	hard_limit_timeout = RegisterTimeout(USER_TIMEOUT, hard_limit_handler);

	conn = MemoryContextAllocZero(TopMemoryContext, sizeof(BeanstalkConn));
	bs_init(conn, jobq_servers, TopMemoryContext);
	strlcpy(servers_now, jobq_servers, sizeof(servers_now));
	worker_wait_for_extension(my_slot);
	slot_set_state(my_slot, JOBQ_STATE_IDLE, NULL, NULL, 0);

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
			process_succeeded(&backoff, psprintf("worker %d", my_slot), conn->server);
		}
		PG_CATCH();
		{
			process_recover(my_slot, psprintf("worker %d", my_slot), &backoff);
			bs_close(conn);
			watch_set_valid = false;
		}
		PG_END_TRY();

		/* what handlers write must reach autovacuum; flushed 1/s at most */
		pgstat_report_stat(false);
		process_back_off(my_slot, &backoff);
	}
}
