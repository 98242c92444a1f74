/*
 * admin.c
 *		Introspection and administration of the beanstalkd servers from
 *		SQL: stats, tubes, jobs, peek, kick, delete, pause.  All of them go
 *		over the backend's persistent connections (pool.c).  Stats and tubes
 *		are summed over the servers or shown per server; kick and pause act
 *		on every server; a job id is per server, so the functions that take
 *		one also take the server when jobq.servers lists several.  EXECUTE
 *		on them is revoked from PUBLIC by the install script.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "job.h"
#include "pool.h"
#include "producer_acl.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(jobq_stats);
PG_FUNCTION_INFO_V1(jobq_tubes);
PG_FUNCTION_INFO_V1(jobq_server_stats);
PG_FUNCTION_INFO_V1(jobq_server_tubes);
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

/*
 * The servers an administration function acts on.  With one server it is
 * called directly, and its error is the function's.  With several, a
 * server that does not answer is left out with a WARNING (the pool marks
 * it down), and the function fails only when none answers.
 */
static void
for_each_server(PoolFn fn, void *arg)
{
	BsPool	   *pool = pool_backend();
	int			answered = 0;

	if (pool->n == 1)
	{
		BsStatus	st = fn(pool->conns[0], arg);

		if (bs_status_trouble(st) || st == BS_BAD_REQUEST)
			bs_report(pool->conns[0]);
		return;
	}
	for (int i = 0; i < pool->n; i++)
	{
		if (pool_call(pool, i, fn, arg))
			answered++;
		else
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("beanstalkd at %s does not answer; it is left out",
							pool->conns[i]->server),
					 errhint("The server log says why.")));
	}
	if (answered == 0)
		pool_error_all_failed(pool, "answered");
}

/*
 * A request's status at the SQL function's edge: true for BS_OK, false for
 * BS_NOT_FOUND, the request's error otherwise.
 */
static bool
found_or_report(BeanstalkConn *conn, BsStatus st)
{
	if (st == BS_OK)
		return true;
	if (st == BS_NOT_FOUND)
		return false;
	bs_report(conn);
}

/*
 * The server a job id is on: the 'server' argument if the function has one
 * (argno >= 0), which must be in jobq.servers; without it, the only server.
 * Job ids are per server: with several, an id alone names no job.
 */
static BeanstalkConn *
job_server_arg(FunctionCallInfo fcinfo, int argno)
{
	BsPool	   *pool = pool_backend();
	char	   *server;
	BeanstalkConn *conn;

	if (argno < 0)
	{
		if (pool->n > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("beanstalkd job ids are per server, and jobq.servers lists %d servers",
							pool->n),
					 errhint("Pass the server as the last argument, as jobq.servers spells it.")));
		return pool->conns[0];
	}
	server = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	conn = pool_conn_of(pool, server);
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("server \"%s\" is not in jobq.servers", server),
				 errdetail("jobq.servers is \"%s\".", pool->setting)));
	return conn;
}

/* the function's 'server' argument, if it has one: the last */
static int
server_argno(FunctionCallInfo fcinfo, int nargs_without)
{
	return PG_NARGS() > nargs_without ? nargs_without : -1;
}

/*
 * Stats are summed over the servers where they are counts ("current-*",
 * "total-*", "cmd-*", "job-timeouts", "rusage-*"); other keys (version,
 * pid, uptime, ...) keep each distinct value, joined with ", ".
 */
typedef struct StatsPair
{
	char	   *key;
	char	   *value;
} StatsPair;

typedef struct StatsArg
{
	bool		per_server;
	List	   *pairs;			/* StatsPair: (key, value), or per server (server, key, value) */
} StatsArg;

static bool
stats_summable(const char *key)
{
	return strncmp(key, "current-", 8) == 0 || strncmp(key, "total-", 6) == 0 ||
		strncmp(key, "cmd-", 4) == 0 || strcmp(key, "job-timeouts") == 0 ||
		strncmp(key, "rusage-", 7) == 0;
}

/* whether value is one of the ", "-separated values of list */
static bool
value_listed(const char *list, const char *value)
{
	size_t		len = strlen(value);

	for (const char *p = list; p != NULL; p = strstr(p, ", "), p = p ? p + 2 : NULL)
		if (strncmp(p, value, len) == 0 && (p[len] == '\0' || p[len] == ','))
			return true;
	return false;
}

/* one server's value of key into the sums */
static void
stats_merge(List **pairs, const char *key, const char *value)
{
	ListCell   *lc;
	StatsPair  *p;

	foreach(lc, *pairs)
	{
		p = lfirst(lc);
		if (strcmp(p->key, key) != 0)
			continue;
		if (stats_summable(key))
		{
			char	   *end;
			double		a = strtod(p->value, &end);
			double		b = strtod(value, NULL);

			if (*end == '\0' && strchr(p->value, '.') == NULL && strchr(value, '.') == NULL)
				p->value = psprintf("%.0f", a + b);
			else if (*end == '\0')
				p->value = psprintf("%.6f", a + b);
		}
		else if (!value_listed(p->value, value))
			p->value = psprintf("%s, %s", p->value, value);
		return;
	}
	p = palloc(sizeof(StatsPair));
	p->key = pstrdup(key);
	p->value = pstrdup(value);
	*pairs = lappend(*pairs, p);
}

/* a server's stats, merged only once read whole */
static BsStatus
stats_of_server(BeanstalkConn *conn, void *arg)
{
	StatsArg   *sa = (StatsArg *) arg;
	BsStats		stats;
	BsStatus	st = bs_stats_server(conn, &stats);

	if (st != BS_OK)
		return st;
	for (int i = 0; i < stats.n; i++)
	{
		const BsStatsPair *p = &stats.pairs[i];

		if (sa->per_server)
		{
			StatsPair  *q = palloc(sizeof(StatsPair) * 2);

			q[0].key = conn->server;
			q[0].value = NULL;
			q[1].key = pstrdup(p->key);
			q[1].value = pstrdup(p->value);
			sa->pairs = lappend(sa->pairs, q);
		}
		else
			stats_merge(&sa->pairs, p->key, p->value);
	}
	return BS_OK;
}

static Datum
stats_result(FunctionCallInfo fcinfo, bool per_server)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StatsArg	sa = {per_server, NIL};
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	for_each_server(stats_of_server, &sa);
	foreach(lc, sa.pairs)
	{
		StatsPair  *p = lfirst(lc);
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		int			k = 0;

		if (per_server)
		{
			values[k++] = CStringGetTextDatum(p[0].key);
			p = &p[1];
		}
		values[k++] = CStringGetTextDatum(p->key);
		values[k++] = CStringGetTextDatum(p->value);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* jobq_stats() -> setof (name text, value text), over every server */
Datum
jobq_stats(PG_FUNCTION_ARGS)
{
	return stats_result(fcinfo, false);
}

/* jobq_server_stats() -> setof (server text, name text, value text) */
Datum
jobq_server_stats(PG_FUNCTION_ARGS)
{
	return stats_result(fcinfo, true);
}

/* a count of beanstalkd's as a bigint column */
static int64
count_of(uint64 n)
{
	return (int64) Min(n, (uint64) PG_INT64_MAX);
}

#define TUBE_COUNTERS	9

/* one row of jobq_tubes: a tube's counters, on one server or summed */
typedef struct TubeRow
{
	char	   *tube;
	const char *server;
	int64		counts[TUBE_COUNTERS];
	int64		pause;
	int64		pause_time_left;
} TubeRow;

typedef struct TubesArg
{
	bool		per_server;
	List	   *rows;			/* TubeRow */
} TubesArg;

/* a tube's stats on one server as a row, counters in the columns' order */
static TubeRow *
tube_row(const BsTubeStats *ts, const char *server)
{
	TubeRow    *row = palloc0(sizeof(TubeRow));
	const uint64 counts[TUBE_COUNTERS] = {
		ts->ready, ts->reserved, ts->delayed, ts->buried, ts->urgent, ts->total,
		ts->using, ts->watching, ts->waiting
	};

	row->tube = pstrdup(ts->name);
	row->server = server;
	for (int i = 0; i < TUBE_COUNTERS; i++)
		row->counts[i] = count_of(counts[i]);
	row->pause = count_of(ts->pause);
	row->pause_time_left = Max(ts->pause_time_left, 0);
	return row;
}

static BsStatus
tubes_of_server(BeanstalkConn *conn, void *arg)
{
	TubesArg   *ta = (TubesArg *) arg;
	BsTubeList	tubes;
	List	   *mine = NIL;		/* merged only once read whole */
	ListCell   *lc2;
	BsStatus	st = bs_list_tubes(conn, &tubes);

	if (st != BS_OK)
		return st;
	for (int i = 0; i < tubes.n; i++)
	{
		BsTubeStats ts;

		st = bs_stats_tube(conn, tubes.names[i], &ts);
		if (st == BS_NOT_FOUND)
			continue;			/* vanished since list-tubes */
		if (st != BS_OK)
			return st;
		mine = lappend(mine, tube_row(&ts, conn->server));
	}
	foreach(lc2, mine)
	{
		TubeRow    *row = lfirst(lc2);
		TubeRow    *sum = NULL;
		ListCell   *lc;

		if (!ta->per_server)
			foreach(lc, ta->rows)
				if (strcmp(((TubeRow *) lfirst(lc))->tube, row->tube) == 0)
				sum = lfirst(lc);
		if (sum == NULL)
		{
			ta->rows = lappend(ta->rows, row);
			continue;
		}
		for (int i = 0; i < TUBE_COUNTERS; i++)
			sum->counts[i] += row->counts[i];
		sum->pause = Max(sum->pause, row->pause);
		sum->pause_time_left = Max(sum->pause_time_left, row->pause_time_left);
	}
	return BS_OK;
}

static Datum
seconds_interval(int64 s)
{
	return DirectFunctionCall7(make_interval, 0, 0, 0, 0, 0, 0, Float8GetDatum((double) s));
}

/*
 * (tube, ready, reserved, delayed, buried, urgent, total, using, watching,
 * waiting, pause, pause_time_left), summed over the servers (a pause is
 * the longest), or per server with a leading server column.
 */
static Datum
tubes_result(FunctionCallInfo fcinfo, bool per_server)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TubesArg	ta = {per_server, NIL};
	ListCell   *lc;
	int			off = per_server ? 1 : 0;

	InitMaterializedSRF(fcinfo, 0);
	for_each_server(tubes_of_server, &ta);
	foreach(lc, ta.rows)
	{
		TubeRow    *row = lfirst(lc);
		Datum		values[13];
		bool		nulls[13] = {0};

		if (per_server)
			values[0] = CStringGetTextDatum(row->server);
		values[off] = CStringGetTextDatum(row->tube);
		for (int i = 0; i < TUBE_COUNTERS; i++)
			values[off + 1 + i] = Int64GetDatum(row->counts[i]);
		values[off + 10] = seconds_interval(row->pause);
		values[off + 11] = seconds_interval(row->pause_time_left);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
jobq_tubes(PG_FUNCTION_ARGS)
{
	return tubes_result(fcinfo, false);
}

Datum
jobq_server_tubes(PG_FUNCTION_ARGS)
{
	return tubes_result(fcinfo, true);
}

/*
 * jobq_job(id [, server]) -> (id, tube, state, priority, age, delay, ttr,
 * time_left, reserves, timeouts, releases, buries, kicks), NULL if there is
 * no such job
 */
Datum
jobq_job(PG_FUNCTION_ARGS)
{
	uint64		id = job_id_arg(fcinfo, 0);
	BeanstalkConn *conn = job_server_arg(fcinfo, server_argno(fcinfo, 1));
	TupleDesc	tupdesc;
	BsJobStats	js;
	Datum		values[13];
	bool		nulls[13] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "jobq: return type must be a row type");
	if (!found_or_report(conn, bs_stats_job(conn, id, &js)))
		PG_RETURN_NULL();
	{
		const uint64 ints[] = {
			js.pri, js.age, js.delay, js.ttr, 0, js.reserves,
			js.timeouts, js.releases, js.buries, js.kicks
		};

		values[0] = Int64GetDatum((int64) id);
		values[1] = CStringGetTextDatum(js.tube);
		values[2] = CStringGetTextDatum(js.state);
		for (int i = 0; i < lengthof(ints); i++)
			values[i + 3] = Int64GetDatum(count_of(ints[i]));
		values[7] = Int64GetDatum(js.time_left);	/* may be -1 */
	}
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

/* jobq_peek(id [, server]) -> (id, body jsonb, raw bytea) */
Datum
jobq_peek(PG_FUNCTION_ARGS)
{
	uint64		id = job_id_arg(fcinfo, 0);
	BeanstalkConn *conn = job_server_arg(fcinfo, server_argno(fcinfo, 1));
	BsJob		job;
	bool		found = found_or_report(conn, bs_peek_job(conn, id, &job));

	return peek_result(fcinfo, found, &job);
}

/* the next job of a state in a tube, on one server: it returns an id */
static Datum
peek_in_tube(FunctionCallInfo fcinfo, BsPeekState state)
{
	char	   *tube = tube_arg(fcinfo, 0);
	BeanstalkConn *conn = job_server_arg(fcinfo, server_argno(fcinfo, 1));
	BsJob		job;
	bool		found;

	if (bs_use(conn, tube) != BS_OK)
		bs_report(conn);
	found = found_or_report(conn, bs_peek_state(conn, state, &job));
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

typedef struct KickArg
{
	const char *tube;
	uint64		bound;			/* left to kick */
	uint64		kicked;
} KickArg;

static BsStatus
kick_on_server(BeanstalkConn *conn, void *arg)
{
	KickArg    *ka = (KickArg *) arg;
	uint64		n;
	BsStatus	st;

	if (ka->bound == 0)
		return BS_OK;
	if ((st = bs_use(conn, ka->tube)) != BS_OK || (st = bs_kick(conn, ka->bound, &n)) != BS_OK)
		return st;
	ka->kicked += n;
	ka->bound -= Min(n, ka->bound);
	return BS_OK;
}

/* jobq_kick(tube, bound) -> number of jobs kicked, at most bound in all */
Datum
jobq_kick(PG_FUNCTION_ARGS)
{
	KickArg		ka = {tube_arg(fcinfo, 0), 0, 0};
	int64		bound = PG_GETARG_INT64(1);

	if (bound <= 0 || (uint64) bound > BS_MAX_UINT32)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kick bound " INT64_FORMAT " is out of range", bound),
				 errdetail("The bound is between 1 and 4294967295.")));
	ka.bound = (uint64) bound;
	for_each_server(kick_on_server, &ka);
	PG_RETURN_INT64((int64) ka.kicked);
}

/* jobq_kick_job(id [, server]) */
Datum
jobq_kick_job(PG_FUNCTION_ARGS)
{
	uint64		id = job_id_arg(fcinfo, 0);
	BeanstalkConn *conn = job_server_arg(fcinfo, server_argno(fcinfo, 1));

	PG_RETURN_BOOL(found_or_report(conn, bs_kick_job(conn, id)));
}

/* jobq_delete(id [, server]) */
Datum
jobq_delete(PG_FUNCTION_ARGS)
{
	uint64		id = job_id_arg(fcinfo, 0);
	BeanstalkConn *conn = job_server_arg(fcinfo, server_argno(fcinfo, 1));

	PG_RETURN_BOOL(found_or_report(conn, bs_delete(conn, id)));
}

typedef struct PauseArg
{
	const char *tube;
	uint64		secs;
	bool		paused;
} PauseArg;

static BsStatus
pause_on_server(BeanstalkConn *conn, void *arg)
{
	PauseArg   *pa = (PauseArg *) arg;
	BsStatus	st = bs_pause_tube(conn, pa->tube, pa->secs);

	if (st == BS_OK)
		pa->paused = true;
	return st == BS_NOT_FOUND ? BS_OK : st;
}

/* jobq_pause_tube(tube, for) -> false if the tube exists on no server */
Datum
jobq_pause_tube(PG_FUNCTION_ARGS)
{
	PauseArg	pa = {tube_arg(fcinfo, 0), 0, false};

	pa.secs = job_seconds_arg(PG_ARGISNULL(1), PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1),
							  "pause", 0, 0);
	for_each_server(pause_on_server, &pa);
	PG_RETURN_BOOL(pa.paused);
}

/*
 * Whether the caller may read a process's last error.  A job's error may
 * carry its kwargs: it is shown to the roles that may enqueue that job
 * (producer_acl.c) and to members of pg_read_all_stats, as PostgreSQL shows
 * other sessions' queries; an error whose job's func_name is unknown (its
 * body was unreadable) only to the latter.  A process's own errors (a
 * server that does not answer) are everyone's.
 */
static bool
may_read_error(const JobqWorkerSlot *s)
{
	Oid			role = GetUserId();

	if (!s->last_error_of_job || has_privs_of_role(role, ROLE_PG_READ_ALL_STATS))
		return true;
	return s->last_error_func[0] != '\0' &&
		acl_may_produce(role, s->last_error_tube, s->last_error_func);
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
		Datum		values[13];
		bool		nulls[13] = {0};

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
		nulls[10] = s.last_error[0] == '\0' || !may_read_error(&s);
		values[11] = TimestampTzGetDatum(s.last_error_at);
		nulls[11] = s.last_error_at == 0;
		/* the 1.5 schema's column */
		values[12] = UUIDPGetDatum(&s.job_uuid);
		nulls[12] = !s.has_job_uuid;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
