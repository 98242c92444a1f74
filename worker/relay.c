/*
 * relay.c
 *		The relay: moves committed jobs from jobq.outbox into beanstalkd.
 *
 * One batch is one transaction: delete the oldest rows of jobq.outbox_packs
 * (each the jobs of one write of a producer, see outbox.c), up to
 * BATCH_SIZE jobs and BATCH_BYTES (at least one row, so a big pack still
 * goes, alone), RETURNING them; place each job on a server of jobq.servers
 * (pool.c), send every server its jobs as pipelined puts in one write, read
 * every reply, and commit only once a server has answered for each (a
 * server that fails part way: its unanswered jobs go to their next choice,
 * in the same transaction).  Before ALTER EXTENSION jobq UPDATE to 1.2 the rows are those of the
 * 1.1 table jobq.outbox, one per job.  If no
 * server takes the jobs the transaction aborts, the rows are back, and
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

#include <limits.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "failed.h"
#include "job.h"
#include "jobq.h"
#include "pack.h"
#include "pool.h"
#include "schema.h"
#include "shmem.h"
#include "unique.h"
#include "worker.h"

#define BATCH_SIZE		1000
#define BATCH_BYTES		(8 * 1024 * 1024)	/* bodies per batch, beyond its first row */
#define SWEEP_MS		1000
#define PRUNE_EVERY_MS	60000
#define PRUNE_BATCH		10000

/* one job of a batch, from a pack or a 1.1 outbox row */
typedef struct OutboxRow
{
	PackedJob	job;
	char	   *refused;		/* why it is not sent (too big, a bad tube), or NULL */
	const char *refused_code;	/* and the SQLSTATE jobq.failed records */
	int			server;			/* where it goes (pool.c), -1 before placing */
	bool		use_sent;		/* a use went before its put */
	bool		sent;			/* its put went, its reply is to be read */
	bool		done;			/* in beanstalkd, or refused */
	uint64		bs_id;			/* its id on that server, once put */
	TimestampTz enqueued_at;	/* its transaction's start, from the pack */
} OutboxRow;

/* where the batch's rows come from */
typedef struct OutboxSource
{
	bool		packed;			/* jobq.outbox_packs; else the 1.1 jobq.outbox */
	SPIPlanPtr	pick_plan;		/* seq, jobs, bytes of the oldest rows */
	SPIPlanPtr	take_plan;		/* delete them, returning seq and their jobs */
} OutboxSource;

int			jobq_done_retention = 7 * 24 * 3600;
int			jobq_failed_retention = 30 * 24 * 3600;
bool		jobq_track_jobs = false;

static BsPool pool;
static int	my_slot;			/* the relay's slot in shared memory */
static ProcessBackoff backoff;	/* static: survives the main loop's longjmp */
static OutboxSource packs_source = {true};
static OutboxSource legacy_source = {false};
static bool batch_full = false; /* the last batch stopped at a limit: look again at once */

void
relay_init_gucs(void)
{
	DefineCustomIntVariable("jobq.done_retention",
							"How long the ids of completed jobs are kept to detect second deliveries.",
							NULL,
							&jobq_done_retention,
							7 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.failed_retention",
							"How long rows of jobq.failed are kept.",
							"Bodies anyone can put end up there; older rows are pruned by the relay.",
							&jobq_failed_retention,
							30 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("jobq.track_jobs",
							 "Records where the relay put each job, for jobq_status and jobq_cancel.",
							 "Off, a job that left the outbox and has not finished is \"unknown\" to jobq_status.",
							 &jobq_track_jobs,
							 false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
}

static int
seq_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* a row beanstalkd will never take: record it instead of retrying for ever */
static void
reject_row(const OutboxRow *row, const char *sqlstate, const char *message)
{
	FailedJob	f = {0};

	f.job_id = &row->job.id;
	f.tube = row->job.tube;
	f.func_name = row->job.func_name;
	f.kwargs = failed_kwargs_of_body(row->job.body, row->job.body_len);
	f.sqlstate = sqlstate;
	f.message = message;
	f.priority = row->job.priority;
	f.ttr = row->job.ttr;
	f.source = "relay";
	failed_record(&f);
	/* it has failed for good: a unique key it holds is free again */
	if (schema_version() >= JOBQ_SCHEMA_1_5)
		unique_release_job(&row->job.id);
	ereport(WARNING,
			(errmsg("jobq relay: job for func_name \"%s\" on tube \"%s\" cannot go to beanstalkd at %s: %s",
					row->job.func_name, row->job.tube,
					row->server >= 0 ? pool.conns[row->server]->server : pool.setting, message),
			 errdetail("The job was moved to jobq.failed.")));
}

/*
 * A row of jobq.outbox_packs that does not parse (written by hand, or
 * damaged) goes to jobq.failed, its first bytes kept, instead of failing
 * every batch after it.
 */
static void
reject_pack(bytea *packed, const char *error)
{
	FailedJob	f = {0};

	f.raw_body = VARDATA_ANY(packed);
	f.raw_len = VARSIZE_ANY_EXHDR(packed);
	f.sqlstate = "22P03";
	f.message = psprintf("invalid jobq pack: %s", error);
	f.priority = -1;
	f.ttr = -1;
	f.source = "relay";
	failed_record(&f);
	ereport(WARNING,
			(errmsg("jobq relay: a row of jobq.outbox_packs is not a valid pack: %s", error),
			 errdetail("The row was moved to jobq.failed.")));
}

/*
 * Where the outbox is: jobq.outbox_packs, or, before ALTER EXTENSION jobq
 * UPDATE to 1.2, the table jobq.outbox with a row per job.
 */
static OutboxSource *
outbox_source(void)
{
	OutboxSource *src;
	Oid			type = INT8ARRAYOID;

	src = schema_version() >= JOBQ_SCHEMA_1_2 ? &packs_source : &legacy_source;
	if (src->pick_plan != NULL)
		return src;
	/* the batch's seqs change every time, its plan (an index walk) never */
	if (src->packed)
	{
		src->pick_plan = schema_keep_plan(psprintf("SELECT seq, jobs, pg_catalog.octet_length(packed) "
												   "FROM jobq.outbox_packs ORDER BY seq LIMIT %d",
												   BATCH_SIZE), 0, NULL);
		src->take_plan = schema_keep_plan_opts("DELETE FROM jobq.outbox_packs "
											   "WHERE seq OPERATOR(pg_catalog.=) ANY ($1) "
											   "RETURNING seq, packed, created_at", 1, &type,
											   CURSOR_OPT_GENERIC_PLAN);
	}
	else
	{
		src->pick_plan = schema_keep_plan(psprintf("SELECT seq, 1, pg_catalog.octet_length(body) "
												   "FROM jobq.outbox ORDER BY seq LIMIT %d",
												   BATCH_SIZE), 0, NULL);
		src->take_plan = schema_keep_plan_opts("DELETE FROM jobq.outbox "
											   "WHERE seq OPERATOR(pg_catalog.=) ANY ($1) "
											   "RETURNING seq, id, priority, delay, ttr, tube, func_name, body",
											   1, &type, CURSOR_OPT_GENERIC_PLAN);
	}
	return src;
}

/*
 * The oldest rows of the outbox, up to BATCH_SIZE jobs and BATCH_BYTES
 * (octet_length reads the stored size, without detoasting), but at least
 * one row, so that a big pack or job still goes, alone; returns their seqs
 * as an int8[] datum, or 0 when the outbox is empty.
 */
static Datum
pick_batch(OutboxSource *src)
{
	Datum	   *seqs;
	int			n = 0;
	int64		jobs = 0;
	int64		bytes = 0;

	if (SPI_execute_plan(src->pick_plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "jobq: reading the outbox failed");
	batch_full = SPI_processed == BATCH_SIZE;
	if (SPI_processed == 0)
		return (Datum) 0;
	seqs = palloc(sizeof(Datum) * SPI_processed);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];
		int64		njobs = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		int64		len = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));

		if (n > 0 && (jobs + njobs > BATCH_SIZE || bytes + len > BATCH_BYTES))
		{
			batch_full = true;
			break;
		}
		jobs += njobs;
		bytes += len;
		seqs[n++] = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
	}
	return PointerGetDatum(construct_array(seqs, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* the order of the rows DELETE ... RETURNING gave: by seq */
static int *
returned_order(void)
{
	int			n = (int) SPI_processed;
	int64	   *keys = palloc(sizeof(int64) * 2 * n);
	int		   *order = palloc(sizeof(int) * n);

	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		keys[2 * i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												  SPI_tuptable->tupdesc, 1, &isnull));
		keys[2 * i + 1] = i;
	}
	qsort(keys, n, sizeof(int64) * 2, seq_cmp);
	for (int i = 0; i < n; i++)
		order[i] = (int) keys[2 * i + 1];
	return order;
}

/* a 1.1 outbox row as a job */
static void
legacy_row_job(HeapTuple tup, TupleDesc desc, PackedJob *job)
{
	bool		isnull;
	bytea	   *body;

	memcpy(job->id.data, DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull))->data, UUID_LEN);
	job->priority = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	job->delay = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	job->ttr = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
	job->tube = SPI_getvalue(tup, desc, 6);
	job->func_name = SPI_getvalue(tup, desc, 7);
	body = DatumGetByteaPP(SPI_getbinval(tup, desc, 8, &isnull));
	job->body = VARDATA_ANY(body);
	job->body_len = VARSIZE_ANY_EXHDR(body);
}

/*
 * Delete the rows pick_batch chose, and return their jobs in order (*n of
 * them; none when the outbox is empty).
 */
static OutboxRow *
take_batch(int *n)
{
	OutboxSource *src = outbox_source();
	Datum		seqs = pick_batch(src);
	OutboxRow  *rows;
	int		   *order;
	int			max;
	SPITupleTable *taken;
	uint64		ntaken;

	*n = 0;
	if (seqs == (Datum) 0)
		return NULL;
	if (SPI_execute_plan(src->take_plan, &seqs, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "jobq: taking rows from the outbox failed");
	/* kept apart: recording a bad pack runs SPI again (the rows live until SPI_finish) */
	taken = SPI_tuptable;
	ntaken = SPI_processed;
	order = returned_order();
	if (!src->packed)
	{
		rows = palloc0(sizeof(OutboxRow) * ntaken);
		for (uint64 i = 0; i < ntaken; i++)
		{
			legacy_row_job(taken->vals[order[i]], taken->tupdesc, &rows[i].job);
			rows[i].enqueued_at = GetCurrentTransactionStartTimestamp();
		}
		*n = (int) ntaken;
		return rows;
	}
	max = BATCH_SIZE;
	rows = palloc0(sizeof(OutboxRow) * max);
	for (uint64 i = 0; i < ntaken; i++)
	{
		bool		isnull;
		bytea	   *packed = DatumGetByteaPP(SPI_getbinval(taken->vals[order[i]],
														   taken->tupdesc, 2, &isnull));
		PackReader	reader;
		int			first = *n;
		char	   *error = NULL;
		int			rc;

		TimestampTz enqueued_at = DatumGetTimestampTz(SPI_getbinval(taken->vals[order[i]],
																	 taken->tupdesc, 3, &isnull));

		pack_reader_init(&reader, VARDATA_ANY(packed), VARSIZE_ANY_EXHDR(packed));
		for (;;)
		{
			if (*n == max)
			{
				max *= 2;
				rows = repalloc(rows, sizeof(OutboxRow) * max);
			}
			/* a row's placement and state start blank (repalloc does not zero) */
			memset(&rows[*n], 0, sizeof(OutboxRow));
			if ((rc = pack_read(&reader, &rows[*n].job, &error)) <= 0)
				break;
			rows[*n].enqueued_at = enqueued_at;
			(*n)++;
		}
		if (rc < 0)
		{
			/* a row written by hand, or damaged: set aside, not retried for ever */
			reject_pack(packed, error);
			*n = first;
		}
	}
	return rows;
}

/* what one server of the pool is sent, and answers, in a batch */
typedef struct ServerBatch
{
	OutboxRow  *rows;
	int			n;
	int			server;
	int64		max_size;		/* the server's max-job-size */
} ServerBatch;

/*
 * Queue a use (when the tube changes; the tube in use is the connection's,
 * from batch to batch) and a put for every row placed on this server, and
 * send them in one write.  A row over the server's max-job-size is not
 * sent: the server would swallow it only to say JOB_TOO_BIG, and one too
 * big for our own buffers would fail the batch for ever.  Nor is a row
 * whose tube is not a tube name (only a row written by hand has one): it
 * would be a protocol error, or another command.
 */
static BsStatus
send_to_server(BeanstalkConn *conn, void *arg)
{
	ServerBatch *sb = (ServerBatch *) arg;
	char		tube[BS_MAX_NAME + 1];
	BsStatus	st;

	if ((st = bs_max_job_size(conn, &sb->max_size)) != BS_OK ||
		(st = bs_pipeline_begin(conn)) != BS_OK)
		return st;
	strlcpy(tube, conn->used_tube, sizeof(tube));
	for (int i = 0; i < sb->n; i++)
	{
		OutboxRow  *row = &sb->rows[i];
		PackedJob  *job = &row->job;

		if (row->done || row->server != sb->server)
			continue;
		if ((int64) job->body_len > sb->max_size)
		{
			row->refused_code = "54000";
			row->refused = job_too_big_message(job->body_len, sb->max_size, conn->server);
			row->done = true;
			continue;
		}
		row->use_sent = strcmp(tube, job->tube) != 0;
		if (row->use_sent)
		{
			bs_queue_use(conn, job->tube);
			strlcpy(tube, job->tube, sizeof(tube));
		}
		bs_queue_put(conn, (uint64) job->priority, (uint64) job->delay,
					 (uint64) job->ttr, job->body, job->body_len);
		row->sent = true;
	}
	return bs_pipeline_pending(conn) ? bs_flush(conn) : BS_OK;
}

/*
 * Read the server's replies in the order the requests went.  A row is done
 * once its reply is read: an error part way leaves the rest to be placed
 * again (their puts may have gone in: delivery is at least once).
 */
static BsStatus
read_from_server(BeanstalkConn *conn, void *arg)
{
	ServerBatch *sb = (ServerBatch *) arg;

	for (int i = 0; i < sb->n; i++)
	{
		OutboxRow  *row = &sb->rows[i];
		uint64		id;
		BsStatus	st;

		if (!row->sent || row->server != sb->server)
			continue;
		if (row->use_sent && (st = bs_read_use_reply(conn)) != BS_OK)
			return st;
		switch ((st = bs_read_put_reply(conn, &id)))
		{
			case BS_OK:
				row->bs_id = id;
				break;
			case BS_BURIED:
				/* in beanstalkd, though buried: kick it once memory is back */
				ereport(WARNING,
						(errmsg("jobq relay: beanstalkd at %s is out of memory and buried job " UINT64_FORMAT,
								conn->server, id)));
				row->bs_id = id;
				break;
			case BS_JOB_TOO_BIG:
				row->refused_code = "54000";
				row->refused = job_too_big_message(row->job.body_len, -1, conn->server);
				break;
			default:
				/* DRAINING, a lost connection: another server takes the rest */
				return st;
		}
		row->sent = false;
		row->done = true;
	}
	return BS_OK;
}

/*
 * Why a row may not be sent at all, or NULL.  Only a row written by hand
 * (or by SQL, as the upgrade scripts do) can fail this: jobq_put checks the
 * same.  A tube that is no tube name could be another command on the wire,
 * and a number out of beanstalkd's range gets BAD_FORMAT, after which the
 * body would be read as a command: neither may reach the server.
 */
static char *
row_invalid(const PackedJob *job)
{
	if (!bs_tube_name_ok(job->tube))
		return psprintf("invalid tube name \"%s\"", job->tube);
	if (job->priority < 0 || (uint64) job->priority > BS_MAX_UINT32)
		return psprintf("priority " INT64_FORMAT " is out of range", job->priority);
	if (job->delay < 0 || (uint64) job->delay > BS_MAX_UINT32)
		return psprintf("delay of " INT64_FORMAT " s is out of range", job->delay);
	if (job->ttr < 0 || (uint64) job->ttr > BS_MAX_UINT32)
		return psprintf("ttr of " INT64_FORMAT " s is out of range", job->ttr);
	return NULL;
}

/*
 * Every row into beanstalkd, or refused.  Each row is placed on its server
 * (pool.c); the puts of every server go out before any reply is read.  A
 * server that fails part way is left out for the rest of the batch and its
 * unanswered rows are placed again, on their next choice.  Throws when no
 * server is left: the caller's recovery aborts the transaction, which puts
 * the rows back in the outbox.
 */
static void
send_rows(OutboxRow *rows, int n)
{
	uint32		failed = 0;
	uint32		usable = pool_usable_mask(&pool);

	for (int i = 0; i < n; i++)
	{
		rows[i].server = -1;
		rows[i].refused = row_invalid(&rows[i].job);
		if (rows[i].refused != NULL)
		{
			rows[i].refused_code = "22023";
			rows[i].done = true;
		}
	}
	for (;;)
	{
		uint32		used = 0;
		uint32		failed_now = 0;
		ServerBatch sb[BS_MAX_SERVERS];

		for (int i = 0; i < n; i++)
		{
			if (rows[i].done)
				continue;
			if (rows[i].server < 0 || (failed & (1U << rows[i].server)))
				rows[i].server = pool_place(&pool, &rows[i].job.id, usable, failed);
			if (rows[i].server < 0)
				pool_error_all_failed(&pool, "took the job");
			used |= 1U << rows[i].server;
		}
		if (used == 0)
			return;
		for (int s = 0; s < pool.n; s++)
		{
			sb[s] = (ServerBatch) {rows, n, s, 0};
			if ((used & (1U << s)) && !pool_call(&pool, s, send_to_server, &sb[s]))
				failed_now |= 1U << s;
		}
		for (int s = 0; s < pool.n; s++)
		{
			if ((used & ~failed_now & (1U << s)) &&
				!pool_call(&pool, s, read_from_server, &sb[s]))
				failed_now |= 1U << s;
		}
		if (failed_now == 0)
			return;
		failed |= failed_now;
		for (int i = 0; i < n; i++)
			rows[i].sent = false;
	}
}

/*
 * Where each job of the batch went, into jobq.sent (1.5, jobq.track_jobs),
 * in the batch's transaction: one statement for the batch.
 */
static void
record_sent(const OutboxRow *rows, int n)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *servers = palloc(sizeof(Datum) * n);
	Datum	   *bs_ids = palloc(sizeof(Datum) * n);
	Datum	   *tubes = palloc(sizeof(Datum) * n);
	Datum	   *funcs = palloc(sizeof(Datum) * n);
	Datum	   *times = palloc(sizeof(Datum) * n);
	Datum		args[6];
	int			m = 0;

	for (int i = 0; i < n; i++)
	{
		if (rows[i].refused != NULL || !rows[i].done)
			continue;
		ids[m] = UUIDPGetDatum((pg_uuid_t *) &rows[i].job.id);
		servers[m] = CStringGetTextDatum(pool.conns[rows[i].server]->server);
		bs_ids[m] = Int64GetDatum((int64) rows[i].bs_id);
		tubes[m] = CStringGetTextDatum(rows[i].job.tube);
		funcs[m] = CStringGetTextDatum(rows[i].job.func_name);
		times[m] = TimestampTzGetDatum(rows[i].enqueued_at);
		m++;
	}
	if (m == 0)
		return;
	if (plan == NULL)
	{
		Oid			types[6] = {UUIDARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TIMESTAMPTZARRAYOID};

		/* a job sent twice (a crash before the relay's commit) has two rows: the latest counts */
		plan = schema_keep_plan_opts("INSERT INTO jobq.sent (id, server, bs_id, tube, func_name, enqueued_at) "
									 "SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
									 "pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), "
									 "pg_catalog.unnest($6))",
									 6, types, CURSOR_OPT_GENERIC_PLAN);
	}
	args[0] = PointerGetDatum(construct_array(ids, m, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[1] = PointerGetDatum(construct_array(servers, m, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(bs_ids, m, INT8OID, sizeof(int64),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[3] = PointerGetDatum(construct_array(tubes, m, TEXTOID, -1, false, TYPALIGN_INT));
	args[4] = PointerGetDatum(construct_array(funcs, m, TEXTOID, -1, false, TYPALIGN_INT));
	args[5] = PointerGetDatum(construct_array(times, m, TIMESTAMPTZOID, sizeof(TimestampTz),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "jobq: recording where jobs were sent failed");
}

/*
 * Send one batch.  Returns the number of jobs it took (0 when the outbox is
 * empty).
 */
static int
relay_batch(void)
{
	OutboxRow  *rows;
	int			n;
	int			sent = 0;
	int			rejected = 0;
	int64		max_size;

	process_xact_begin();
	rows = take_batch(&n);
	if (n == 0)
	{
		process_xact_end();
		return 0;
	}
	pgstat_report_activity(STATE_RUNNING, "jobq relay: sending jobs");
	slot_set_state(my_slot, JOBQ_STATE_SENDING, NULL, NULL, 0);

	send_rows(rows, n);
	/* what the servers refused goes to jobq.failed, in the same transaction */
	for (int i = 0; i < n; i++)
	{
		if (rows[i].refused != NULL)
		{
			reject_row(&rows[i], rows[i].refused_code, rows[i].refused);
			rejected++;
		}
		else
			sent++;
	}
	if (jobq_track_jobs && sent > 0 && schema_version() >= JOBQ_SCHEMA_1_5)
		record_sent(rows, n);
	/* jobq_put checks the smallest limit early */
	max_size = pool_min_job_size(&pool);
	if (max_size >= 0)
		pg_atomic_write_u64(&jobq_shared->max_job_size, (uint64) max_size);
	process_xact_end();
	/* a refused job has failed: jobq_wait may be waiting for it */
	if (rejected > 0)
		shmem_jobs_finished();
	pgstat_report_activity(STATE_IDLE, NULL);
	slot_add_counts(my_slot, sent, rejected);
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
		process_xact_begin();
		pgstat_report_activity(STATE_RUNNING, psprintf("jobq relay: pruning jobq.%s", table));
		if (SPI_execute(sql, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "jobq: pruning jobq.%s failed", table);
		n = SPI_processed;
		process_xact_end();
		CHECK_FOR_INTERRUPTS();
	} while (n == PRUNE_BATCH);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* unique keys whose job finished and whose period is over */
static void
prune_finished_keys(void)
{
	process_xact_begin();
	if (SPI_execute("DELETE FROM jobq.unique_keys WHERE finished "
					"AND expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "jobq: pruning jobq.unique_keys failed");
	process_xact_end();
}

static void
prune_expired(void)
{
	bool		with_1_5;

	/* the schema is read in a transaction, as every catalog lookup */
	process_xact_begin();
	with_1_5 = schema_version() >= JOBQ_SCHEMA_1_5;
	process_xact_end();
	prune_table("done", "id", "done_at", jobq_done_retention);
	prune_table("failed", "id", "failed_at", jobq_failed_retention);
	if (with_1_5)
	{
		prune_table("sent", "id", "sent_at", jobq_done_retention);
		prune_finished_keys();
	}
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
	 * The disabled plan types add their penalty to the cost of any plan that
	 * still needs one (pruning jobq.done and jobq.failed), which would then
	 * pass jit_above_cost: compiling those small statements is wasted work.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A relay commit lost in a crash only means its rows are sent again,
	 * which at-least-once delivery allows and job ids make harmless; so the
	 * relay need not wait for its WAL to reach disk.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
}

/* One pass: a batch, or, when the outbox is empty, pruning now and then. */
static int
relay_iteration(void)
{
	static TimestampTz last_prune = 0;
	int			n = relay_batch();

	process_succeeded(&backoff);
	if (TimestampDifferenceExceeds(last_prune, GetCurrentTimestamp(), PRUNE_EVERY_MS))
	{
		last_prune = GetCurrentTimestamp();
		prune_expired();
	}
	return n;
}

/* Nothing more to send: sleep until a commit sets the latch, or the sweep. */
static void
relay_wait(void)
{
	if (backoff.backoff_ms > 0)
	{
		/* commits keep setting the latch: hold to the back-off anyway */
		process_back_off(my_slot, &backoff);
		return;
	}
	slot_set_state(my_slot, JOBQ_STATE_IDLE, NULL, NULL, 0);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 SWEEP_MS, PG_WAIT_EXTENSION);
}

void
jobq_relay_main(Datum arg)
{
	MemoryContext loop_ctx;

	my_slot = DatumGetInt32(arg);
	worker_startup(my_slot, "jobq relay");
	relay_session_settings();
	pool_init(&pool, jobq_servers, "relay", TopMemoryContext);
	worker_wait_for_extension(my_slot);
	shmem_set_relay_latch(slot_db(my_slot), MyLatch);

	loop_ctx = AllocSetContextCreate(TopMemoryContext, "jobq relay loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		volatile int n = 0;

		/* reset before looking, so that a commit from now on wakes us */
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		worker_reload_config();
		(void) pool_set_servers(&pool, jobq_servers);
		MemoryContextSwitchTo(loop_ctx);
		MemoryContextReset(loop_ctx);

		PG_TRY();
		{
			n = relay_iteration();
		}
		PG_CATCH();
		{
			process_recover(my_slot, "relay", &backoff);
			for (int i = 0; i < pool.n; i++)
				bs_close(pool.conns[i]);
			n = 0;
		}
		PG_END_TRY();

		/* table statistics reach autovacuum only when reported (1/s at most) */
		pgstat_report_stat(false);

		/*
		 * A batch that stopped at a limit leaves rows behind: look again at
		 * once.  Otherwise it took every row committed before the latch was
		 * reset above, and a commit since then has set it: the wait returns
		 * at once if there is more, without a transaction to find nothing.
		 */
		if (n == 0 || !batch_full)
			relay_wait();
	}
}
