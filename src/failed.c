/*
 * failed.c
 *		jobq.failed: every write to it, and putting failed jobs back.
 *
 * A row is written by a worker when a job runs out of attempts or may not
 * run at all (unreadable body, no handler, wrong tube, bad signature, ...),
 * and by the relay when beanstalkd will never take a row of the outbox.
 * It keeps what jobq_retry_failed needs to put the job back as it was sent:
 * its id, tube, func_name, kwargs, priority and ttr.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "beanstalk.h"
#include "failed.h"
#include "job.h"
#include "jobq.h"
#include "outbox.h"
#include "pool.h"
#include "producer_acl.h"
#include "schema.h"

#define RAW_BODY_KEEP		2048	/* bytes of an unreadable body kept */
#define KWARGS_PARSE_MAX	(1024 * 1024)	/* a body's kwargs kept up to this */

PG_FUNCTION_INFO_V1(jobq_retry_failed);
PG_FUNCTION_INFO_V1(jobq_retry_failed_tube);

static SPIPlanPtr insert_plan = NULL;

/* untrusted bytes as text: a printable prefix */
static char *
printable_prefix(const char *body, size_t len)
{
	size_t		n = Min(len, RAW_BODY_KEEP);
	char	   *raw = palloc(n + 1);

	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) body[i];

		raw[i] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
	}
	raw[n] = '\0';
	return raw;
}

/*
 * The kwargs of a body jobq wrote itself (UTF-8 JSON), or NULL for one too
 * big to parse in bounded memory.
 */
Jsonb *
failed_kwargs_of_body(const char *body, size_t len)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext parse;
	Jsonb	   *kwargs = NULL;
	JsonbValue *kw;

	if (len > KWARGS_PARSE_MAX)
		return NULL;
	/* the parse's garbage goes at once: a batch may reject many bodies */
	parse = AllocSetContextCreate(caller, "jobq rejected body", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(parse);
	kw = job_jsonb_get(DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														  CStringGetDatum(pg_any_to_server(pnstrdup(body, len),
																						   len, PG_UTF8)))),
					   "kwargs");
	MemoryContextSwitchTo(caller);
	if (kw != NULL)
		kwargs = JsonbValueToJsonb(kw);
	MemoryContextDelete(parse);
	return kwargs;
}

/* Write one row of jobq.failed, in the caller's transaction and SPI connection. */
void
failed_record(const FailedJob *f)
{
	static bool plan_has_server = false;
	bool		has_server = (schema_version() >= JOBQ_SCHEMA_1_3);
	Datum		values[13];
	char		nulls[13];
	int			rc;

	if (insert_plan != NULL && plan_has_server != has_server)
	{
		SPI_freeplan(insert_plan);
		insert_plan = NULL;
	}
	if (insert_plan == NULL)
	{
		Oid			types[13] = {UUIDOID, INT8OID, TEXTOID, TEXTOID, JSONBOID, TEXTOID,
		TEXTOID, TEXTOID, INT4OID, INT8OID, INT8OID, TEXTOID, TEXTOID};

		insert_plan = schema_keep_plan(has_server ?
									   "INSERT INTO jobq.failed (job_id, bs_id, tube, func_name, "
									   "kwargs, raw_body, sqlstate, message, attempts, priority, "
									   "ttr, source, server) "
									   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)" :
									   "INSERT INTO jobq.failed (job_id, bs_id, tube, func_name, "
									   "kwargs, raw_body, sqlstate, message, attempts, priority, "
									   "ttr, source) "
									   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
									   has_server ? 13 : 12, types);
		plan_has_server = has_server;
	}
	memset(nulls, ' ', sizeof(nulls));
	values[0] = f->job_id ? UUIDPGetDatum((pg_uuid_t *) f->job_id) : (Datum) 0;
	nulls[0] = f->job_id ? ' ' : 'n';
	values[1] = Int64GetDatum((int64) f->bs_id);
	nulls[1] = f->bs_id ? ' ' : 'n';
	values[2] = f->tube ? CStringGetTextDatum(f->tube) : (Datum) 0;
	nulls[2] = f->tube ? ' ' : 'n';
	values[3] = f->func_name ? CStringGetTextDatum(f->func_name) : (Datum) 0;
	nulls[3] = f->func_name ? ' ' : 'n';
	values[4] = f->kwargs ? JsonbPGetDatum(f->kwargs) : (Datum) 0;
	nulls[4] = f->kwargs ? ' ' : 'n';
	values[5] = f->raw_body ? CStringGetTextDatum(printable_prefix(f->raw_body, f->raw_len)) : (Datum) 0;
	nulls[5] = f->raw_body ? ' ' : 'n';
	values[6] = CStringGetTextDatum(f->sqlstate);
	values[7] = CStringGetTextDatum(f->message);
	values[8] = Int32GetDatum(f->attempts);
	values[9] = Int64GetDatum(f->priority);
	nulls[9] = f->priority >= 0 ? ' ' : 'n';
	values[10] = Int64GetDatum(f->ttr);
	nulls[10] = f->ttr >= 0 ? ' ' : 'n';
	values[11] = CStringGetTextDatum(f->source);
	values[12] = f->server ? CStringGetTextDatum(f->server) : (Datum) 0;
	nulls[12] = f->server ? ' ' : 'n';
	rc = SPI_execute_plan(insert_plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "jobq: recording a failed job failed: %s", SPI_result_code_string(rc));
}

/*
 * Put the failure in row 'row' of tt back into its tube through
 * the outbox (so it happens only if the caller commits), keeping its job id.
 * Columns: id, job_id, bs_id, tube, func_name, kwargs, priority, ttr, server.
 */
static void
retry_row(Oid caller, SPITupleTable *tt, uint64 row)
{
	HeapTuple	tup = tt->vals[row];
	TupleDesc	desc = tt->tupdesc;
	bool		isnull;
	JobSpec		spec = {0};
	pg_uuid_t	id;
	Datum		d;
	int64		failed_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	Datum		bs_id;
	bool		bs_id_null;
	char	   *server;
	BeanstalkConn *conn;

	spec.tube = SPI_getvalue(tup, desc, 4);
	spec.func_name = SPI_getvalue(tup, desc, 5);
	d = SPI_getbinval(tup, desc, 6, &isnull);
	if (spec.tube == NULL || spec.func_name == NULL || isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("failed job " INT64_FORMAT " cannot be retried", failed_id),
				 errdetail("Its body was not a valid jobq job.")));
	spec.kwargs = DatumGetJsonbP(d);
	/* a hand-written row may hold any text: names are checked first */
	job_check_tube(spec.tube);
	job_check_func_name(spec.func_name);
	acl_check_producer(caller, spec.tube, spec.func_name);
	d = SPI_getbinval(tup, desc, 7, &isnull);
	/* the job's own priority and ttr; rows written by 1.0 have none */
	spec.priority = isnull ? (uint64) jobq_default_priority : (uint64) DatumGetInt64(d);
	spec.delay = 0;
	d = SPI_getbinval(tup, desc, 8, &isnull);
	spec.ttr = isnull ? (uint64) jobq_default_ttr : (uint64) DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	if (isnull)
		job_new_uuid(&id);
	else
		memcpy(&id, DatumGetUUIDP(d), sizeof(id));
	outbox_insert(&spec, &id, true);

	/* the buried original, if it is still there and still this job */
	bs_id = SPI_getbinval(tup, desc, 3, &bs_id_null);
	server = SPI_getvalue(tup, desc, 9);
	conn = bs_id_null ? NULL : pool_conn_of(pool_backend(), server);
	if (conn != NULL)
	{
		BsJob		job;
		JobBody		body;
		char	   *error;

		/* best effort: a server that does not answer keeps its buried copy */
		if (bs_peek_job(conn, (uint64) DatumGetInt64(bs_id), &job) == BS_OK &&
			job_decode(job.body, job.len, &body, &error) && body.has_id &&
			memcmp(&body.id, &id, sizeof(id)) == 0)
		{
			bool		deleted = bs_delete(conn, job.id) == BS_OK;

			(void) deleted;		/* gone since, or the server failed: it stays */
		}
	}
}

static int64
retry_where(const char *where, Datum arg, Oid argtype)
{
	Oid			caller = GetUserId();
	OwnerContext owner;
	int			rc;
	int64		n;

	SPI_connect();
	schema_become_owner(&owner);
	rc = SPI_execute_with_args(psprintf("DELETE FROM jobq.failed WHERE %s "
										"RETURNING id, job_id, bs_id, tube, func_name, kwargs, priority, ttr, %s",
										where, (schema_version() >= JOBQ_SCHEMA_1_3) ? "server" : "NULL::pg_catalog.text"),
							   1, &argtype, &arg, NULL, false, 0);
	if (rc != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "jobq: failed-job lookup failed: %s", SPI_result_code_string(rc));
	n = (int64) SPI_processed;
	schema_restore_user(&owner);
	{
		SPITupleTable *tt = SPI_tuptable;

		for (uint64 i = 0; i < (uint64) n; i++)
			retry_row(caller, tt, i);
	}
	SPI_finish();
	return n;
}

/* jobq_retry_failed(failed_id bigint) -> whether there was such a row */
Datum
jobq_retry_failed(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(retry_where("id OPERATOR(pg_catalog.=) $1", PG_GETARG_DATUM(0), INT8OID) > 0);
}

/* jobq_retry_failed(tube text) -> number of jobs put back */
Datum
jobq_retry_failed_tube(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(retry_where("tube OPERATOR(pg_catalog.=) $1", PG_GETARG_DATUM(0), TEXTOID));
}

