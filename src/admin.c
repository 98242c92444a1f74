/*
 * admin.c
 *		Introspection and administration of the beanstalkd server from SQL:
 *		stats, tubes, jobs, peek, kick, delete, pause.  All of them go over
 *		the backend's persistent connection; EXECUTE on them is revoked
 *		from PUBLIC by the install script.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "job.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(jobq_stats);
PG_FUNCTION_INFO_V1(jobq_tubes);
PG_FUNCTION_INFO_V1(jobq_job);
PG_FUNCTION_INFO_V1(jobq_peek);
PG_FUNCTION_INFO_V1(jobq_peek_ready);
PG_FUNCTION_INFO_V1(jobq_peek_delayed);
PG_FUNCTION_INFO_V1(jobq_peek_buried);
PG_FUNCTION_INFO_V1(jobq_kick);
PG_FUNCTION_INFO_V1(jobq_kick_job);
PG_FUNCTION_INFO_V1(jobq_delete);
PG_FUNCTION_INFO_V1(jobq_pause_tube);
PG_FUNCTION_INFO_V1(jobq_worker_status);

static uint64
job_id_arg(FunctionCallInfo fcinfo, int n)
{
	int64		id = PG_GETARG_INT64(n);

	if (id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job id " INT64_FORMAT " is out of range", id),
				 errdetail("beanstalkd job ids are positive.")));
	return (uint64) id;
}

static char *
tube_arg(FunctionCallInfo fcinfo, int n)
{
	char	   *tube = text_to_cstring(PG_GETARG_TEXT_PP(n));

	job_check_tube(tube);
	return tube;
}

/* Each "key: value" line of a stats document, in order. */
typedef void (*yaml_pair_cb) (const char *key, const char *value, void *arg);

static void
yaml_foreach(char *yaml, yaml_pair_cb cb, void *arg)
{
	char	   *save = NULL;

	for (char *line = strtok_r(yaml, "\n", &save); line != NULL;
		 line = strtok_r(NULL, "\n", &save))
	{
		char	   *sep = strstr(line, ": ");

		if (strcmp(line, "---") == 0 || sep == NULL)
			continue;
		*sep = '\0';
		cb(line, sep + 2, arg);
	}
}

static void
stats_row(const char *key, const char *value, void *arg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	values[0] = CStringGetTextDatum(key);
	values[1] = CStringGetTextDatum(value);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* jobq_stats() -> setof (name text, value text) */
Datum
jobq_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	size_t		len;
	char	   *yaml;

	InitMaterializedSRF(fcinfo, 0);
	yaml = bs_stats_server(bs_backend_conn(), &len);
	if (yaml != NULL)
		yaml_foreach(yaml, stats_row, rsinfo);
	return (Datum) 0;
}

static int64
yaml_int(const char *yaml, const char *key)
{
	char	   *v = bs_yaml_get(yaml, key);
	char	   *end;
	int64		n;

	if (v == NULL)
		return 0;
	n = strtoll(v, &end, 10);
	return *end == '\0' ? n : 0;
}

/*
 * jobq_tubes() -> setof (tube, ready, reserved, delayed, buried, urgent,
 * total, using, watching, waiting, pause, pause_time_left)
 */
Datum
jobq_tubes(PG_FUNCTION_ARGS)
{
	static const char *const counters[] = {
		"current-jobs-ready", "current-jobs-reserved", "current-jobs-delayed",
		"current-jobs-buried", "current-jobs-urgent", "total-jobs",
		"current-using", "current-watching", "current-waiting"
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BeanstalkConn *conn = bs_backend_conn();
	size_t		len;
	char	   *list;
	char	   *save = NULL;
	List	   *tubes = NIL;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	list = bs_list_tubes(conn, &len);
	if (list == NULL)
		return (Datum) 0;
	for (char *line = strtok_r(list, "\n", &save); line != NULL;
		 line = strtok_r(NULL, "\n", &save))
	{
		if (strncmp(line, "- ", 2) == 0)
			tubes = lappend(tubes, line + 2);
	}

	foreach(lc, tubes)
	{
		char	   *tube = lfirst(lc);
		char	   *yaml;
		Datum		values[12];
		bool		nulls[12] = {0};
		int			i;

		if (!bs_tube_name_ok(tube))
			continue;
		yaml = bs_stats_tube(conn, tube, &len);
		if (yaml == NULL)
			continue;			/* vanished since list-tubes */
		values[0] = CStringGetTextDatum(tube);
		for (i = 0; i < lengthof(counters); i++)
			values[i + 1] = Int64GetDatum(yaml_int(yaml, counters[i]));
		values[10] = IntervalPGetDatum(DatumGetIntervalP(
														 DirectFunctionCall7(make_interval, 0, 0, 0, 0, 0, 0,
																			 Float8GetDatum((double) yaml_int(yaml, "pause")))));
		values[11] = IntervalPGetDatum(DatumGetIntervalP(
														 DirectFunctionCall7(make_interval, 0, 0, 0, 0, 0, 0,
																			 Float8GetDatum((double) yaml_int(yaml, "pause-time-left")))));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * jobq_job(id) -> (id, tube, state, priority, age, delay, ttr, time_left,
 * reserves, timeouts, releases, buries, kicks), NULL if there is no such job
 */
Datum
jobq_job(PG_FUNCTION_ARGS)
{
	static const char *const ints[] = {
		"pri", "age", "delay", "ttr", "time-left", "reserves", "timeouts",
		"releases", "buries", "kicks"
	};
	uint64		id = job_id_arg(fcinfo, 0);
	TupleDesc	tupdesc;
	size_t		len;
	char	   *yaml;
	Datum		values[13];
	bool		nulls[13] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "jobq: return type must be a row type");
	yaml = bs_stats_job(bs_backend_conn(), id, &len);
	if (yaml == NULL)
		PG_RETURN_NULL();
	values[0] = Int64GetDatum((int64) id);
	values[1] = CStringGetTextDatum(bs_yaml_get(yaml, "tube") ? bs_yaml_get(yaml, "tube") : "");
	values[2] = CStringGetTextDatum(bs_yaml_get(yaml, "state") ? bs_yaml_get(yaml, "state") : "");
	for (int i = 0; i < lengthof(ints); i++)
		values[i + 3] = Int64GetDatum(yaml_int(yaml, ints[i]));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * The body as jsonb if it is valid JSON text in UTF-8 that PostgreSQL can
 * store, NULL otherwise.  Bodies come from any producer: never throw.
 */
static Jsonb *
body_as_jsonb(const char *body, size_t len)
{
	char	   *text;
	JsonLexContext *lex;

	if (!pg_verify_mbstr(PG_UTF8, body, len, true))
		return NULL;
	text = pg_any_to_server(body, len, PG_UTF8);
	lex = makeJsonLexContextCstringLen(text, strlen(text), GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
		return NULL;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* (id, body jsonb, raw bytea) of a peeked job, or NULL */
static Datum
peek_result(FunctionCallInfo fcinfo, bool found, BsJob *job)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {0};
	Jsonb	   *jb;
	bytea	   *raw;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "jobq: return type must be a row type");
	if (!found)
		PG_RETURN_NULL();
	values[0] = Int64GetDatum((int64) job->id);
	jb = body_as_jsonb(job->body, job->len);
	if (jb == NULL)
		nulls[1] = true;
	else
		values[1] = JsonbPGetDatum(jb);
	raw = palloc(VARHDRSZ + job->len);
	SET_VARSIZE(raw, VARHDRSZ + job->len);
	memcpy(VARDATA(raw), job->body, job->len);
	values[2] = PointerGetDatum(raw);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* jobq_peek(id) -> (id, body jsonb, raw bytea) */
Datum
jobq_peek(PG_FUNCTION_ARGS)
{
	BsJob		job;
	bool		found = bs_peek_job(bs_backend_conn(), job_id_arg(fcinfo, 0), &job);

	return peek_result(fcinfo, found, &job);
}

static Datum
peek_in_tube(FunctionCallInfo fcinfo, BsPeekState state)
{
	BeanstalkConn *conn = bs_backend_conn();
	BsJob		job;
	bool		found;

	bs_use(conn, tube_arg(fcinfo, 0));
	found = bs_peek_state(conn, state, &job);
	return peek_result(fcinfo, found, &job);
}

Datum
jobq_peek_ready(PG_FUNCTION_ARGS)
{
	return peek_in_tube(fcinfo, BS_PEEK_READY);
}

Datum
jobq_peek_delayed(PG_FUNCTION_ARGS)
{
	return peek_in_tube(fcinfo, BS_PEEK_DELAYED);
}

Datum
jobq_peek_buried(PG_FUNCTION_ARGS)
{
	return peek_in_tube(fcinfo, BS_PEEK_BURIED);
}

/* jobq_kick(tube, bound) -> number of jobs kicked */
Datum
jobq_kick(PG_FUNCTION_ARGS)
{
	char	   *tube = tube_arg(fcinfo, 0);
	int64		bound = PG_GETARG_INT64(1);
	BeanstalkConn *conn = bs_backend_conn();

	if (bound <= 0 || (uint64) bound > BS_MAX_UINT32)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kick bound " INT64_FORMAT " is out of range", bound),
				 errdetail("The bound is between 1 and 4294967295.")));
	bs_use(conn, tube);
	PG_RETURN_INT64((int64) bs_kick(conn, (uint64) bound));
}

Datum
jobq_kick_job(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(bs_kick_job(bs_backend_conn(), job_id_arg(fcinfo, 0)));
}

Datum
jobq_delete(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(bs_delete(bs_backend_conn(), job_id_arg(fcinfo, 0)));
}

/* jobq_pause_tube(tube, for) -> false if the tube does not exist */
Datum
jobq_pause_tube(PG_FUNCTION_ARGS)
{
	char	   *tube = tube_arg(fcinfo, 0);
	uint64		secs = job_seconds_arg(PG_ARGISNULL(1), PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1),
									   "pause", 0, 0);

	PG_RETURN_BOOL(bs_pause_tube(bs_backend_conn(), tube, secs));
}

/*
 * jobq_worker_status() -> one row per running jobq process of this
 * database (the view jobq.workers).  Empty when jobq is not preloaded.
 */
Datum
jobq_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (!shmem_available())
		return (Datum) 0;
	for (int i = 0; i < jobq_shared->nslots; i++)
	{
		JobqWorkerSlot s;
		Datum		values[12];
		bool		nulls[12] = {0};

		slot_read(i, &s);
		if (s.pid == 0 || s.dboid != MyDatabaseId)
			continue;
		values[0] = Int32GetDatum(slot_number(i));
		values[1] = CStringGetTextDatum(s.kind == JOBQ_KIND_RELAY ? "relay" : "worker");
		values[2] = Int32GetDatum(s.pid);
		values[3] = CStringGetTextDatum(jobq_state_names[s.state]);
		values[4] = CStringGetTextDatum(s.tube);
		nulls[4] = s.tube[0] == '\0';
		values[5] = CStringGetTextDatum(s.func_name);
		nulls[5] = s.func_name[0] == '\0';
		values[6] = Int64GetDatum((int64) s.job_id);
		nulls[6] = s.job_id == 0;
		values[7] = TimestampTzGetDatum(s.since);
		values[8] = Int64GetDatum((int64) s.succeeded);
		values[9] = Int64GetDatum((int64) s.failed);
		values[10] = CStringGetTextDatum(s.last_error);
		nulls[10] = s.last_error[0] == '\0';
		values[11] = TimestampTzGetDatum(s.last_error_at);
		nulls[11] = s.last_error_at == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
