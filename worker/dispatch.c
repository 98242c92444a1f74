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
#include "catalog/namespace.h"
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
#include "registry_cache.h"
#include "schema.h"
#include "worker.h"

#define CALL_KEY_LEN	1024
#define MAX_CACHED_CALLS 512
#define DISPATCH_KEEP_RESULT_BYTES	8192	/* a bigger result is freed at once */

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

/*
 * The registered handler of (tube, func_name), from the registry cache
 * (registry_cache.c), which every change to jobq.handlers, pg_proc or
 * pg_authid empties.  Returns false if there is none.
 */
bool
dispatch_lookup(const char *tube, const char *func_name, Handler *h)
{
	regcache_lookup(tube, func_name, h);
	return h->registered;
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

/* The handler function's signature, as a call needs it. */
typedef struct HandlerProc
{
	Oid			fn;
	HeapTuple	tup;			/* from the syscache, released after the call */
	Oid		   *argtypes;
	char	  **argnames;
	char	   *argmodes;
	int			nargs;
	int			ndefaults;
	bool		single_json;	/* one json/jsonb parameter: gets all kwargs */
} HandlerProc;

/* The arguments of one call: which parameter each value binds, as text. */
typedef struct HandlerArgs
{
	int			n;
	int		   *argpos;
	Datum	   *values;
	char	   *nulls;
	StringInfoData key;			/* the cache key, see CachedCall */
} HandlerArgs;

static void
proc_lookup(Oid fn, HandlerProc *proc)
{
	Form_pg_proc form;

	proc->fn = fn;
	proc->tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(proc->tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("handler function with OID %u does not exist", fn),
				 errhint("It was dropped after registration; register the handler again.")));
	form = (Form_pg_proc) GETSTRUCT(proc->tup);
	if (form->prokind != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("handler %s is not a plain function", format_procedure(fn))));
	proc->nargs = get_func_arg_info(proc->tup, &proc->argtypes, &proc->argnames, &proc->argmodes);
	proc->ndefaults = form->pronargdefaults;
	proc->single_json = (proc->nargs == 1 &&
						 (proc->argtypes[0] == JSONBOID || proc->argtypes[0] == JSONOID) &&
						 (proc->argmodes == NULL || proc->argmodes[0] == PROARGMODE_IN));
}

/* the input parameter called name, or -1 */
static int
param_position(const HandlerProc *proc, const char *name)
{
	for (int i = 0; i < proc->nargs && proc->argnames != NULL; i++)
	{
		if (proc->argnames[i] != NULL && strcmp(proc->argnames[i], name) == 0 &&
			(proc->argmodes == NULL || proc->argmodes[i] == PROARGMODE_IN ||
			 proc->argmodes[i] == PROARGMODE_INOUT || proc->argmodes[i] == PROARGMODE_VARIADIC))
			return i;
	}
	return -1;
}

static void
args_init(HandlerArgs *args, const HandlerProc *proc, int nkwargs)
{
	args->n = 0;
	args->argpos = palloc(sizeof(int) * (nkwargs + 1));
	args->values = palloc(sizeof(Datum) * (nkwargs + 1));
	args->nulls = palloc(nkwargs + 1);
	initStringInfo(&args->key);
	appendStringInfo(&args->key, "%u:", proc->fn);
}

static void
args_add(HandlerArgs *args, int pos, Datum value, bool isnull)
{
	args->argpos[args->n] = pos;
	args->values[args->n] = value;
	args->nulls[args->n] = isnull ? 'n' : ' ';
	appendStringInfo(&args->key, "%d,", pos);
	args->n++;
}

/* every input parameter without a default must be given */
static void
check_required(const HandlerProc *proc, const bool *given)
{
	int			nin = 0;

	for (int i = 0; i < proc->nargs; i++)
		if (proc->argmodes == NULL ||
			(proc->argmodes[i] != PROARGMODE_OUT && proc->argmodes[i] != PROARGMODE_TABLE))
			nin++;
	for (int i = 0, in = 0; i < proc->nargs; i++)
	{
		if (proc->argmodes != NULL &&
			(proc->argmodes[i] == PROARGMODE_OUT || proc->argmodes[i] == PROARGMODE_TABLE))
			continue;
		if (!given[i] && in < nin - proc->ndefaults)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("kwargs lack argument \"%s\" of handler %s",
							proc->argnames && proc->argnames[i] ? proc->argnames[i] : "?",
							format_procedure(proc->fn))));
		in++;
	}
}

/* kwargs onto the parameters: the whole object, or one value per name */
static void
bind_kwargs(const HandlerProc *proc, Jsonb *kwargs, HandlerArgs *args)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *keyname = NULL;
	bool	   *given = palloc0(sizeof(bool) * (proc->nargs + 1));

	args_init(args, proc, JB_ROOT_COUNT(kwargs));
	if (proc->single_json)
	{
		StringInfoData text;

		initStringInfo(&text);
		job_append_jsonb_compact(&text, &kwargs->root);
		args_add(args, 0, CStringGetTextDatum(text.data), false);
		resetStringInfo(&args->key);
		appendStringInfo(&args->key, "%u:*", proc->fn);
		return;
	}
	it = JsonbIteratorInit(&kwargs->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		int			p;

		if (tok == WJB_KEY)
			keyname = pnstrdup(v.val.string.val, v.val.string.len);
		if (tok != WJB_VALUE)
			continue;
		p = param_position(proc, keyname);
		if (p < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("handler %s has no parameter named \"%s\"",
							format_procedure(proc->fn), keyname)));
		given[p] = true;
		args_add(args, p,
				 v.type == jbvNull ? (Datum) 0 :
				 CStringGetTextDatum(value_text(&v, proc->argtypes[p] == JSONBOID ||
												proc->argtypes[p] == JSONOID)),
				 v.type == jbvNull);
	}
	check_required(proc, given);
}

/* SELECT schema.f(name => $1::type, ...), each argument passed as text */
static SPIPlanPtr
prepare_call(const HandlerProc *proc, const HandlerArgs *args, bool keep)
{
	Form_pg_proc form = (Form_pg_proc) GETSTRUCT(proc->tup);
	StringInfoData sql;
	Oid		   *types = palloc(sizeof(Oid) * Max(args->n, 1));
	SPIPlanPtr	plan;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s(",
					 quote_qualified_identifier(get_namespace_name(form->pronamespace),
												NameStr(form->proname)));
	for (int i = 0; i < args->n; i++)
	{
		int			p = args->argpos[i];

		if (i > 0)
			appendStringInfoString(&sql, ", ");
		if (!proc->single_json)
			appendStringInfo(&sql, "%s => ", quote_identifier(proc->argnames[p]));
		appendStringInfo(&sql, "$%d::%s", i + 1, format_type_be_qualified(proc->argtypes[p]));
		types[i] = TEXTOID;
	}
	appendStringInfoChar(&sql, ')');
	plan = SPI_prepare(sql.data, args->n, types);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("could not prepare the call of handler %s", format_procedure(proc->fn)),
				 errdetail("SPI_prepare: %s", SPI_result_code_string(SPI_result))));
	if (keep)
		SPI_keepplan(plan);
	return plan;
}

/*
 * The prepared call for these arguments, from the cache or made now; *kept
 * says whether it stays in the cache (else the caller frees it).
 */
static SPIPlanPtr
call_plan(const HandlerProc *proc, const HandlerArgs *args, bool *kept)
{
	CachedCall *cached = NULL;
	bool		cache_it;
	bool		found;
	SPIPlanPtr	plan;

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
	if (call_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = CALL_KEY_LEN;
		ctl.entrysize = sizeof(CachedCall);
		call_cache = hash_create("jobq handler calls", 64, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	if (args->key.len < CALL_KEY_LEN)
		cached = hash_search(call_cache, args->key.data, HASH_FIND, &found);
	*kept = (cached != NULL);
	if (cached != NULL)
		return cached->plan;

	cache_it = args->key.len < CALL_KEY_LEN &&
		hash_get_num_entries(call_cache) < MAX_CACHED_CALLS;
	plan = prepare_call(proc, args, cache_it);
	if (cache_it)
	{
		cached = hash_search(call_cache, args->key.data, HASH_ENTER, &found);
		cached->plan = plan;
		*kept = true;
	}
	return plan;
}

/*
 * What a handler returned, as jsonb in the caller's memory context; NULL
 * for no row, a null or a void function.  json and jsonb are taken as they
 * are, anything else through to_jsonb.
 */
static Jsonb *
handler_result(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	TupleDesc	desc;
	Oid			type;
	Datum		d;
	bool		isnull;

	if (SPI_tuptable == NULL || SPI_processed == 0)
		return NULL;
	desc = SPI_tuptable->tupdesc;
	type = SPI_gettypeid(desc, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], desc, 1, &isnull);
	if (isnull || type == VOIDOID)
		return NULL;
	if (type == JSONBOID)
		return DatumGetJsonbPCopy(d);
	if (type == JSONOID)
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												  CStringGetDatum(TextDatumGetCString(d))));
	if (SPI_execute_with_args("SELECT pg_catalog.to_jsonb($1)", 1, &type, &d, NULL, true, 1)
		!= SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "jobq: converting a handler's result to jsonb failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return NULL;
	MemoryContextSwitchTo(cxt);
	return DatumGetJsonbPCopy(d);
}

/* a SQL-callable function: a single json/jsonb parameter, or named ones */
static Jsonb *
call_function(Oid fn, Jsonb *kwargs, bool keep_result)
{
	Jsonb	   *result = NULL;
	HandlerProc proc;
	HandlerArgs args;
	SPIPlanPtr	plan;
	bool		kept;
	int			rc;

	proc_lookup(fn, &proc);
	bind_kwargs(&proc, kwargs, &args);
	plan = call_plan(&proc, &args, &kept);
	ReleaseSysCache(proc.tup);

	if (SPI_getargcount(plan) != args.n)
		elog(ERROR, "jobq: prepared call of handler %u takes %d arguments, not %d",
			 fn, SPI_getargcount(plan), args.n);
	rc = SPI_execute_plan(plan, args.values, args.nulls, false, 1);
	if (rc < 0)
		elog(ERROR, "jobq: handler call failed: %s", SPI_result_code_string(rc));
	if (keep_result)
		result = handler_result();
	/*
	 * A big result is not kept for the rest of the batch; a small one goes
	 * at commit (freeing each costs more than keeping a batch's worth).
	 */
	if (SPI_tuptable != NULL && SPI_processed > 0 &&
		SPI_tuptable->vals[0]->t_len > DISPATCH_KEEP_RESULT_BYTES)
		SPI_freetuptable(SPI_tuptable);
	if (!kept)
		SPI_freeplan(plan);
	return result;
}

/*
 * Call the job's handler; with keep_result (SQL-callable functions only),
 * return what it returned as jsonb (NULL: nothing).
 */
Jsonb *
dispatch_call(const Handler *h, Jsonb *kwargs)
{
	if (OidIsValid(h->fn))
		return call_function(h->fn, kwargs, h->keep_result);
	call_c_symbol(h, kwargs);
	return NULL;
}
