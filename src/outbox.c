/*
 * outbox.c
 *		The outbox: a job written in the caller's transaction, and the
 *		relay's wake-up when that transaction commits.
 *
 * The job is encoded and checked at once, then kept in memory and written
 * as a row of jobq.outbox with the others of its statement: at the end of
 * the statement (ExecutorEnd), every OUTBOX_FLUSH_ROWS jobs, and before
 * commit or PREPARE TRANSACTION.  The rows go in with one multi-row heap
 * insert and their index entries, as COPY writes them: no executor, SPI or
 * plan per job.  Nothing touches the network here: if the transaction rolls
 * back the rows vanish with it, and if it commits, a transaction callback
 * sets the relay's latch so that the rows are sent within a moment (the
 * relay also sweeps the table periodically, for rows whose commit announced
 * nothing, such as COMMIT PREPARED).
 *
 * Savepoints: a job kept in memory belongs to the subtransaction that made
 * it.  When that subtransaction commits, its jobs pass to the parent; when
 * it aborts, they are dropped.  A flush writes only the jobs of the current
 * subtransaction (the buffer's tail), in it, so a rollback to a savepoint
 * takes back exactly the jobs made after it, written or not.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "job.h"
#include "jobq.h"
#include "outbox.h"
#include "schema.h"
#include "shmem.h"

#define OUTBOX_FLUSH_ROWS	1000
#define OUTBOX_FLUSH_BYTES	(4 * 1024 * 1024)

/* a job waiting to be written */
typedef struct PendingJob
{
	int			level;			/* transaction nest level it belongs to */
	pg_uuid_t	id;
	char	   *tube;
	char	   *func_name;
	bytea	   *body;
	int64		priority;
	int64		delay;
	int64		ttr;
} PendingJob;

static bool callback_registered = false;
static bool outbox_written = false;
static bool warned_no_relay = false;
static ExecutorEnd_hook_type prev_executor_end = NULL;

/* the transaction's jobs not written yet, in pending_cxt (TopTransactionContext) */
static MemoryContext pending_cxt = NULL;
static PendingJob *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;
static Size pending_bytes = 0;

static void outbox_flush(void);

/* jobq.outbox and the identity sequence of its seq column, looked up once */
static Oid	outbox_relid = InvalidOid;
static Oid	outbox_seqid = InvalidOid;

/* Called after commit by a backend that wrote outbox rows. */
static void
relay_wakeup(void)
{
	Latch	   *latch = shmem_relay_latch();

	if (latch != NULL)
		SetLatch(latch);
}

/* the buffer goes with TopTransactionContext */
static void
pending_forget(void)
{
	pending_cxt = NULL;
	pending = NULL;
	npending = maxpending = 0;
	pending_bytes = 0;
}

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			outbox_flush();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (outbox_written)
				relay_wakeup();
			outbox_written = false;
			pending_forget();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			outbox_written = false;
			pending_forget();
			break;
		default:
			break;
	}
}

/* where the jobs of nest level 'level' and deeper begin (the buffer's tail) */
static int
pending_tail(int level)
{
	int			first = npending;

	while (first > 0 && pending[first - 1].level >= level)
		first--;
	return first;
}

/* forget pending[first..] (written, or rolled back) */
static void
pending_drop_from(int first)
{
	for (int i = first; i < npending; i++)
		pending_bytes -= VARSIZE(pending[i].body) - VARHDRSZ;
	npending = first;
}

/*
 * The subtransaction at the current nest level ends: on commit its jobs
 * pass to the parent, on abort they go (they are the buffer's tail).
 */
static void
outbox_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = pending_tail(level); i < npending; i++)
			pending[i].level = level - 1;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
		pending_drop_from(pending_tail(level));
}

/* every statement's end writes the jobs it made (and that are its level's) */
static void
outbox_executor_end(QueryDesc *queryDesc)
{
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (npending > 0)
		outbox_flush();
}

void
outbox_init(void)
{
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = outbox_executor_end;
}

/* the outbox's columns, in the order outbox_flush fills them */
static const char *const outbox_columns[] = {
	"seq", "id", "tube", "func_name", "body", "priority", "delay", "ttr", "created_at"
};

static int
column_index(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	elog(ERROR, "jobq: jobq.outbox has no column \"%s\"", name);
}

/*
 * Write the jobs of the current nest level (the buffer's tail) into
 * jobq.outbox: one multi-row heap insert, then each row's index entries.
 * seq comes from the column's identity sequence, in the jobs' order.
 */
static void
outbox_flush(void)
{
	int			first = pending_tail(GetCurrentTransactionNestLevel());
	int			col[lengthof(outbox_columns)];
	MemoryContext flush_cxt;
	MemoryContext old;
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot **slots;
	BulkInsertState bistate;
	CommandId	cid;
	Oid			seqid;
	Datum		created = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	int			n;

	n = npending - first;
	if (n == 0)
		return;

	flush_cxt = AllocSetContextCreate(CurrentMemoryContext, "jobq outbox flush",
									  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(flush_cxt);
	relid = get_relname_relid("outbox", get_namespace_oid("jobq", false));
	rel = table_open(relid, RowExclusiveLock);
	/* slots on a copy that is not reference-counted: no resource owner entry per slot */
	desc = CreateTupleDescCopy(RelationGetDescr(rel));
	for (int c = 0; c < lengthof(outbox_columns); c++)
		col[c] = column_index(desc, outbox_columns[c]);
	/* a dropped and re-created extension has another table */
	if (relid != outbox_relid)
	{
		outbox_seqid = getIdentitySequence(relid, col[0] + 1, false);
		outbox_relid = relid;
	}
	seqid = outbox_seqid;
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	bistate = GetBulkInsertState();
	cid = GetCurrentCommandId(true);
	slots = palloc(sizeof(TupleTableSlot *) * n);
	for (int i = 0; i < n; i++)
	{
		PendingJob *job = &pending[first + i];
		TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, table_slot_callbacks(rel));
		Datum	   *v = slot->tts_values;

		ExecClearTuple(slot);
		memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
		v[col[0]] = Int64GetDatum(nextval_internal(seqid, false));
		v[col[1]] = UUIDPGetDatum(&job->id);
		v[col[2]] = CStringGetTextDatum(job->tube);
		v[col[3]] = CStringGetTextDatum(job->func_name);
		v[col[4]] = PointerGetDatum(job->body);
		v[col[5]] = Int64GetDatum(job->priority);
		v[col[6]] = Int64GetDatum(job->delay);
		v[col[7]] = Int64GetDatum(job->ttr);
		v[col[8]] = created;
		for (int c = 0; c < lengthof(outbox_columns); c++)
			slot->tts_isnull[col[c]] = false;
		ExecStoreVirtualTuple(slot);
		slots[i] = slot;
	}
	table_multi_insert(rel, slots, n, cid, 0, bistate);
	for (int i = 0; i < n; i++)
		if (rri->ri_NumIndices > 0)
			(void) ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
	/* newest first: the resource owner forgets its latest entries at once */
	for (int i = n - 1; i >= 0; i--)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(flush_cxt);

	pending_drop_from(first);
	outbox_written = true;
}

/* whether jobq.database is this backend's database; looked up once */
static bool
relay_serves_this_database(void)
{
	static int	serves = -1;

	if (serves < 0)
		serves = jobq_database == NULL ||
			strcmp(jobq_database, get_database_name(MyDatabaseId)) == 0;
	return serves;
}

/*
 * Enqueue one job in the caller's transaction; callers need EXECUTE on
 * jobq_put, not rights on jobq.outbox.  *id is set to a new uuid unless
 * keep_id (a failed job put back keeps its identity).
 */
void
outbox_insert(const JobSpec *spec, pg_uuid_t *id, bool keep_id)
{
	char	   *body;
	size_t		len;
	uint64		max = shmem_available() ? pg_atomic_read_u64(&jobq_shared->max_job_size) : 0;

	if (!keep_id)
		job_new_uuid(id);
	body = job_encode(spec, id, &len);
	if (max > 0 && len > max)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("job body of %zu bytes exceeds the max-job-size of " UINT64_FORMAT " bytes of the beanstalkd server",
						len, max),
				 errhint("Send smaller kwargs, or raise beanstalkd's -z limit.")));

	if (!shmem_available() && !warned_no_relay)
	{
		ereport(WARNING,
				(errmsg("jobq's relay is not running: jobs stay in jobq.outbox"),
				 errdetail("The jobs will be sent to beanstalkd once the relay runs."),
				 errhint("Add jobq to shared_preload_libraries and restart the server.")));
		warned_no_relay = true;
	}
	else if (!warned_no_relay && !relay_serves_this_database())
	{
		ereport(WARNING,
				(errmsg("jobq's relay serves database \"%s\", not this one: jobs stay in jobq.outbox",
						jobq_database),
				 errdetail("Nothing sends the jobs of database \"%s\" to beanstalkd.",
						   get_database_name(MyDatabaseId)),
				 errhint("Set jobq.database to this database and restart the server, or enqueue from database \"%s\".",
						 jobq_database)));
		warned_no_relay = true;
	}
	/* the heap insert comes later, and checks nothing of this */
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot enqueue a job in a read-only transaction"),
				 errhint("Use jobq_put_now, which writes nothing in PostgreSQL.")));

	if (!callback_registered)
	{
		RegisterXactCallback(outbox_xact_callback, NULL);
		RegisterSubXactCallback(outbox_subxact_callback, NULL);
		callback_registered = true;
	}
	if (pending_cxt == NULL)
		pending_cxt = AllocSetContextCreate(TopTransactionContext, "jobq outbox jobs",
											ALLOCSET_DEFAULT_SIZES);
	if (npending == maxpending)
	{
		maxpending = Max(maxpending * 2, 64);
		pending = pending == NULL
			? MemoryContextAlloc(pending_cxt, sizeof(PendingJob) * maxpending)
			: repalloc(pending, sizeof(PendingJob) * maxpending);
	}
	{
		PendingJob *job = &pending[npending];
		MemoryContext old = MemoryContextSwitchTo(pending_cxt);

		job->level = GetCurrentTransactionNestLevel();
		job->id = *id;
		job->tube = pstrdup(spec->tube);
		job->func_name = pstrdup(spec->func_name);
		job->body = palloc(VARHDRSZ + len);
		SET_VARSIZE(job->body, VARHDRSZ + len);
		memcpy(VARDATA(job->body), body, len);
		job->priority = (int64) spec->priority;
		job->delay = (int64) spec->delay;
		job->ttr = (int64) spec->ttr;
		MemoryContextSwitchTo(old);
	}
	npending++;
	pending_bytes += len;
	if (npending >= OUTBOX_FLUSH_ROWS || pending_bytes >= OUTBOX_FLUSH_BYTES)
		outbox_flush();
}
