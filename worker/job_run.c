/*
 * job_run.c
 *		Running one reserved job inside its batch's transaction: check that
 *		it may run, call its handler as its run_as role in a subtransaction
 *		of its own, and leave nothing of it behind for the next job.
 *
 * For one job (worker.c reserved it and read its facts with stats-job), in
 * a subtransaction of the batch's transaction (run_in_subtransaction):
 *	1. check the body's signature (jobq.signing_key) and decode it; a body
 *	   that is not a jobq job, is not signed as required, names another
 *	   tube than the one it was reserved from, or was enqueued in another
 *	   database (whose producer rights were checked there) is rejected
 *	2. look up the handler and check that its registration still holds
 *	   (run_as, the function's owner, EXECUTE) and that the job was put
 *	   after it was registered
 *	3. record the job id in jobq.done (a second delivery of a completed
 *	   job finds it there and is dropped) and call the handler as its role;
 *	   an error rolls back this job only
 *	4. a job that failed for the last time is recorded in jobq.failed, in
 *	   the batch's transaction
 * worker.c commits the batch, then deletes, releases or buries each job.
 *
 * Nothing a handler does outlives its job.  It runs as run_as with
 * SECURITY_LOCAL_USERID_CHANGE, as in a SECURITY DEFINER function, so it
 * cannot SET ROLE or SET SESSION AUTHORIZATION.  Its settings, session-level
 * ones included, live in a GUC nest level that is undone when the job ends;
 * then whatever else it left in the session goes, as DISCARD ALL would drop
 * it: temporary objects, prepared statements, cursors, LISTENs,
 * session-level advisory locks and sequence state (lastval).  Jobs of a
 * batch share a transaction, so what a released subtransaction hands to its
 * parent goes too: large object descriptors are closed, and the SET
 * CONSTRAINTS state is put back to every constraint's default before the
 * next job (job_restore_constraints).  Row, table and transaction-level
 * advisory locks stay held until the batch commits; they grant nothing.
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
#include "libpq/be-fsstubs.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "beanstalk.h"
#include "failed.h"
#include "job.h"
#include "jobq.h"
#include "pool.h"
#include "registry.h"
#include "shmem.h"
#include "schema.h"
#include "signing.h"
#include "touch.h"
#include "unique.h"
#include "worker.h"

#define HARD_LIMIT_GRACE_MS	5000	/* past its time limit, a handler that
										 * swallowed the cancel ends the worker */
/* what a handler's search_path starts as; functions pin their own with SET */
#define HANDLER_SEARCH_PATH	"pg_catalog, public, pg_temp"

int			jobq_max_handler_time = 3600 * 1000;

static int	my_slot;
static BsPool *pool;			/* the worker's servers */

static TimeoutId hard_limit_timeout = MAX_TIMEOUTS;

/*
 * The deferrable constraints that are INITIALLY DEFERRED, to put back after
 * a job ended with SET CONSTRAINTS ALL IMMEDIATE; read again after any
 * change to pg_constraint.
 */
static List *initially_deferred = NIL;	/* RangeVars, TopMemoryContext */
static bool deferred_valid = false;
static bool deferred_exact = true;	/* naming them hits no other constraint */

/*
 * A handler still running well past its time limit caught the statement
 * timeout's cancel (EXCEPTION WHEN query_canceled) and carried on: end the
 * process as SIGTERM would.  Its batch goes back to beanstalkd; the job
 * comes back alone (worker.c runs a job reserved before in a transaction of
 * its own), and buried once its reservations exceed max_attempts.
 */
static void
hard_limit_handler(void)
{
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

static void
constraints_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	deferred_valid = false;
}

void
job_run_init(int slot, BsPool *p)
{
	my_slot = slot;
	pool = p;
	touch_init(p);
	job_cancel_init(slot);
	hard_limit_timeout = RegisterTimeout(USER_TIMEOUT, hard_limit_handler);
	CacheRegisterSyscacheCallback(CONSTROID, constraints_changed, (Datum) 0);
}

void
job_run_init_gucs(void)
{
	DefineCustomIntVariable("jobq.max_handler_time",
							"Longest a handler registered without a timeout may run.",
							"A job's ttr (the producer's choice) can only shorten it.",
							&jobq_max_handler_time,
							3600 * 1000, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

static void
record_failure(const BatchJob *bj, const JobBody *body, bool keep_raw)
{
	FailedJob	f = {0};

	f.job_id = body && body->has_id ? &body->id : NULL;
	f.bs_id = bj->job.id;
	f.server = pool->conns[bj->server]->server;
	/* an unreadable body: the tube it was reserved from, so it can be found */
	f.tube = body ? body->tube : bj->facts.tube;
	f.func_name = body ? body->func_name : NULL;
	f.kwargs = body ? body->kwargs : NULL;
	f.raw_body = keep_raw ? bj->job.body : NULL;
	f.raw_len = bj->job.len;
	f.sqlstate = bj->out.sqlstate;
	f.message = bj->out.message;
	f.attempts = bj->facts.attempt;
	/* what jobq_retry_failed puts the job back with */
	f.priority = (int64) bj->facts.priority;
	f.ttr = (int64) (bj->facts.ttr_ms / 1000);
	f.source = "worker";
	failed_record(&f);
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

	/* jobq.handlers names them: dropped or renamed since, they are gone */
	if (h->signature != NULL && !OidIsValid(fn_owner))
	{
		set_outcome_rejected(out, "42883",
							 psprintf("handler function %s does not exist: it was dropped or renamed after registration",
									  h->signature));
		return false;
	}
	if (!OidIsValid(h->run_as))
	{
		set_outcome_rejected(out, "42704",
							 psprintf("role \"%s\" that the handler runs as does not exist: it was dropped or renamed after registration",
									  h->run_as_name));
		return false;
	}
	if (!OidIsValid(h->registered_by))
		why = "the role that registered the handler no longer exists";
	else
	{
		/* the rule jobq_register checked, which may have stopped holding */
		switch (registry_rule_breach(h->fn, h->run_as, h->registered_by))
		{
			case REGISTRY_RULE_HOLDS:
				return true;
			case REGISTRY_REGISTRANT_NOT_SUPERUSER:
				why = "the role that registered this C handler is no longer a superuser";
				break;
			case REGISTRY_REGISTRANT_NOT_MEMBER:
				why = "the role that registered the handler is no longer a member of its run_as role";
				break;
			case REGISTRY_OWNER_NOT_MEMBER:
				why = "the owner of the handler's function is not a member of its run_as role";
				break;
			case REGISTRY_NO_EXECUTE:
				why = "the handler's run_as role may not execute its function";
				break;
		}
	}
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
 * Those are the reservations that ended with neither a release nor a
 * bury by a worker (reserves - 1 - releases - buries): a worker that died,
 * a connection lost or closed, a ttr that ran out.  Failed runs are counted
 * apart (job_run), so that a job a worker gave back unrun (worker.c,
 * reserve_first) does not lose one of its attempts, and a kicked job gets
 * its run.  Such give-backs also end a reservation without an outcome, and
 * under a burst on a pool one job may see a few: GIVE_BACK_SLACK of them
 * are allowed for before the job counts as ending its worker (with
 * max_attempts 1, two give-backs buried jobs that never ran).
 */
#define GIVE_BACK_SLACK	2

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
	if (facts->attempt - 1 - facts->failures > h->max_attempts + GIVE_BACK_SLACK)
	{
		set_outcome_rejected(out, "XX000",
							 psprintf("job was reserved %d times without an outcome (max_attempts is %d): its handler ends the worker",
									  facts->attempt - 1 - facts->failures, h->max_attempts));
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

/*
 * Record the job in jobq.done, with the run it is (1.5); false if it was
 * there already: a second delivery, or a job cancelled before it ran.
 */
static bool
record_done(const JobBody *body, int attempt)
{
	static SPIPlanPtr plan = NULL;
	static bool plan_attempts = false;
	bool		with_attempts = schema_version() >= JOBQ_SCHEMA_1_5;
	Datum		values[2];
	int			rc;

	if (plan == NULL || plan_attempts != with_attempts)
	{
		Oid			types[2] = {UUIDOID, INT4OID};

		if (plan != NULL)
			SPI_freeplan(plan);
		plan = NULL;
		plan = schema_keep_plan(with_attempts
								? "INSERT INTO jobq.done (id, attempts) VALUES ($1, $2) ON CONFLICT DO NOTHING"
								: "INSERT INTO jobq.done (id) VALUES ($1) ON CONFLICT DO NOTHING",
								with_attempts ? 2 : 1, types);
		plan_attempts = with_attempts;
	}
	values[0] = UUIDPGetDatum((pg_uuid_t *) &body->id);
	values[1] = Int32GetDatum(attempt);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "jobq: recording job completion failed");
	return SPI_processed == 1;
}

/* What a keep_result handler returned, with the job's done row. */
static void
record_result(const JobBody *body, Jsonb *result)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[4];

	if (plan == NULL)
	{
		Oid			types[4] = {UUIDOID, JSONBOID, TEXTOID, TEXTOID};

		plan = schema_keep_plan("UPDATE jobq.done SET result = $2, tube = $3, func_name = $4 "
								"WHERE id OPERATOR(pg_catalog.=) $1", 4, types);
	}
	values[0] = UUIDPGetDatum((pg_uuid_t *) &body->id);
	values[1] = JsonbPGetDatum(result);
	values[2] = CStringGetTextDatum(body->tube);
	values[3] = CStringGetTextDatum(body->func_name);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "jobq: recording a job's result failed");
}

/*
 * A job cancelled while it ran: its done row says so (its own, from
 * record_done, went with its subtransaction), in the batch's transaction.
 */
static void
record_cancelled(const JobBody *body, int attempt, const char *by)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[5];

	if (plan == NULL)
	{
		Oid			types[5] = {UUIDOID, INT4OID, TEXTOID, TEXTOID, NAMEOID};

		plan = schema_keep_plan("INSERT INTO jobq.done (id, state, attempts, tube, func_name, "
								"cancelled_by, cancelled_in) "
								"VALUES ($1, 'cancelled', $2, $3, $4, $5, 'running') "
								"ON CONFLICT DO NOTHING", 5, types);
	}
	values[0] = UUIDPGetDatum((pg_uuid_t *) &body->id);
	values[1] = Int32GetDatum(attempt);
	values[2] = CStringGetTextDatum(body->tube);
	values[3] = CStringGetTextDatum(body->func_name);
	values[4] = CStringGetDatum(by);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "jobq: recording a job's cancel failed");
}

/* a job that finished gives back its unique key (unique.c) */
static void
release_unique_key(const JobBody *body)
{
	if (body->unique_key != NULL && body->has_id && schema_version() >= JOBQ_SCHEMA_1_5)
		unique_release(body->tube, body->unique_key, &body->id);
}

static void
timers_start(int64 limit_ms)
{
	int			limit = (int) Min(limit_ms, (int64) INT_MAX - HARD_LIMIT_GRACE_MS);

	touch_limit(TimestampTzPlusMilliseconds(GetCurrentTimestamp(), limit));
	enable_timeout_after(STATEMENT_TIMEOUT, limit);
	enable_timeout_after(hard_limit_timeout, limit + HARD_LIMIT_GRACE_MS);
}

/* also from PG_CATCH; the batch's touches go on between handlers */
static void
timers_stop(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
	disable_timeout(hard_limit_timeout, false);
	touch_no_limit();
}

/*
 * Read the INITIALLY DEFERRED constraints (temporary ones aside: a job's
 * own are dropped with it, and other sessions' are none of ours), and
 * whether each (schema, name) names only such constraints: SET CONSTRAINTS
 * acts on every deferrable constraint of that name in the schema, and fails
 * on a non-deferrable one.
 */
static void
read_initially_deferred(void)
{
	MemoryContext ctx = CurrentMemoryContext;
	ListCell   *lc;
	int			rc;

	rc = SPI_execute("SELECT n.nspname, c.conname, pg_catalog.bool_and(c.condeferred) "
					 "FROM pg_catalog.pg_constraint c "
					 "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.connamespace "
					 "WHERE n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast_)?temp_' "
					 "GROUP BY 1, 2 HAVING pg_catalog.bool_or(c.condeferred)",
					 true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: reading deferred constraints failed: %s", SPI_result_code_string(rc));
	MemoryContextSwitchTo(TopMemoryContext);
	foreach(lc, initially_deferred)
	{
		RangeVar   *rv = lfirst(lc);

		pfree(rv->schemaname);
		pfree(rv->relname);
	}
	list_free_deep(initially_deferred);
	initially_deferred = NIL;
	deferred_exact = true;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		initially_deferred = lappend(initially_deferred,
									 makeRangeVar(SPI_getvalue(tup, desc, 1),
												  SPI_getvalue(tup, desc, 2), -1));
		if (!DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
			deferred_exact = false;
	}
	MemoryContextSwitchTo(ctx);
	deferred_valid = true;
}

/*
 * The job before this one in the transaction ended with SET CONSTRAINTS
 * ALL IMMEDIATE; SET CONSTRAINTS ... DEFERRED of the initially deferred
 * ones makes every constraint behave as at the start of a transaction.
 */
static void
job_restore_constraints(void)
{
	ConstraintsSetStmt deferred = {.type = T_ConstraintsSetStmt,.deferred = true};

	deferred.constraints = initially_deferred;
	AfterTriggerSetState(&deferred);
}

/*
 * Whether another job may join the current transaction, which a job has
 * run in; if so, its constraints now start from their defaults.  A restore
 * that fails (a constraint dropped meanwhile) only means no: it runs in a
 * subtransaction of its own, and the job gets a new transaction.
 */
bool
job_may_share_xact(void)
{
	MemoryContext ctx = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool restored = true;

	/*
	 * Past PGPROC_MAX_CACHED_SUBXIDS subtransaction xids, every snapshot in
	 * the cluster has to look into pg_subtrans: leave room for the next job
	 * and the subtransactions of its handler.
	 */
	if (MyProc->subxidStatus.overflowed ||
		MyProc->subxidStatus.count >= PGPROC_MAX_CACHED_SUBXIDS - 16)
		return false;
	if (!deferred_valid)
		read_initially_deferred();
	if (!deferred_exact)
		return false;
	if (initially_deferred == NIL)
		return true;			/* all immediate is every default */

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(ctx);
	PG_TRY();
	{
		job_restore_constraints();
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(ctx);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		deferred_valid = false;
		restored = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(ctx);
	CurrentResourceOwner = owner;
	return restored;
}

/*
 * Call the handler as run_as, in a GUC nest level of its own
 * that is undone afterwards, whatever the handler set.  Runs inside the
 * job's subtransaction; an error leaves through it, and the subtransaction
 * abort restores the user and the settings.
 */
static Jsonb *
call_restricted(const Handler *h, const JobBody *body, uint64 ttr_ms)
{
	Jsonb	   *result;
	ConstraintsSetStmt all_immediate = {.type = T_ConstraintsSetStmt,.constraints = NIL,.deferred = false};
	Oid			save_user;
	int			save_sec;
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", HANDLER_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(h->run_as, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	timers_start(handler_time_limit_ms(h, ttr_ms));
	result = dispatch_call(h, body->kwargs);
	/* deferred constraints fail here, as the handler's error */
	AfterTriggerSetState(&all_immediate);
	timers_stop();
	SetUserIdAndSecContext(save_user, save_sec);
	AtEOXact_GUC(false, nest);
	return result;
}

/*
 * random() draws from a generator of the session, which setseed() sets: a
 * handler could set it, or work its state out from the values it draws,
 * and know what the next job, another role's, will draw.  Every job starts
 * from a seed of its own from a strong source, as a new session does; the
 * seeds are drawn SEED_BATCH at a time (one call into OpenSSL per batch).
 */
#define SEED_BATCH	64

static void
reseed_random(void)
{
	static uint64 seeds[SEED_BATCH];
	static int	used = SEED_BATCH;
	double		seed;

	if (used == SEED_BATCH)
	{
		if (!pg_strong_random(seeds, sizeof(seeds)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
		used = 0;
	}
	/* 53 random bits as a double in [-1, 1), what setseed takes */
	seed = (double) (seeds[used] >> 11) / (double) (UINT64CONST(1) << 53) * 2.0 - 1.0;
	seeds[used++] = 0;
	(void) DirectFunctionCall1(setseed, Float8GetDatum(seed));
}

/*
 * What a job may have left in the session or the transaction that the GUC
 * nest level does not cover; each step costs nothing when there is nothing
 * to undo.
 */
static void
session_reset(void)
{
	PortalHashTableDeleteAll(); /* cursors, WITH HOLD ones included: first,
								 * they may hold temp tables open */
	LockReleaseSession(USER_LOCKMETHOD);	/* session advisory locks */
	ResetSequenceCaches();		/* lastval() */
	ResetTempTableNamespace();
	DropAllPreparedStatements();
	Async_UnlistenAll();
	AtEOXact_LargeObject(true); /* open descriptors, as at commit */
	reseed_random();
}

/*
 * Step 1: whether the job may run at all.  On false, bj->out says why, and
 * *decoded whether body was read (for what jobq.failed records).  Decoding
 * may throw on what PostgreSQL's jsonb refuses of a body that jansson took
 * (a number beyond numeric's range, a character the database encoding
 * lacks): the caller runs this in the job's subtransaction.
 */
static bool
admit_job(BatchJob *bj, JobBody *body, bool *decoded)
{
	SigStatus	sig = SIG_NONE;
	char	   *error = NULL;

	*decoded = false;
	if (signing_enabled() || jobq_require_signature)
		sig = signing_verify(bj->job.body, bj->job.len);
	if (sig == SIG_BAD || (sig == SIG_NONE && jobq_require_signature))
	{
		set_outcome_rejected(&bj->out, "42501",
							 pstrdup(sig == SIG_BAD ? "job body has a bad signature"
									 : "job body is not signed, and jobq.require_signature is on"));
		return false;
	}
	if (!job_decode(bj->job.body, bj->job.len, body, &error))
	{
		set_outcome_rejected(&bj->out, "22P02", error);
		return false;
	}
	*decoded = true;
	if (strcmp(body->tube, bj->facts.tube) != 0)
	{
		set_outcome_rejected(&bj->out, "42501",
							 psprintf("job body names tube \"%s\" but was reserved from tube \"%s\"",
									  body->tube, bj->facts.tube));
		return false;
	}
	/* who may enqueue was checked in the database that enqueued it */
	if (body->database != NULL && strcmp(body->database, worker_database) != 0)
	{
		set_outcome_rejected(&bj->out, "42501",
							 psprintf("job was enqueued in database \"%s\", not in this one",
									  body->database));
		return false;
	}
	return true;
}

/*
 * Step 2, for an admitted job: its handler, and whether it may run now.
 * On false, bj->out says why.
 */
static bool
find_handler(BatchJob *bj, const JobBody *body, Handler *h)
{
	if (!dispatch_lookup(body->tube, body->func_name, h))
	{
		set_outcome_rejected(&bj->out, "42883",
							 psprintf("no handler is registered for func_name \"%s\" on tube \"%s\"",
									  body->func_name, body->tube));
		return false;
	}
	bj->out.max_attempts = h->max_attempts;
	bj->out.backoff_ms = h->backoff_ms;
	return job_admissible(h, &bj->facts, &bj->out);
}

/* how far a job got in its subtransaction, for what an error there means */
typedef enum JobStage
{
	JOB_DECODING,				/* an error: the body is not a job (22P02) */
	JOB_LOOKING_UP,				/* the registry failed: the batch's error */
	JOB_RUNNING					/* the handler's error: the job's outcome */
} JobStage;

/*
 * Step 3: the handler, once the job's row is in jobq.done (a second
 * delivery, or a job cancelled before it ran, finds the row there and is
 * just deleted); with a cancel request armed while it runs.
 */
static void
run_handler(BatchJob *bj, JobBody *body, Handler *h)
{
	slot_set_state(my_slot, JOBQ_STATE_RUNNING, body->tube, body->func_name, bj->job.id);
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("jobq: %s on tube %s, job " UINT64_FORMAT,
									body->func_name, body->tube, bj->job.id));
	if (!body->has_id)
		(void) call_restricted(h, body, bj->facts.ttr_ms);
	else if (record_done(body, bj->facts.attempt))
	{
		Jsonb	   *result;

		slot_set_job(my_slot, &body->id, bj->facts.attempt);
		job_cancel_arm();
		result = call_restricted(h, body, bj->facts.ttr_ms);
		job_cancel_disarm();
		if (result != NULL)
			record_result(body, result);
		release_unique_key(body);
	}
	/* a time limit or cancel that struck after the handler's last check is its own */
	CHECK_FOR_INTERRUPTS();
	/* what the handler left fails this job only, if it cannot be undone */
	session_reset();
	bj->out.ok = true;
}

/*
 * Steps 1 to 3 of the header comment, in one subtransaction of the batch's
 * transaction (and SPI connection): decoding, the handler's lookup and the
 * handler itself.  An error rolls the subtransaction back; what it means
 * depends on how far the job got.  Never throws for the job's own error.
 */
static void
run_in_subtransaction(BatchJob *bj, JobBody *body, bool *decoded)
{
	Outcome    *out = &bj->out;
	MemoryContext ctx = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile JobStage stage = JOB_DECODING;
	Handler		h;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(ctx);
	PG_TRY();
	{
		if (admit_job(bj, body, decoded))
		{
			stage = JOB_LOOKING_UP;
			if (find_handler(bj, body, &h))
			{
				stage = JOB_RUNNING;
				run_handler(bj, body, &h);
			}
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ctx);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (stage == JOB_RUNNING)
		{
			timers_stop();
			job_cancel_disarm();
		}
		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ctx);
		CurrentResourceOwner = owner;
		/*
		 * The registry's failure is the batch's; so is, while decoding, an
		 * error that is no defect of the body (a cancel, out of memory):
		 * only a data exception or a size limit says the body is bad.
		 */
		if (stage == JOB_LOOKING_UP ||
			(stage == JOB_DECODING &&
			 ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
			 ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_PROGRAM_LIMIT_EXCEEDED))
			ReThrowError(edata);
		out->ok = false;
		/* a jobq_cancel's interruption is no failure of the job */
		out->cancelled = (stage == JOB_RUNNING && body->has_id &&
						  edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
						  job_cancel_struck() &&
						  slot_take_cancel(my_slot, &body->id, out->cancelled_by));
		if (stage == JOB_DECODING)
		{
			/* the body is untrusted: a failure to read it is the job's */
			*decoded = false;
			set_outcome_rejected(out, "22P02", pstrdup(edata->message));
		}
		else
		{
			set_outcome_error(out, edata);
			/* the rollback took the subtransaction's objects; the rest goes now */
			session_reset();
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
	slot_set_job(my_slot, NULL, 0);
	if (stage != JOB_RUNNING)
		slot_set_state(my_slot, JOBQ_STATE_REJECTING, NULL, NULL, bj->job.id);
}

/*
 * Run one job of the batch in the current transaction (after
 * job_may_share_xact said yes, if a job ran in it before).  Sets bj->out and bj->final_failure; a job that
 * failed for the last time is in jobq.failed when this returns.  The
 * outcome is in the caller's memory context: it is settled after the
 * commit, when SPI's memory, where many a message is made, is gone.
 */
void
job_run(BatchJob *bj)
{
	JobBody		body;
	bool		decoded = false;
	MemoryContext ctx = CurrentMemoryContext;

	memset(&bj->out, 0, sizeof(bj->out));
	bj->final_failure = false;

	/*
	 * Catalog changes committed since the last job (a registration, a
	 * REVOKE, a role membership): the batch's transaction already holds the
	 * locks whose taking would have read them.
	 */
	AcceptInvalidationMessages();
	run_in_subtransaction(bj, &body, &decoded);
	if (bj->out.cancelled)
	{
		/* not retried: recorded as cancelled, deleted like a job done */
		record_cancelled(&body, bj->facts.attempt, bj->out.cancelled_by);
		release_unique_key(&body);
	}
	else if (!bj->out.ok)
	{
		/* the runs that failed count, not the reservations (see admit_job) */
		bj->final_failure = bj->out.bury_now ||
			bj->facts.failures + 1 >= bj->out.max_attempts;
		if (bj->final_failure)
		{
			record_failure(bj, decoded ? &body : NULL, !decoded);
			if (decoded)
				release_unique_key(&body);
		}
		bj->out.message = MemoryContextStrdup(ctx, bj->out.message);
		/* whose error it is, for who may read it in jobq.workers */
		if (decoded)
			bj->out.func_name = MemoryContextStrdup(ctx, body.func_name);
	}
	MemoryContextSwitchTo(ctx);
}
