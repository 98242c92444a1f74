/*
 * relay.c
 *		The relay: moves committed jobs from jobq.outbox into beanstalkd.
 *
 * One batch is one transaction: delete up to BATCH_SIZE of the oldest rows,
 * and no more than BATCH_BYTES of bodies (at least one row, so a big job
 * still goes, alone), RETURNING them; send them as pipelined puts in one
 * write, read every
 * reply, and commit only once beanstalkd has answered for each.  If
 * beanstalkd is unreachable the transaction aborts, the rows are back, and
 * the relay retries with back-off, logging once per outage.  A row that the
 * server refuses for good (JOB_TOO_BIG) goes to jobq.failed in the same
 * transaction instead of blocking the queue.
 *
 * The relay sleeps on its latch, which committing backends set (see
 * outbox.c); it also looks at the table every SWEEP_MS, for rows whose
 * commit woke nobody (COMMIT PREPARED, a relay restart).  Every
 * PRUNE_EVERY_MS it deletes expired rows of jobq.done and jobq.failed in
 * small batches.
 *
 * A crash between the puts and the commit sends those rows again on the
 * next batch: delivery into beanstalkd is at least once, and the job ids
 * let the workers drop the second copy.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "jobq.h"
#include "shmem.h"
#include "worker.h"

#define BATCH_SIZE		1000
#define BATCH_BYTES		(8 * 1024 * 1024)	/* bodies per batch, beyond its first row */
#define REJECT_KWARGS_MAX	(1024 * 1024)	/* a rejected body's kwargs kept up to this */
#define SWEEP_MS		1000
#define PRUNE_EVERY_MS	60000
#define PRUNE_BATCH		10000

typedef struct OutboxRow
{
	int64		seq;
	char	   *tube;
	bytea	   *body;
	int64		priority;
	int64		delay;
	int64		ttr;
	Datum		id;				/* uuid */
	char	   *func_name;
	bool		too_big;		/* over the server's max-job-size: not sent */
} OutboxRow;

static BeanstalkConn *conn;
static SPIPlanPtr pick_plan = NULL;
static SPIPlanPtr take_plan = NULL;
static SPIPlanPtr reject_plan = NULL;

static int
row_cmp(const void *a, const void *b)
{
	const OutboxRow *x = a;
	const OutboxRow *y = b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "jobq: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* a row beanstalkd will never take: record it instead of retrying forever */
static void
reject_row(const OutboxRow *row, const char *sqlstate, const char *message)
{
	Datum		values[8];
	int			rc;

	if (reject_plan == NULL)
	{
		Oid			types[8] = {UUIDOID, TEXTOID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID,
		INT8OID, INT8OID};

		/* kwargs of a body too big to parse in bounded memory are not kept */
		reject_plan = keep_plan(psprintf("INSERT INTO jobq.failed (job_id, tube, func_name, kwargs, "
								"sqlstate, message, priority, ttr, source) "
								"VALUES ($1, $2, $3, "
								"CASE WHEN pg_catalog.octet_length($4) OPERATOR(pg_catalog.<=) %d "
								"THEN pg_catalog.convert_from($4, 'UTF8')::pg_catalog.jsonb "
								"OPERATOR(pg_catalog.->) 'kwargs' END, "
								"$5, $6, $7, $8, 'relay')", REJECT_KWARGS_MAX),
								8, types);
	}
	values[0] = row->id;
	values[1] = CStringGetTextDatum(row->tube);
	values[2] = CStringGetTextDatum(row->func_name);
	values[3] = PointerGetDatum(row->body);
	values[4] = CStringGetTextDatum(sqlstate);
	values[5] = CStringGetTextDatum(message);
	values[6] = Int64GetDatum(row->priority);
	values[7] = Int64GetDatum(row->ttr);
	rc = SPI_execute_plan(reject_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "jobq: recording a rejected job failed: %s", SPI_result_code_string(rc));
	ereport(WARNING,
			(errmsg("jobq relay: beanstalkd at %s refused job for func_name \"%s\" on tube \"%s\": %s",
					conn->server, row->func_name, row->tube, message),
			 errdetail("The job was moved to jobq.failed.")));
}

/*
 * The oldest seqs of the outbox, at most BATCH_SIZE of them and BATCH_BYTES
 * of bodies past the first (octet_length reads the stored size, without
 * detoasting); returns them as an int8[] datum, or 0 when the outbox is
 * empty.
 */
static Datum
pick_batch(void)
{
	Datum	   *seqs;
	int			n = 0;
	int64		bytes = 0;

	if (pick_plan == NULL)
	{
		Oid			type = INT8ARRAYOID;

		pick_plan = keep_plan(psprintf("SELECT seq, pg_catalog.octet_length(body) "
									   "FROM jobq.outbox ORDER BY seq LIMIT %d",
									   BATCH_SIZE), 0, NULL);
		take_plan = keep_plan("DELETE FROM jobq.outbox "
							  "WHERE seq OPERATOR(pg_catalog.=) ANY ($1) "
							  "RETURNING seq, tube, body, priority, delay, ttr, id, func_name",
							  1, &type);
	}
	if (SPI_execute_plan(pick_plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "jobq: reading the outbox failed");
	if (SPI_processed == 0)
		return (Datum) 0;
	seqs = palloc(sizeof(Datum) * SPI_processed);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];
		int64		len = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));

		if (n > 0 && bytes + len > BATCH_BYTES)
			break;
		bytes += len;
		seqs[n++] = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
	}
	return PointerGetDatum(construct_array(seqs, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* Delete the rows pick_batch chose; returns how many, in SPI_tuptable. */
static int
take_batch(void)
{
	Datum		seqs = pick_batch();

	if (seqs == (Datum) 0)
		return 0;
	if (SPI_execute_plan(take_plan, &seqs, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "jobq: taking rows from the outbox failed");
	return (int) SPI_processed;
}

/*
 * Send one batch.  Returns the number of outbox rows it took (0 when the
 * outbox is empty).  Throws on connection trouble; the caller's recovery
 * aborts the transaction, which puts the rows back.
 */
static int
relay_batch(void)
{
	OutboxRow  *rows;
	int			n;
	int			sent = 0;
	int			rejected = 0;
	int64		max_size;
	char		tube[BS_MAX_NAME + 1] = "";

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	/*
	 * Two plain statements, each a walk of the primary key (see
	 * relay_session_settings): pick the oldest seqs, then delete exactly those.
	 * Only the rows this DELETE returns are sent.
	 */
	n = take_batch();
	if (n == 0)
	{
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		return 0;
	}

	pgstat_report_activity(STATE_RUNNING, "jobq relay: sending jobs");
	slot_set_state(RELAY_SLOT, "sending", NULL, NULL, 0);
	rows = palloc(sizeof(OutboxRow) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		rows[i].seq = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		rows[i].tube = SPI_getvalue(tup, desc, 2);
		rows[i].body = DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull));
		rows[i].priority = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		rows[i].delay = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		rows[i].ttr = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		rows[i].id = SPI_getbinval(tup, desc, 7, &isnull);
		rows[i].func_name = SPI_getvalue(tup, desc, 8);
	}
	qsort(rows, n, sizeof(OutboxRow), row_cmp);

	/*
	 * The server's limit, once per connection, for jobq_put's early check;
	 * a row over it is never sent (the server would swallow it only to say
	 * JOB_TOO_BIG, and one too big for our own buffers would fail the
	 * batch for ever).
	 */
	max_size = bs_max_job_size(conn);
	pg_atomic_write_u64(&jobq_shared->max_job_size, (uint64) max_size);

	bs_pipeline_begin(conn);
	for (int i = 0; i < n; i++)
	{
		rows[i].too_big = (int64) VARSIZE_ANY_EXHDR(rows[i].body) > max_size;
		if (rows[i].too_big)
			continue;
		if (strcmp(tube, rows[i].tube) != 0)
		{
			bs_queue_use(conn, rows[i].tube);
			strlcpy(tube, rows[i].tube, sizeof(tube));
		}
		bs_queue_put(conn, (uint64) rows[i].priority, (uint64) rows[i].delay,
					 (uint64) rows[i].ttr, VARDATA_ANY(rows[i].body),
					 VARSIZE_ANY_EXHDR(rows[i].body));
	}
	if (conn->wbuf.len > 0)
		bs_flush(conn);

	tube[0] = '\0';
	for (int i = 0; i < n; i++)
	{
		uint64		id;

		if (rows[i].too_big)
		{
			reject_row(&rows[i], "54000",
					   psprintf("job body of %zu bytes is larger than the server's max-job-size of " INT64_FORMAT " bytes",
								(size_t) VARSIZE_ANY_EXHDR(rows[i].body), max_size));
			rejected++;
			continue;
		}
		if (strcmp(tube, rows[i].tube) != 0)
		{
			bs_read_use_reply(conn);
			strlcpy(tube, rows[i].tube, sizeof(tube));
		}
		switch (bs_read_put_reply(conn, &id))
		{
			case BS_OK:
				sent++;
				break;
			case BS_BURIED:
				/* in beanstalkd, though buried: kick it once memory is back */
				ereport(WARNING,
						(errmsg("jobq relay: beanstalkd at %s is out of memory and buried job " UINT64_FORMAT,
								conn->server, id)));
				sent++;
				break;
			case BS_JOB_TOO_BIG:
				reject_row(&rows[i], "54000",
						   psprintf("job body of %zu bytes is larger than the server's max-job-size",
									(size_t) VARSIZE_ANY_EXHDR(rows[i].body)));
				rejected++;
				break;
			case BS_DRAINING:
				ereport(ERROR,
						(errcode(ERRCODE_CANNOT_CONNECT_NOW),
						 errmsg("beanstalkd at %s is draining and accepts no new jobs",
								conn->server)));
				break;
			default:
				elog(ERROR, "jobq: unexpected put status");
		}
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	{
		JobqWorkerSlot *s = &jobq_shared->slots[RELAY_SLOT];

		SpinLockAcquire(&s->mutex);
		s->succeeded += sent;
		s->failed += rejected;
		SpinLockRelease(&s->mutex);
	}
	return n;
}

/*
 * Delete rows of table (jobq.done or jobq.failed) whose timestamp column is
 * older than retention_s, a bounded batch per transaction.
 */
static void
prune_table(const char *table, const char *id_col, const char *ts_col, int retention_s)
{
	char	   *sql = psprintf("DELETE FROM jobq.%s WHERE %s OPERATOR(pg_catalog.=) ANY (ARRAY("
							   "SELECT %s FROM jobq.%s WHERE %s OPERATOR(pg_catalog.<) "
							   "(pg_catalog.now() OPERATOR(pg_catalog.-) "
							   "pg_catalog.make_interval(secs => %d)) "
							   "ORDER BY %s LIMIT %d))",
							   table, id_col, id_col, table, ts_col, retention_s,
							   ts_col, PRUNE_BATCH);
	uint64		n;

	do
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, psprintf("jobq relay: pruning jobq.%s", table));
		if (SPI_execute(sql, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "jobq: pruning jobq.%s failed", table);
		n = SPI_processed;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		CHECK_FOR_INTERRUPTS();
	} while (n == PRUNE_BATCH);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
prune_expired(void)
{
	prune_table("done", "id", "done_at", jobq_done_retention);
	prune_table("failed", "id", "failed_at", jobq_failed_retention);
}

/*
 * The outbox is a queue table: its statistics say little about what it
 * holds at any moment (typically analyzed while empty, then asked to drain
 * a backlog of millions).  A plan chosen from them can turn a batch into a
 * scan, a sort or a nested loop over the whole backlog, making the relay
 * quadratic.  The relay only ever walks indexes in order, so it tells the
 * planner so for its own session.
 */
static void
relay_session_settings(void)
{
	static const char *const off[] = {
		"enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_hashjoin",
		"enable_mergejoin", "enable_hashagg", "enable_material"
	};

	for (int i = 0; i < lengthof(off); i++)
		SetConfigOption(off[i], "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A relay commit lost in a crash only means its rows are sent again,
	 * which at-least-once delivery allows and job ids make harmless; so the
	 * relay need not wait for its WAL to reach disk.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
}

void
jobq_relay_main(Datum arg)
{
	MemoryContext loop_ctx;
	bool		in_outage = false;
	volatile int backoff_ms = 0;
	volatile TimestampTz last_prune = 0;
	char		servers_now[256];

	worker_startup(RELAY_SLOT, "jobq relay");
	relay_session_settings();
	conn = MemoryContextAllocZero(TopMemoryContext, sizeof(BeanstalkConn));
	bs_init(conn, jobq_servers, TopMemoryContext);
	strlcpy(servers_now, jobq_servers, sizeof(servers_now));
	worker_wait_for_extension(RELAY_SLOT);

	SpinLockAcquire(&jobq_shared->mutex);
	jobq_shared->relay_latch = MyLatch;
	SpinLockRelease(&jobq_shared->mutex);

	loop_ctx = AllocSetContextCreate(TopMemoryContext, "jobq relay loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		volatile int n = 0;

		/* reset before looking, so that a commit from now on wakes us */
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		worker_reload_config();
		if (strcmp(servers_now, jobq_servers) != 0)
		{
			strlcpy(servers_now, jobq_servers, sizeof(servers_now));
			bs_set_server(conn, jobq_servers);
		}
		MemoryContextSwitchTo(loop_ctx);
		MemoryContextReset(loop_ctx);

		PG_TRY();
		{
			n = relay_batch();
			if (in_outage)
				ereport(LOG,
						(errmsg("jobq relay: beanstalkd at %s answers again; sending the outbox",
								conn->server)));
			in_outage = false;
			backoff_ms = 0;
			if (n == 0 && TimestampDifferenceExceeds(last_prune, GetCurrentTimestamp(), PRUNE_EVERY_MS))
			{
				last_prune = GetCurrentTimestamp();
				prune_expired();
			}
		}
		PG_CATCH();
		{
			worker_report_error(RELAY_SLOT, "relay", &in_outage);
			bs_close(conn);
			backoff_ms = Min(Max(backoff_ms * 2, 100), 5000);
			n = 0;
		}
		PG_END_TRY();

		/* table statistics reach autovacuum only when reported (1/s at most) */
		pgstat_report_stat(false);
		if (n > 0)
			continue;
		if (backoff_ms == 0)
		{
			slot_set_state(RELAY_SLOT, "idle", NULL, NULL, 0);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 SWEEP_MS, PG_WAIT_EXTENSION);
		}
		else
		{
			/* commits keep setting the latch: hold to the back-off anyway */
			worker_sleep(backoff_ms);
			if (!worker_extension_ready())
				worker_wait_for_extension(RELAY_SLOT);
		}
	}
}
