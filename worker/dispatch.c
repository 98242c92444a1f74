/*
 * dispatch.c
 *		Finding the handler of a job and calling it with the job's kwargs.
 *
 * A handler with a single json or jsonb parameter gets the kwargs object.
 * Any other SQL-callable function gets the kwargs as named arguments, like
 * Python's func(**kwargs): the call is made as SQL in named notation
 * (f(a => $1::int, b => $2::text)), so PostgreSQL itself coerces each value
 * to its parameter's type and fills in defaults.  The prepared call is
 * cached per (function, set of keys).  A library/symbol handler is a V1 C
 * function called directly with the jsonb.
 *
 * The caller runs this inside a subtransaction, as the handler's role.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "job.h"
#include "worker.h"

#define CALL_KEY_LEN	1024
#define MAX_CACHED_CALLS 512

/*
 * A prepared call, keyed by the function and the parameter positions that
 * the kwargs name, in their order: "fnoid:2,0," or "fnoid:*" for a single
 * json(b) parameter.  Positions, unlike names, cannot contain the
 * separators, so two different calls never share a key.
 */
typedef struct CachedCall
{
	char		key[CALL_KEY_LEN];
	SPIPlanPtr	plan;
} CachedCall;

static HTAB *call_cache = NULL;
static bool call_cache_stale = false;	/* a function changed: start over */
static bool proc_callback_registered = false;
static SPIPlanPtr lookup_plan = NULL;

/* CREATE OR REPLACE may rename parameters that cached calls name */
static void
proc_changed_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	call_cache_stale = true;
}

static void
call_cache_reset(void)
{
	HASH_SEQ_STATUS seq;
	CachedCall *c;

	if (call_cache == NULL)
		return;
	hash_seq_init(&seq, call_cache);
	while ((c = hash_seq_search(&seq)) != NULL)
		SPI_freeplan(c->plan);
	hash_destroy(call_cache);
	call_cache = NULL;
}

static int64
interval_ms(Datum d)
{
	return job_interval_usecs(DatumGetIntervalP(d)) / 1000;
}

/*
 * The registered handler of (tube, func_name), read in the caller's
 * transaction.  Returns false if there is none.
 */
bool
dispatch_lookup(const char *tube, const char *func_name, Handler *h)
{
	Datum		values[2];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	int			rc;

	if (lookup_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		SPIPlanPtr	plan = SPI_prepare("SELECT handler::pg_catalog.oid, library, symbol, "
									   "run_as::pg_catalog.oid, max_attempts, backoff, timeout, "
									   "registered_by::pg_catalog.oid, registered_at "
									   "FROM jobq.handlers WHERE tube OPERATOR(pg_catalog.=) $1 "
									   "AND func_name OPERATOR(pg_catalog.=) $2",
									   2, types);

		if (plan == NULL)
			elog(ERROR, "jobq: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		lookup_plan = plan;
	}
	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(func_name);
	rc = SPI_execute_plan(lookup_plan, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: handler lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(tup, desc, 1, &isnull);
	h->fn = isnull ? InvalidOid : DatumGetObjectId(d);
	h->library = SPI_getvalue(tup, desc, 2);
	h->symbol = SPI_getvalue(tup, desc, 3);
	h->run_as = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	h->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	h->backoff_ms = interval_ms(SPI_getbinval(tup, desc, 6, &isnull));
	d = SPI_getbinval(tup, desc, 7, &isnull);
	h->timeout_ms = isnull ? 0 : interval_ms(d);
	h->registered_by = DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull));
	h->registered_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 9, &isnull));
	return true;
}

/* a library/symbol handler: a V1 function taking one jsonb */
static void
call_c_symbol(const Handler *h, Jsonb *kwargs)
{
	PGFunction	fn = load_external_function(h->library, h->symbol, true, NULL);
	FmgrInfo	flinfo;

	LOCAL_FCINFO(fcinfo, 1);

	memset(&flinfo, 0, sizeof(flinfo));
	flinfo.fn_addr = fn;
	flinfo.fn_oid = InvalidOid;
	flinfo.fn_nargs = 1;
	flinfo.fn_strict = false;
	flinfo.fn_mcxt = CurrentMemoryContext;
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = JsonbPGetDatum(kwargs);
	fcinfo->args[0].isnull = false;
	(void) FunctionCallInvoke(fcinfo);
}

/* The text a kwargs value is passed as: strings bare, the rest as JSON. */
static char *
value_text(JsonbValue *v, bool as_json)
{
	StringInfoData buf;

	if (v->type == jbvString && !as_json)
		return pnstrdup(v->val.string.val, v->val.string.len);
	initStringInfo(&buf);
	if (v->type == jbvBinary)
		job_append_jsonb_compact(&buf, v->val.binary.data);
	else
	{
		Jsonb	   *jb = JsonbValueToJsonb(v);

		job_append_jsonb_compact(&buf, &jb->root);
	}
	return buf.data;
}

static SPIPlanPtr
prepare_call(const char *key, Oid fn, HeapTuple proctup, char **argnames,
			 Oid *argtypes, int *argpos, int nkw, bool positional)
{
	Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(proctup);
	StringInfoData sql;
	Oid		   *types = palloc(sizeof(Oid) * Max(nkw, 1));
	SPIPlanPtr	plan;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s(",
					 quote_qualified_identifier(get_namespace_name(proc->pronamespace),
												NameStr(proc->proname)));
	for (int i = 0; i < nkw; i++)
	{
		int			p = argpos[i];

		if (i > 0)
			appendStringInfoString(&sql, ", ");
		if (!positional)
			appendStringInfo(&sql, "%s => ", quote_identifier(argnames[p]));
		appendStringInfo(&sql, "$%d::%s", i + 1, format_type_be_qualified(argtypes[p]));
		types[i] = TEXTOID;
	}
	appendStringInfoChar(&sql, ')');
	plan = SPI_prepare(sql.data, nkw, types);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("could not prepare the call of handler %s", format_procedure(fn)),
				 errdetail("SPI_prepare: %s", SPI_result_code_string(SPI_result))));
	if (key != NULL)
		SPI_keepplan(plan);
	return plan;
}

/* a SQL-callable function: a single json/jsonb parameter, or named ones */
static void
call_function(Oid fn, Jsonb *kwargs)
{
	HeapTuple	proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid		   *argtypes;
	char	  **argnames;
	char	   *argmodes;
	int			nargs;
	int			ndefaults;
	int			nkw = 0;
	int		   *argpos;
	Datum	   *values;
	char	   *nulls;
	bool	   *given;
	StringInfoData key;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *keyname = NULL;
	bool		single_json;
	CachedCall *cached = NULL;
	SPIPlanPtr	plan;
	int			rc;

	if (!HeapTupleIsValid(proctup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("handler function with OID %u does not exist", fn),
				 errhint("It was dropped after registration; register the handler again.")));
	if (((Form_pg_proc) GETSTRUCT(proctup))->prokind != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("handler %s is not a plain function", format_procedure(fn))));
	nargs = get_func_arg_info(proctup, &argtypes, &argnames, &argmodes);
	ndefaults = ((Form_pg_proc) GETSTRUCT(proctup))->pronargdefaults;
	single_json = (nargs == 1 && (argtypes[0] == JSONBOID || argtypes[0] == JSONOID) &&
				   (argmodes == NULL || argmodes[0] == PROARGMODE_IN));

	argpos = palloc(sizeof(int) * (JB_ROOT_COUNT(kwargs) + 1));
	values = palloc(sizeof(Datum) * (JB_ROOT_COUNT(kwargs) + 1));
	nulls = palloc(JB_ROOT_COUNT(kwargs) + 1);
	given = palloc0(sizeof(bool) * (nargs + 1));
	initStringInfo(&key);
	appendStringInfo(&key, "%u:", fn);
	if (!proc_callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, proc_changed_callback, (Datum) 0);
		proc_callback_registered = true;
	}
	if (call_cache_stale)
	{
		call_cache_reset();
		call_cache_stale = false;
	}

	if (single_json)
	{
		StringInfoData text;

		initStringInfo(&text);
		job_append_jsonb_compact(&text, &kwargs->root);
		argpos[0] = 0;
		values[0] = CStringGetTextDatum(text.data);
		nulls[0] = ' ';
		nkw = 1;
		appendStringInfoString(&key, "*");
	}
	else
	{
		it = JsonbIteratorInit(&kwargs->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				keyname = pnstrdup(v.val.string.val, v.val.string.len);
				continue;
			}
			if (tok != WJB_VALUE)
				continue;
			{
				int			p = -1;

				for (int i = 0; i < nargs && argnames != NULL; i++)
				{
					if (argnames[i] != NULL && strcmp(argnames[i], keyname) == 0 &&
						(argmodes == NULL || argmodes[i] == PROARGMODE_IN ||
						 argmodes[i] == PROARGMODE_INOUT || argmodes[i] == PROARGMODE_VARIADIC))
					{
						p = i;
						break;
					}
				}
				if (p < 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("handler %s has no parameter named \"%s\"",
									format_procedure(fn), keyname)));
				given[p] = true;
				argpos[nkw] = p;
				nulls[nkw] = (v.type == jbvNull) ? 'n' : ' ';
				values[nkw] = v.type == jbvNull ? (Datum) 0 :
					CStringGetTextDatum(value_text(&v, argtypes[p] == JSONBOID || argtypes[p] == JSONOID));
				appendStringInfo(&key, "%d,", p);
				nkw++;
			}
		}
		/* every input parameter without a default must be given */
		{
			int			nin = 0;

			for (int i = 0; i < nargs; i++)
				if (argmodes == NULL || argmodes[i] != PROARGMODE_OUT)
					nin++;
			for (int i = 0, in = 0; i < nargs; i++)
			{
				if (argmodes != NULL && (argmodes[i] == PROARGMODE_OUT || argmodes[i] == PROARGMODE_TABLE))
					continue;
				if (!given[i] && in < nin - ndefaults)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("kwargs lack argument \"%s\" of handler %s",
									argnames && argnames[i] ? argnames[i] : "?",
									format_procedure(fn))));
				in++;
			}
		}
	}

	if (key.len < CALL_KEY_LEN)
	{
		bool		found;

		if (call_cache == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = CALL_KEY_LEN;
			ctl.entrysize = sizeof(CachedCall);
			call_cache = hash_create("jobq handler calls", 64, &ctl, HASH_ELEM | HASH_STRINGS);
		}
		cached = hash_search(call_cache, key.data, HASH_FIND, &found);
	}
	if (cached != NULL)
		plan = cached->plan;
	else
	{
		bool		cache_it = key.len < CALL_KEY_LEN &&
			hash_get_num_entries(call_cache) < MAX_CACHED_CALLS;

		plan = prepare_call(cache_it ? key.data : NULL, fn, proctup, argnames,
							argtypes, argpos, nkw, single_json);
		if (cache_it)
		{
			bool		found;

			cached = hash_search(call_cache, key.data, HASH_ENTER, &found);
			cached->plan = plan;
		}
	}
	ReleaseSysCache(proctup);

	if (SPI_getargcount(plan) != nkw)
		elog(ERROR, "jobq: prepared call of handler %u takes %d arguments, not %d",
			 fn, SPI_getargcount(plan), nkw);
	rc = SPI_execute_plan(plan, values, nulls, false, 1);
	if (rc < 0)
		elog(ERROR, "jobq: handler call failed: %s", SPI_result_code_string(rc));
	if (cached == NULL)
		SPI_freeplan(plan);
}

void
dispatch_call(const Handler *h, Jsonb *kwargs)
{
	if (OidIsValid(h->fn))
		call_function(h->fn, kwargs);
	else
		call_c_symbol(h, kwargs);
}
