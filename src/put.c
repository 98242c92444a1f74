/*
 * put.c
 *		jobq_put, which enqueues a job in the caller's transaction through
 *		the outbox, and jobq_put_now, which sends it to beanstalkd at once
 *		over the backend's persistent connection; and the argument checks
 *		they share with the enqueue trigger.
 */
#include "postgres.h"

#include <limits.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "jobq.h"
#include "settings.h"
#include "job.h"
#include "outbox.h"
#include "pool.h"
#include "producer_acl.h"
#include "put.h"
#include "unique.h"

int			jobq_default_priority = 1024;
int			jobq_default_delay = 0;
int			jobq_default_ttr = 60;

PG_FUNCTION_INFO_V1(jobq_put);
PG_FUNCTION_INFO_V1(jobq_put_now);
PG_FUNCTION_INFO_V1(jobq_put_now_at);

void
put_init_gucs(void)
{
	DefineCustomIntVariable("jobq.default_priority",
							"Priority of jobs whose priority is not given.",
							"0 is the most urgent.",
							&jobq_default_priority,
							1024, 0, INT_MAX,
							PGC_USERSET, 0, jobq_check_int_setting, NULL, NULL);
	DefineCustomIntVariable("jobq.default_delay",
							"Delay of jobs whose delay is not given.",
							NULL,
							&jobq_default_delay,
							0, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_S, jobq_check_int_setting, NULL, NULL);
	DefineCustomIntVariable("jobq.default_ttr",
							"Time to run of jobs whose ttr is not given.",
							NULL,
							&jobq_default_ttr,
							60, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_S, jobq_check_int_setting, NULL, NULL);
}

/*
 * Arguments (tube, func_name, kwargs, priority, delay, ttr), checked; NULL
 * options mean the jobq.default_* settings.
 */
void
put_spec_from_args(FunctionCallInfo fcinfo, JobSpec *spec)
{
	spec->tube = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	spec->func_name = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	spec->kwargs = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	job_check_tube(spec->tube);
	job_check_func_name(spec->func_name);
	job_check_kwargs(spec->kwargs);
	acl_check_producer(GetUserId(), spec->tube, spec->func_name);
	spec->priority = job_priority_arg(PG_ARGISNULL(3) ? jobq_default_priority : PG_GETARG_INT64(3));
	spec->delay = job_seconds_arg(PG_ARGISNULL(4), PG_ARGISNULL(4) ? NULL : PG_GETARG_INTERVAL_P(4),
								  "delay", 0, jobq_default_delay);
	spec->ttr = job_seconds_arg(PG_ARGISNULL(5), PG_ARGISNULL(5) ? NULL : PG_GETARG_INTERVAL_P(5),
								"ttr", 1, jobq_default_ttr);
}

static Interval *
options_interval(Jsonb *options, const char *key, bool *found)
{
	JsonbValue *v = job_jsonb_get(options, key);

	*found = (v != NULL && v->type != jbvNull);
	if (!*found)
		return NULL;
	if (v->type == jbvNumeric)
	{
		char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out,
															NumericGetDatum(v->val.numeric)));

		return DatumGetIntervalP(DirectFunctionCall3(interval_in,
													 CStringGetDatum(psprintf("%s s", s)),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
	}
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an interval or a number of seconds", key)));
	return DatumGetIntervalP(DirectFunctionCall3(interval_in,
												 CStringGetDatum(pnstrdup(v->val.string.val,
																		  v->val.string.len)),
												 ObjectIdGetDatum(InvalidOid),
												 Int32GetDatum(-1)));
}

/* the options' keys are known ones: a typo does not go unnoticed */
static void
check_option_keys(Jsonb *options)
{
	static const char *const known[] = {"priority", "delay", "ttr", "unique_key", "unique_for"};
	JsonbIterator *it = JsonbIteratorInit(&options->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		bool		ok = false;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		for (int i = 0; i < lengthof(known); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\"", key),
					 errhint("The options are \"priority\", \"delay\", \"ttr\", \"unique_key\" and \"unique_for\".")));
	}
}

/* "unique_key" (a column's name) and "unique_for" (its period) */
static void
unique_options(Jsonb *options, char **unique_column, Interval **unique_for)
{
	JsonbValue *k = job_jsonb_get(options, "unique_key");
	bool		found;
	Interval   *iv;

	if (k != NULL && k->type != jbvNull)
	{
		if (k->type != jbvString || k->val.string.len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"unique_key\" must name a column")));
		*unique_column = pnstrdup(k->val.string.val, k->val.string.len);
	}
	iv = options_interval(options, "unique_for", &found);
	if (!found)
		return;
	if (*unique_column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unique_for needs a unique_key")));
	if (job_interval_usecs(iv) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unique_for must be positive")));
	*unique_for = iv;
}

/*
 * Options given as a JSON object {"priority": n, "delay": "5 s", "ttr": 30,
 * "unique_key": "column", "unique_for": "1 h"} (the trigger's); unknown keys
 * are an error.  The unique key's column name and period are returned as
 * given (NULL if absent).
 */
void
put_spec_from_options(JobSpec *spec, Jsonb *options, char **unique_column, Interval **unique_for)
{
	JsonbValue *p;
	bool		found;
	Interval   *iv;

	spec->priority = (uint64) jobq_default_priority;
	spec->delay = (uint64) jobq_default_delay;
	spec->ttr = (uint64) jobq_default_ttr;
	*unique_column = NULL;
	*unique_for = NULL;
	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	check_option_keys(options);

	p = job_jsonb_get(options, "priority");
	if (p != NULL && p->type != jbvNull)
	{
		if (p->type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"priority\" must be a number")));
		spec->priority = job_priority_arg(DatumGetInt64(DirectFunctionCall1(numeric_int8,
																			NumericGetDatum(p->val.numeric))));
	}
	iv = options_interval(options, "delay", &found);
	if (found)
		spec->delay = job_seconds_arg(false, iv, "delay", 0, 0);
	iv = options_interval(options, "ttr", &found);
	if (found)
		spec->ttr = job_seconds_arg(false, iv, "ttr", 1, 0);
	unique_options(options, unique_column, unique_for);
}

/* one try of jobq_put_now on one server of the pool */
typedef struct PutNow
{
	const JobSpec *spec;
	const char *body;
	size_t		len;
	uint64		id;				/* beanstalkd's, on that server */
} PutNow;

static BsStatus
put_now_on(BeanstalkConn *conn, void *arg)
{
	PutNow	   *p = (PutNow *) arg;
	int64		max;
	BsStatus	st;

	if ((st = bs_max_job_size(conn, &max)) != BS_OK)
		return st;
	if ((int64) p->len > max)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s", job_too_big_message(p->len, max, conn->server)),
				 errhint("Send smaller kwargs, or raise beanstalkd's -z limit.")));
	if ((st = bs_use(conn, p->spec->tube)) != BS_OK)
		return st;
	st = bs_put(conn, p->spec->priority, p->spec->delay, p->spec->ttr, p->body, p->len, &p->id);
	switch (st)
	{
		case BS_BURIED:
			/* not a server to fail over from: the job is in it, buried */
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("beanstalkd at %s is out of memory and buried job " UINT64_FORMAT,
							conn->server, p->id)));
			break;
		case BS_JOB_TOO_BIG:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("%s", job_too_big_message(p->len, -1, conn->server)),
					 errhint("Send smaller kwargs, or raise beanstalkd's -z limit.")));
			break;
		default:
			break;
	}
	/* BS_OK, or what pool_call fails over from (DRAINING, a lost connection) */
	return st;
}

/*
 * jobq_put_now(tube, func_name, kwargs, priority, delay, ttr) -> bigint
 *
 * Not transactional: the job is in beanstalkd when this returns, whatever
 * the calling transaction does next.  It goes to the server the pool
 * places it on (pool.c), or, if that one is down, to the next; only when
 * no server takes it is it an error.  Returns beanstalkd's job id, which is
 * per server, and in *server the server's index in the pool.
 */
static uint64
put_now(FunctionCallInfo fcinfo, int *server)
{
	JobSpec		spec = {0};
	pg_uuid_t	id;
	PutNow		p = {0};
	BsPool	   *pool = pool_backend();
	uint32		usable;
	uint32		failed = 0;
	int			i;

	put_spec_from_args(fcinfo, &spec);
	job_new_uuid(&id);
	p.spec = &spec;
	p.body = job_encode(&spec, &id, &p.len);
	if (pool->n == 1)
	{
		/* the server's own error is the clearest */
		if (put_now_on(pool->conns[0], &p) != BS_OK)
			bs_report(pool->conns[0]);
		*server = 0;
		return p.id;
	}
	usable = pool_usable_mask(pool);
	while ((i = pool_place(pool, &id, usable, failed)) >= 0)
	{
		if (pool_call(pool, i, put_now_on, &p))
		{
			*server = i;
			return p.id;
		}
		failed |= 1U << i;
	}
	pool_error_all_failed(pool, "took the job");
}

Datum
jobq_put_now(PG_FUNCTION_ARGS)
{
	int			server;

	PG_RETURN_INT64((int64) put_now(fcinfo, &server));
}

/* jobq_put_now_at(...) -> (server text, id bigint): where the job went */
Datum
jobq_put_now_at(PG_FUNCTION_ARGS)
{
	int			server;
	uint64		id = put_now(fcinfo, &server);
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "jobq: return type must be a row type");
	values[0] = CStringGetTextDatum(pool_backend()->conns[server]->server);
	values[1] = Int64GetDatum((int64) id);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * jobq_put(tube, func_name, kwargs, priority, delay, ttr [, unique_key,
 * unique_for]) -> uuid
 *
 * The job reaches beanstalkd if, and after, the calling transaction commits.
 * With unique_key, while another job of the tube holds the key, nothing is
 * enqueued and that job's uuid is returned (unique.c).  The 1.4 schema's
 * jobq_put has six arguments.
 */
Datum
jobq_put(PG_FUNCTION_ARGS)
{
	JobSpec		spec = {0};
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	Interval   *unique_for = NULL;

	put_spec_from_args(fcinfo, &spec);
	if (PG_NARGS() >= 8 && !PG_ARGISNULL(7))
	{
		unique_for = PG_GETARG_INTERVAL_P(7);
		if (PG_ARGISNULL(6))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unique_for needs a unique_key")));
		if (job_interval_usecs(unique_for) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unique_for must be positive")));
	}
	if (PG_NARGS() >= 7 && !PG_ARGISNULL(6))
	{
		spec.unique_key = text_to_cstring(PG_GETARG_TEXT_PP(6));
		unique_check_key(spec.unique_key);
	}
	put_enqueue(&spec, unique_for, id);
	PG_RETURN_UUID_P(id);
}

/*
 * Enqueue spec in the caller's transaction under a new uuid, *id; or, if
 * another job holds its unique key, nothing, with *id that job's uuid.
 */
void
put_enqueue(const JobSpec *spec, const Interval *unique_for, pg_uuid_t *id)
{
	job_new_uuid(id);
	if (spec->unique_key == NULL || unique_claim(spec->tube, spec->unique_key, unique_for, id))
		outbox_insert(spec, id, true);
}
