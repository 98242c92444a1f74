/*
 * status.c
 *		What became of a job, by its uuid: jobq_status(id),
 *		jobq_status(ids[]) and jobq_wait(id, timeout).
 *
 * A job leaves a trace at each step of its life, in a place of its own:
 * the outbox while it is pending, jobq.sent once the relay put it
 * (jobq.track_jobs), the slot of the worker whose handler runs it, then
 * jobq.failed or jobq.done (done or cancelled).  status_read looks in that
 * order, each query with a snapshot of its own, and a later step overrides
 * an earlier one: a job that moves on while it is looked at is seen where it
 * went, never where it had not yet come.  A job in jobq.sent is asked about
 * on its server (stats-job, pipelined: one round trip per server for up to
 * STATS_PER_TRIP jobs); a server that does not answer leaves it "queued"
 * there, with no beanstalkd state.
 *
 * Anyone with EXECUTE may read where a job is; its kwargs, result and error
 * message only the roles that may enqueue it (producer_acl.c), as for an
 * error in jobq.workers.  The tables are read as their owner, search_path
 * pinned (schema.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "job.h"
#include "pool.h"
#include "producer_acl.h"
#include "schema.h"
#include "shmem.h"
#include "status.h"

PG_FUNCTION_INFO_V1(jobq_status);
PG_FUNCTION_INFO_V1(jobq_status_many);
PG_FUNCTION_INFO_V1(jobq_wait);

#define STATUS_COLUMNS	17
#define STATS_PER_TRIP	256
/* jobq_wait looks again this often even if nobody woke it */
#define WAIT_RECHECK_MS	5000

static const char *const state_names[] = {
	[JOB_UNKNOWN] = "unknown",
	[JOB_PENDING] = "pending",
	[JOB_QUEUED] = "queued",
	[JOB_RUNNING] = "running",
	[JOB_FAILED] = "failed",
	[JOB_DONE] = "done",
	[JOB_CANCELLED] = "cancelled"
};

const char *
job_state_name(JobState state)
{
	return state_names[state];
}

/* done, failed or cancelled: nothing more will happen to it */
bool
job_state_finished(JobState state)
{
	return state == JOB_DONE || state == JOB_FAILED || state == JOB_CANCELLED;
}

/* the statuses being read, sorted by uuid to find a row's job */
typedef struct StatusSet
{
	JobStatus  *jobs;
	int			n;
	int		   *order;			/* indexes of jobs, by uuid */
	MemoryContext cxt;			/* the caller's: where the fields go */
} StatusSet;

static StatusSet *sort_set;		/* for the qsort comparator */

static int
job_uuid_cmp(const pg_uuid_t *a, const pg_uuid_t *b)
{
	return memcmp(a->data, b->data, UUID_LEN);
}

static int
order_cmp(const void *a, const void *b)
{
	return job_uuid_cmp(&sort_set->jobs[*(const int *) a].id, &sort_set->jobs[*(const int *) b].id);
}

/* the first of the set's entries for *id (an id may be asked twice), -1 if none */
static int
set_find(StatusSet *set, const pg_uuid_t *id)
{
	int			lo = 0,
				hi = set->n;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (job_uuid_cmp(&set->jobs[set->order[mid]].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < set->n && job_uuid_cmp(&set->jobs[set->order[lo]].id, id) == 0) ? lo : -1;
}

/* column col of the current SPI row as text in the caller's memory, NULL if null */
static char *
col_text(StatusSet *set, HeapTuple tup, TupleDesc desc, int col)
{
	char	   *v = SPI_getvalue(tup, desc, col);

	return v == NULL ? NULL : MemoryContextStrdup(set->cxt, v);
}

static Jsonb *
col_jsonb(StatusSet *set, HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	MemoryContext old;
	Jsonb	   *copy;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(set->cxt);
	copy = DatumGetJsonbPCopy(d);
	MemoryContextSwitchTo(old);
	return copy;
}

static bool
col_time(HeapTuple tup, TupleDesc desc, int col, TimestampTz *out)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (!isnull)
		*out = DatumGetTimestampTz(d);
	return !isnull;
}

static bool
col_int8(HeapTuple tup, TupleDesc desc, int col, int64 *out)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (!isnull)
		*out = DatumGetInt64(d);
	return !isnull;
}

static bool
col_int4(HeapTuple tup, TupleDesc desc, int col, int32 *out)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (!isnull)
		*out = DatumGetInt32(d);
	return !isnull;
}

/* a later step's value of a field replaces the earlier one's, if it has one */
#define SET_IF(field, value) \
	do { char *v_ = (value); if (v_ != NULL) (field) = v_; } while (0)

typedef void (*RowFn) (StatusSet *set, JobStatus *st, HeapTuple tup, TupleDesc desc);

/*
 * Run sql (its $1 the set's ids) and hand each row to fn for every entry of
 * its job (the row's first column).
 */
static void
read_step(StatusSet *set, SPIPlanPtr *plan, const char *sql, RowFn fn)
{
	Datum	   *ids = palloc(sizeof(Datum) * set->n);
	Datum		arg;
	Oid			type = UUIDARRAYOID;
	int			rc;

	for (int i = 0; i < set->n; i++)
		ids[i] = UUIDPGetDatum(&set->jobs[i].id);
	arg = PointerGetDatum(construct_array(ids, set->n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	if (*plan == NULL)
		*plan = schema_keep_plan(sql, 1, &type);
	/* not read-only: each query takes a snapshot of its own */
	rc = SPI_execute_plan(*plan, &arg, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: reading a job's status failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		pg_uuid_t  *id = DatumGetUUIDP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		int			k;

		if (isnull || (k = set_find(set, id)) < 0)
			continue;
		for (; k < set->n && job_uuid_cmp(&set->jobs[set->order[k]].id, id) == 0; k++)
			fn(set, &set->jobs[set->order[k]], tup, SPI_tuptable->tupdesc);
	}
	SPI_freetuptable(SPI_tuptable);
}

/* jobq.outbox: id, tube, func_name, kwargs, created_at */
static void
pending_row(StatusSet *set, JobStatus *st, HeapTuple tup, TupleDesc desc)
{
	st->state = JOB_PENDING;
	st->tube = col_text(set, tup, desc, 2);
	st->func_name = col_text(set, tup, desc, 3);
	st->kwargs = col_jsonb(set, tup, desc, 4);
	st->has_enqueued_at = col_time(tup, desc, 5, &st->enqueued_at);
}

/* jobq.sent: id, server, bs_id, tube, func_name, enqueued_at */
static void
sent_row(StatusSet *set, JobStatus *st, HeapTuple tup, TupleDesc desc)
{
	st->state = JOB_QUEUED;
	st->server = col_text(set, tup, desc, 2);
	st->has_bs_id = col_int8(tup, desc, 3, &st->bs_id);
	SET_IF(st->tube, col_text(set, tup, desc, 4));
	SET_IF(st->func_name, col_text(set, tup, desc, 5));
	st->has_enqueued_at = col_time(tup, desc, 6, &st->enqueued_at);
}

/*
 * jobq.failed, its latest row: job_id, tube, func_name, kwargs, sqlstate,
 * message, attempts, failed_at, server, bs_id
 */
static void
failed_row(StatusSet *set, JobStatus *st, HeapTuple tup, TupleDesc desc)
{
	int64		bs_id;

	st->state = JOB_FAILED;
	SET_IF(st->tube, col_text(set, tup, desc, 2));
	SET_IF(st->func_name, col_text(set, tup, desc, 3));
	if (st->kwargs == NULL)
		st->kwargs = col_jsonb(set, tup, desc, 4);
	st->sqlstate = col_text(set, tup, desc, 5);
	st->message = col_text(set, tup, desc, 6);
	st->has_attempts = col_int4(tup, desc, 7, &st->attempts);
	st->has_finished_at = col_time(tup, desc, 8, &st->finished_at);
	SET_IF(st->server, col_text(set, tup, desc, 9));
	if (col_int8(tup, desc, 10, &bs_id))
	{
		st->bs_id = bs_id;
		st->has_bs_id = true;
	}
	st->bs_state = NULL;
}

/*
 * jobq.done: id, state, done_at, attempts, tube, func_name, result,
 * cancelled_by, cancelled_in
 */
static void
done_row(StatusSet *set, JobStatus *st, HeapTuple tup, TupleDesc desc)
{
	char	   *state = SPI_getvalue(tup, desc, 2);
	int32		attempts;

	st->state = (state != NULL && strcmp(state, "cancelled") == 0) ? JOB_CANCELLED : JOB_DONE;
	st->has_finished_at = col_time(tup, desc, 3, &st->finished_at);
	if (col_int4(tup, desc, 4, &attempts))
	{
		st->attempts = attempts;
		st->has_attempts = true;
	}
	SET_IF(st->tube, col_text(set, tup, desc, 5));
	SET_IF(st->func_name, col_text(set, tup, desc, 6));
	st->result = col_jsonb(set, tup, desc, 7);
	st->cancelled_by = col_text(set, tup, desc, 8);
	st->cancelled_in = col_text(set, tup, desc, 9);
	/* what a failed run before left is no longer the job's state */
	if (st->state == JOB_DONE)
		st->sqlstate = st->message = NULL;
	st->bs_state = NULL;
	st->has_worker = false;
}

/* the jobs in a handler now: this database's worker slots */
static void
read_running(StatusSet *set)
{
	if (!shmem_available())
		return;
	for (int i = 0; i < jobq_shared->nslots; i++)
	{
		JobqWorkerSlot s;
		int			k;

		slot_read(i, &s);
		if (s.pid == 0 || s.dboid != MyDatabaseId || !s.has_job_uuid ||
			(k = set_find(set, &s.job_uuid)) < 0)
			continue;
		for (; k < set->n && job_uuid_cmp(&set->jobs[set->order[k]].id, &s.job_uuid) == 0; k++)
		{
			JobStatus  *st = &set->jobs[set->order[k]];

			st->state = JOB_RUNNING;
			st->has_worker = true;
			st->worker = slot_number(i);
			st->worker_pid = s.pid;
			st->since = s.since;
			st->has_attempts = true;
			st->attempts = (int32) s.job_attempt;
			st->tube = MemoryContextStrdup(set->cxt, s.tube);
			st->func_name = MemoryContextStrdup(set->cxt, s.func_name);
			st->bs_id = (int64) s.job_id;
			st->has_bs_id = true;
			st->bs_state = MemoryContextStrdup(set->cxt, "reserved");
		}
	}
}

/* the queued jobs of one server, asked about in one pipelined trip */
typedef struct ServerAsk
{
	JobStatus **jobs;
	int			n;
	MemoryContext cxt;
} ServerAsk;

static BsStatus
ask_stats(BeanstalkConn *conn, void *arg)
{
	ServerAsk  *ask = (ServerAsk *) arg;
	BsStatus	st;

	if ((st = bs_pipeline_begin(conn)) != BS_OK)
		return st;
	for (int i = 0; i < ask->n; i++)
		bs_queue_stats_job(conn, (uint64) ask->jobs[i]->bs_id);
	if ((st = bs_flush(conn)) != BS_OK)
		return st;
	for (int i = 0; i < ask->n; i++)
	{
		BsJobStats js;

		st = bs_read_stats_job_reply(conn, &js);
		if (st == BS_OK)
			ask->jobs[i]->bs_state = MemoryContextStrdup(ask->cxt, js.state);
		else if (st == BS_NOT_FOUND)
			ask->jobs[i]->bs_state = MemoryContextStrdup(ask->cxt, "gone");
		else
			return st;
	}
	return BS_OK;
}

/*
 * beanstalkd's state of each queued job: stats-job on its server.  A job its
 * server no longer has is marked "gone" (status_read decides); a server that
 * is down, or not in jobq.servers any more, leaves the state unknown.
 */
static void
ask_servers(StatusSet *set)
{
	BsPool	   *pool = pool_backend();
	JobStatus **batch = palloc(sizeof(JobStatus *) * STATS_PER_TRIP);

	for (int s = 0; s < pool->n; s++)
	{
		ServerAsk	ask = {batch, 0, set->cxt};

		if (!pool_usable(pool, s))
			continue;
		for (int i = 0; i <= set->n; i++)
		{
			JobStatus  *st = i < set->n ? &set->jobs[i] : NULL;

			if (st != NULL && st->state == JOB_QUEUED && st->has_bs_id && st->bs_id > 0 &&
				st->server != NULL && strcmp(st->server, pool->conns[s]->server) == 0)
				ask.jobs[ask.n++] = st;
			if (ask.n == STATS_PER_TRIP || (st == NULL && ask.n > 0))
			{
				if (!pool_call(pool, s, ask_stats, &ask))
				{
					/* down: what was asked of it stays unknown */
					for (int j = 0; j < ask.n; j++)
						ask.jobs[j]->bs_state = NULL;
					break;
				}
				ask.n = 0;
			}
		}
	}
	pfree(batch);
}

static void
read_tables(StatusSet *set, bool servers)
{
	static SPIPlanPtr pending_plan = NULL;
	static SPIPlanPtr sent_plan = NULL;
	static SPIPlanPtr failed_plan = NULL;
	static SPIPlanPtr done_plan = NULL;

	read_step(set, &pending_plan,
			  "SELECT id, tube, func_name, "
			  "  pg_catalog.convert_from(body, pg_catalog.getdatabaseencoding())::pg_catalog.jsonb "
			  "    OPERATOR(pg_catalog.->) 'kwargs', created_at "
			  "FROM jobq.outbox WHERE id OPERATOR(pg_catalog.=) ANY ($1)", pending_row);
	read_step(set, &sent_plan,
			  "SELECT DISTINCT ON (id) id, server, bs_id, tube, func_name, enqueued_at "
			  "FROM jobq.sent WHERE id OPERATOR(pg_catalog.=) ANY ($1) "
			  "ORDER BY id, sent_at DESC", sent_row);
	if (servers)
		ask_servers(set);
	read_step(set, &failed_plan,
			  "SELECT DISTINCT ON (job_id) job_id, tube, func_name, kwargs, sqlstate, message, "
			  "  attempts, failed_at, server, bs_id "
			  "FROM jobq.failed WHERE job_id OPERATOR(pg_catalog.=) ANY ($1) "
			  "ORDER BY job_id, id DESC", failed_row);
	read_running(set);
	read_step(set, &done_plan,
			  "SELECT id, state, done_at, attempts, tube, func_name, result, cancelled_by, "
			  "  cancelled_in "
			  "FROM jobq.done WHERE id OPERATOR(pg_catalog.=) ANY ($1)", done_row);
}

/*
 * Hide what only the job's producers may read.  The last pair asked is
 * remembered: a set of many ids has few registrations.
 */
static void
apply_visibility(StatusSet *set, Oid caller)
{
	const char *tube = NULL;
	const char *func_name = NULL;
	bool		may = false;

	for (int i = 0; i < set->n; i++)
	{
		JobStatus  *st = &set->jobs[i];

		if (st->kwargs == NULL && st->result == NULL && st->message == NULL)
			continue;
		if (st->tube == NULL || st->func_name == NULL)
			may = false;
		else if (tube == NULL || strcmp(tube, st->tube) != 0 || strcmp(func_name, st->func_name) != 0)
		{
			tube = st->tube;
			func_name = st->func_name;
			may = acl_may_produce(caller, tube, func_name);
		}
		if (!may)
		{
			st->kwargs = NULL;
			st->result = NULL;
			st->message = NULL;
		}
	}
}

/*
 * The status of n jobs (ids), into out[0..n), in the caller's memory.
 * ask_servers: ask beanstalkd about the queued ones (jobq_wait need not,
 * until its last look).
 */
void
status_read(const pg_uuid_t *ids, int n, JobStatus *out, bool servers)
{
	StatusSet	set;
	OwnerContext owner;

	if (schema_version() < JOBQ_SCHEMA_1_5)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a job's status needs the jobq 1.5 schema"),
				 errhint("Run ALTER EXTENSION jobq UPDATE.")));
	memset(out, 0, sizeof(JobStatus) * n);
	set.jobs = out;
	set.n = n;
	set.cxt = CurrentMemoryContext;
	set.order = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		out[i].id = ids[i];
		out[i].state = JOB_UNKNOWN;
		set.order[i] = i;
	}
	sort_set = &set;
	qsort(set.order, n, sizeof(int), order_cmp);
	sort_set = NULL;

	SPI_connect();
	schema_become_owner(&owner);
	read_tables(&set, servers);
	schema_restore_user(&owner);
	SPI_finish();

	for (int i = 0; i < n; i++)
	{
		/* in jobq.sent, but neither on its server nor finished: lost there */
		if (out[i].state == JOB_QUEUED && out[i].bs_state != NULL &&
			strcmp(out[i].bs_state, "gone") == 0)
			out[i].state = JOB_UNKNOWN;
	}
	apply_visibility(&set, GetUserId());
	pfree(set.order);
}

HeapTuple
status_tuple(const JobStatus *st, TupleDesc desc)
{
	Datum		values[STATUS_COLUMNS];
	bool		nulls[STATUS_COLUMNS];

	if (desc->natts != STATUS_COLUMNS)
		elog(ERROR, "jobq: a job's status has %d columns, not %d", STATUS_COLUMNS, desc->natts);
	memset(nulls, true, sizeof(nulls));
#define PUT(i, cond, value) do { if (cond) { values[i] = (value); nulls[i] = false; } } while (0)
	PUT(0, true, UUIDPGetDatum((pg_uuid_t *) &st->id));
	PUT(1, true, CStringGetTextDatum(job_state_name(st->state)));
	PUT(2, st->tube != NULL, CStringGetTextDatum(st->tube ? st->tube : ""));
	PUT(3, st->func_name != NULL, CStringGetTextDatum(st->func_name ? st->func_name : ""));
	PUT(4, st->kwargs != NULL, JsonbPGetDatum(st->kwargs));
	PUT(5, st->has_enqueued_at, TimestampTzGetDatum(st->enqueued_at));
	PUT(6, st->server != NULL, CStringGetTextDatum(st->server ? st->server : ""));
	PUT(7, st->has_bs_id, Int64GetDatum(st->bs_id));
	PUT(8, st->bs_state != NULL && st->state != JOB_UNKNOWN,
		CStringGetTextDatum(st->bs_state ? st->bs_state : ""));
	PUT(9, st->has_attempts, Int32GetDatum(st->attempts));
	PUT(10, st->has_worker, Int32GetDatum(st->worker));
	PUT(11, st->has_worker, TimestampTzGetDatum(st->since));
	PUT(12, st->has_finished_at, TimestampTzGetDatum(st->finished_at));
	PUT(13, st->result != NULL, JsonbPGetDatum(st->result));
	PUT(14, st->sqlstate != NULL, CStringGetTextDatum(st->sqlstate ? st->sqlstate : ""));
	PUT(15, st->message != NULL, CStringGetTextDatum(st->message ? st->message : ""));
	PUT(16, st->cancelled_by != NULL, CStringGetDatum(st->cancelled_by ? st->cancelled_by : ""));
#undef PUT
	return heap_form_tuple(desc, values, nulls);
}

static TupleDesc
status_desc(FunctionCallInfo fcinfo)
{
	TupleDesc	desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "jobq: return type must be a row type");
	return BlessTupleDesc(desc);
}

/* jobq_status(id uuid) -> one row, whatever state the job is in */
Datum
jobq_status(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = PG_GETARG_UUID_P(0);
	TupleDesc	desc = status_desc(fcinfo);
	JobStatus	st;

	status_read(id, 1, &st, true);
	PG_RETURN_DATUM(HeapTupleGetDatum(status_tuple(&st, desc)));
}

/* jobq_status(ids uuid[]) -> a row per id (null ids skipped), in order */
Datum
jobq_status_many(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			nelems;
	int			n = 0;
	pg_uuid_t  *ids;
	JobStatus  *sts;

	InitMaterializedSRF(fcinfo, 0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("ids must be a one-dimensional array")));
	deconstruct_array(arr, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &elems, &elem_nulls, &nelems);
	ids = palloc(sizeof(pg_uuid_t) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
		if (!elem_nulls[i])
			ids[n++] = *DatumGetUUIDP(elems[i]);
	if (n == 0)
		return (Datum) 0;
	sts = palloc(sizeof(JobStatus) * n);
	status_read(ids, n, sts, true);
	for (int i = 0; i < n; i++)
		tuplestore_puttuple(rsinfo->setResult, status_tuple(&sts[i], rsinfo->setDesc));
	return (Datum) 0;
}

static bool
finished(const JobStatus *st)
{
	return job_state_finished(st->state);
}

/*
 * Wait until until(status of job *id) holds or deadline passes, sleeping on
 * the condition variable that the workers, the relay and jobq_cancel
 * broadcast on after a commit that finished jobs (shmem_jobs_finished), and
 * looking again every WAIT_RECHECK_MS in any case.  Query cancel interrupts
 * it.  The caller reads the status again: what was read here is gone.
 */
void
status_wait(const pg_uuid_t *id, TimestampTz deadline, bool (*until) (const JobStatus *))
{
	MemoryContext cxt;
	MemoryContext old;

	if (!shmem_available())
		return;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "jobq status wait", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	pg_atomic_fetch_add_u32(&jobq_shared->waiters, 1);
	PG_TRY();
	{
		ConditionVariablePrepareToSleep(&jobq_shared->job_finished);
		for (;;)
		{
			JobStatus	st;
			long		left;

			MemoryContextReset(cxt);
			status_read(id, 1, &st, false);
			left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (until(&st) || left <= 0)
				break;
			(void) ConditionVariableTimedSleep(&jobq_shared->job_finished,
											   Min(left, WAIT_RECHECK_MS), PG_WAIT_EXTENSION);
		}
	}
	PG_FINALLY();
	{
		ConditionVariableCancelSleep();
		pg_atomic_fetch_sub_u32(&jobq_shared->waiters, 1);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * jobq_wait(id uuid, timeout interval) -> the job's status once it is done,
 * failed or cancelled, or when timeout has passed.  Woken by the process
 * whose commit finished a job (shmem_jobs_finished); query cancel and
 * statement_timeout interrupt it.
 */
Datum
jobq_wait(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = PG_GETARG_UUID_P(0);
	Interval   *timeout = PG_GETARG_INTERVAL_P(1);
	int64		usecs = job_interval_usecs(timeout);
	TupleDesc	desc = status_desc(fcinfo);
	JobStatus	st;

	if (usecs < 0 || usecs == PG_INT64_MAX || usecs == PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be a finite interval that is not negative")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("jobq_wait cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("Its snapshot would never show the job finish."),
				 errhint("Call it in a READ COMMITTED transaction.")));
	if (usecs > 0)
		status_wait(id, GetCurrentTimestamp() + Min(usecs, PG_INT64_MAX / 4), finished);
	status_read(id, 1, &st, true);
	PG_RETURN_DATUM(HeapTupleGetDatum(status_tuple(&st, desc)));
}
