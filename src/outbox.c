/*
 * outbox.c
 *		The outbox: a job written in the caller's transaction, and the
 *		relay's wake-up when that transaction commits.
 *
 * The job is encoded and checked at once, then appended to the
 * transaction's pack (see pack.h) and written with the others of its
 * statement as one row of jobq.outbox_packs: at the end of the top-level
 * statement (ExecutorEnd, or the end of a utility statement such as DO,
 * CALL or COPY), every OUTBOX_FLUSH_ROWS jobs or OUTBOX_FLUSH_BYTES, and
 * before commit or PREPARE TRANSACTION.  A job costs a few appended bytes;
 * a write costs one heap tuple (TOASTed when large) and one index entry,
 * whatever the number of jobs in it: no executor, SPI or plan.  Nothing
 * touches the network here: if the transaction rolls back the row vanishes
 * with it, and if it commits, a transaction callback sets the relay's latch
 * so that the jobs are sent within a moment (the relay also sweeps the
 * table periodically, for rows whose commit announced nothing, such as
 * COMMIT PREPARED).
 *
 * A library newer than the installed extension (before ALTER EXTENSION jobq
 * UPDATE, when jobq.outbox_packs does not exist yet) writes a row of the
 * 1.1 table jobq.outbox per job instead.
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
#include "tcop/utility.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "databases.h"
#include "job.h"
#include "jobq.h"
#include "outbox.h"
#include "pack.h"
#include "schema.h"
#include "shmem.h"

#define OUTBOX_FLUSH_ROWS	1000
#define OUTBOX_FLUSH_BYTES	(4 * 1024 * 1024)

/* where a job waiting to be written starts in the pending pack */
typedef struct PendingMark
{
	int			level;			/* transaction nest level it belongs to */
	int			offset;			/* its first byte in pending_pack */
} PendingMark;

static bool callback_registered = false;
static bool outbox_written = false;
static bool warned_no_relay = false;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* how deep in statements we are: 0 at the end of a top-level statement */
static int	statement_nesting = 0;

/*
 * The transaction's jobs not written yet: their pack, and where each
 * starts, in pending_cxt (TopTransactionContext).
 */
static MemoryContext pending_cxt = NULL;
static StringInfoData pending_pack;
static PendingMark *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;

/* write at once when the buffer reaches these (each write moves them on) */
static int	flush_jobs_at = OUTBOX_FLUSH_ROWS;
static int	flush_bytes_at = OUTBOX_FLUSH_BYTES;

static void outbox_flush(void);

PG_FUNCTION_INFO_V1(jobq_check_database);

/* a table of jobq and the identity sequence of its seq column, looked up once */
typedef struct OutboxTable
{
	Oid			relid;
	Oid			seqid;
} OutboxTable;

static OutboxTable packs_table;
static OutboxTable legacy_table;

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
	pending_pack.data = NULL;
	flush_jobs_at = OUTBOX_FLUSH_ROWS;
	flush_bytes_at = OUTBOX_FLUSH_BYTES;
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
	if (first < npending)
	{
		pending_pack.len = pending[first].offset;
		pending_pack.data[pending_pack.len] = '\0';
	}
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

/*
 * The end of every top-level statement writes the jobs it made (those of
 * its nest level).  Statements nested in it (a PL/pgSQL loop's PERFORM
 * jobq_put) leave theirs to it, or to the next 1,000: one write each would
 * cost as much as a row per job.
 */
static void
outbox_executor_run(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
					bool execute_once)
{
	statement_nesting++;
	PG_TRY();
	{
		if (prev_executor_run)
			prev_executor_run(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		statement_nesting--;
	}
	PG_END_TRY();
}

static void
outbox_executor_finish(QueryDesc *queryDesc)
{
	statement_nesting++;
	PG_TRY();
	{
		if (prev_executor_finish)
			prev_executor_finish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		statement_nesting--;
	}
	PG_END_TRY();
}

static void
outbox_executor_end(QueryDesc *queryDesc)
{
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (statement_nesting == 0 && npending > 0)
		outbox_flush();
}

/* a top-level utility statement (DO, CALL, COPY) writes its jobs at its end */
static void
outbox_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					   ProcessUtilityContext context, ParamListInfo params,
					   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	statement_nesting++;
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
								 queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		statement_nesting--;
	}
	PG_END_TRY();
	if (statement_nesting == 0 && npending > 0 && IsTransactionState())
		outbox_flush();
}

void
outbox_init(void)
{
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = outbox_executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = outbox_executor_finish;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = outbox_executor_end;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = outbox_process_utility;
}

/* the 1.1 outbox's columns, in the order write_rows fills them */
static const char *const legacy_columns[] = {
	"seq", "id", "tube", "func_name", "body", "priority", "delay", "ttr", "created_at"
};

/* the columns of jobq.outbox_packs, in the order write_pack fills them */
static const char *const packs_columns[] = {
	"seq", "jobs", "packed", "created_at"
};

static int
column_index(Relation rel, TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	elog(ERROR, "jobq: table jobq.%s has no column \"%s\"", RelationGetRelationName(rel), name);
}

/*
 * Find ncols columns of desc by name, and the identity sequence of the first
 * (seq); a dropped and re-created extension has other tables.
 */
static void
outbox_table_columns(OutboxTable *table, Relation rel, TupleDesc desc,
					 const char *const *names, int ncols, int *col)
{
	for (int c = 0; c < ncols; c++)
		col[c] = column_index(rel, desc, names[c]);
	if (RelationGetRelid(rel) != table->relid)
	{
		table->seqid = getIdentitySequence(RelationGetRelid(rel), col[0] + 1, false);
		table->relid = RelationGetRelid(rel);
	}
}

static TupleTableSlot *
outbox_slot(Relation rel, TupleDesc desc)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, table_slot_callbacks(rel));

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
	return slot;
}

/* One row of jobq.outbox_packs holding the jobs of pending[first..]. */
static void
write_pack(Relation rel, TupleDesc desc, ResultRelInfo *rri, EState *estate,
		   CommandId cid, int first)
{
	int			col[lengthof(packs_columns)];
	int			start = pending[first].offset;
	int			len = pending_pack.len - start;
	bytea	   *packed = palloc(VARHDRSZ + len);
	TupleTableSlot *slot;
	Datum	   *v;

	outbox_table_columns(&packs_table, rel, desc, packs_columns, lengthof(packs_columns), col);
	SET_VARSIZE(packed, VARHDRSZ + len);
	memcpy(VARDATA(packed), pending_pack.data + start, len);
	slot = outbox_slot(rel, desc);
	v = slot->tts_values;
	v[col[0]] = Int64GetDatum(nextval_internal(packs_table.seqid, false));
	v[col[1]] = Int32GetDatum(npending - first);
	v[col[2]] = PointerGetDatum(packed);
	v[col[3]] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	for (int c = 0; c < lengthof(packs_columns); c++)
		slot->tts_isnull[col[c]] = false;
	ExecStoreVirtualTuple(slot);
	/* the table's CHECK and NOT NULL constraints hold for jobq's own writes too */
	if (rel->rd_att->constr != NULL)
		ExecConstraints(rri, slot, estate);
	table_tuple_insert(rel, slot, cid, 0, NULL);
	if (rri->ri_NumIndices > 0)
		(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * One row of the 1.1 table jobq.outbox per job of pending[first..]: one
 * multi-row heap insert, then each row's index entries.
 */
static void
write_rows(Relation rel, TupleDesc desc, ResultRelInfo *rri, EState *estate,
		   CommandId cid, int first)
{
	int			col[lengthof(legacy_columns)];
	int			n = npending - first;
	TupleTableSlot **slots = palloc(sizeof(TupleTableSlot *) * n);
	BulkInsertState bistate = GetBulkInsertState();
	Datum		created = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	PackReader	reader;
	PackedJob	job;

	outbox_table_columns(&legacy_table, rel, desc, legacy_columns, lengthof(legacy_columns), col);
	pack_reader_init(&reader, pending_pack.data + pending[first].offset,
					 pending_pack.len - pending[first].offset);
	for (int i = 0; i < n && pack_next(&reader, &job); i++)
	{
		TupleTableSlot *slot = outbox_slot(rel, desc);
		Datum	   *v = slot->tts_values;
		pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

		*id = job.id;
		v[col[0]] = Int64GetDatum(nextval_internal(legacy_table.seqid, false));
		v[col[1]] = UUIDPGetDatum(id);
		v[col[2]] = CStringGetTextDatum(job.tube);
		v[col[3]] = CStringGetTextDatum(job.func_name);
		v[col[4]] = PointerGetDatum(cstring_to_text_with_len(job.body, job.body_len));
		v[col[5]] = Int64GetDatum(job.priority);
		v[col[6]] = Int64GetDatum(job.delay);
		v[col[7]] = Int64GetDatum(job.ttr);
		v[col[8]] = created;
		for (int c = 0; c < lengthof(legacy_columns); c++)
			slot->tts_isnull[col[c]] = false;
		ExecStoreVirtualTuple(slot);
		if (rel->rd_att->constr != NULL)
			ExecConstraints(rri, slot, estate);
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
}

/*
 * The outbox table, locked: jobq.outbox_packs, or on a 1.1 schema
 * jobq.outbox (*packed says which).  Looked up without the caller's rights,
 * which need no USAGE on schema jobq; and looked up again once locked, in
 * case ALTER EXTENSION jobq UPDATE replaced the table meanwhile (as
 * RangeVarGetRelidExtended does).
 */
static Oid
outbox_lock_table(bool *packed)
{
	for (;;)
	{
		Oid			nsp = get_namespace_oid("jobq", false);
		Oid			relid = get_relname_relid("outbox_packs", nsp);

		*packed = OidIsValid(relid);
		if (!*packed)
			relid = get_relname_relid("outbox", nsp);
		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("jobq's outbox table does not exist"),
					 errhint("Reinstall the extension: DROP EXTENSION jobq; CREATE EXTENSION jobq;")));
		/* takes in the invalidations of whatever committed before the lock */
		LockRelationOid(relid, RowExclusiveLock);
		if (get_relname_relid(*packed ? "outbox_packs" : "outbox",
							  get_namespace_oid("jobq", false)) == relid &&
			get_rel_relkind(relid) == RELKIND_RELATION)
			return relid;
		UnlockRelationOid(relid, RowExclusiveLock);
	}
}

/*
 * Write the jobs of the current nest level (the buffer's tail): into
 * jobq.outbox_packs, or, on a 1.1 schema, into jobq.outbox.
 */
static void
outbox_flush(void)
{
	int			first = pending_tail(GetCurrentTransactionNestLevel());
	MemoryContext flush_cxt;
	MemoryContext old;
	Oid			relid;
	bool		packed;
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	CommandId	cid;

	if (npending - first == 0)
		return;

	flush_cxt = AllocSetContextCreate(CurrentMemoryContext, "jobq outbox flush",
									  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(flush_cxt);
	relid = outbox_lock_table(&packed);
	rel = table_open(relid, NoLock);
	/* slots on a copy that is not reference-counted: no resource owner entry per slot */
	desc = CreateTupleDescCopy(RelationGetDescr(rel));
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	/* no range table: a constraint's error shows the row without column privileges */
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	cid = GetCurrentCommandId(true);
	if (packed)
		write_pack(rel, desc, rri, estate, cid, first);
	else
		write_rows(rel, desc, rri, estate, cid, first);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(flush_cxt);

	pending_drop_from(first);
	outbox_written = true;
	/* jobs of outer levels stay: count the next write's from here */
	flush_jobs_at = npending + OUTBOX_FLUSH_ROWS;
	flush_bytes_at = pending_pack.len + OUTBOX_FLUSH_BYTES;
}

/* whether jobq.database lists this backend's database; looked up when it changes */
static bool
relay_serves_this_database(void)
{
	static char *checked = NULL;	/* jobq.database when last looked at */
	static bool serves;

	if (jobq_database == NULL)
		return true;
	if (checked == NULL || strcmp(checked, jobq_database) != 0)
	{
		serves = databases_serve(get_database_name(MyDatabaseId));
		if (checked != NULL)
			pfree(checked);
		checked = MemoryContextStrdup(TopMemoryContext, jobq_database);
	}
	return serves;
}

/*
 * Warn that no relay will send this database's jobs, if so: jobq is not
 * preloaded, or jobq.database does not list this database.  Returns whether
 * it warned.
 */
static bool
warn_if_unserved(void)
{
	if (!shmem_available())
	{
		ereport(WARNING,
				(errmsg("jobq's relay is not running: jobs stay in jobq.outbox"),
				 errdetail("The jobs will be sent to beanstalkd once the relay runs."),
				 errhint("Add jobq to shared_preload_libraries and restart the server.")));
		return true;
	}
	if (!relay_serves_this_database())
	{
		ereport(WARNING,
				(errmsg("jobq does not serve database \"%s\": jobs stay in jobq.outbox",
						get_database_name(MyDatabaseId)),
				 errdetail("jobq.database lists the databases whose jobs are sent to beanstalkd and run: \"%s\".",
						   jobq_database),
				 errhint("Add this database to jobq.database and reload the configuration.")));
		return true;
	}
	return false;
}

/*
 * jobq.check_database(): the same warning, from CREATE EXTENSION jobq in a
 * database no relay serves.
 */
Datum
jobq_check_database(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!warn_if_unserved());
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
				 errmsg("%s", job_too_big_message(len, (int64) max, NULL)),
				 errhint("Send smaller kwargs, or raise beanstalkd's -z limit.")));

	if (!warned_no_relay)
		warned_no_relay = warn_if_unserved();
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
	{
		MemoryContext old;

		pending_cxt = AllocSetContextCreate(TopTransactionContext, "jobq outbox jobs",
											ALLOCSET_DEFAULT_SIZES);
		old = MemoryContextSwitchTo(pending_cxt);
		initStringInfo(&pending_pack);
		MemoryContextSwitchTo(old);
	}
	if (npending == maxpending)
	{
		maxpending = Max(maxpending * 2, 64);
		pending = pending == NULL
			? MemoryContextAlloc(pending_cxt, sizeof(PendingMark) * maxpending)
			: repalloc(pending, sizeof(PendingMark) * maxpending);
	}
	pending[npending].level = GetCurrentTransactionNestLevel();
	pending[npending].offset = pending_pack.len;
	if (!pack_append(&pending_pack, id, (int64) spec->priority, (int64) spec->delay,
					 (int64) spec->ttr, spec->tube, spec->func_name, body, len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("job body of %zu bytes is too large for the outbox", len)));
	pfree(body);
	npending++;
	if (npending >= flush_jobs_at || pending_pack.len >= flush_bytes_at)
		outbox_flush();
}
