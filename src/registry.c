/*
 * registry.c
 *		The handler registry, jobq.handlers: who runs the jobs of (tube,
 *		func_name), as whom, and who may enqueue them.
 *
 * The registry answers the one question a job body may ask: which function
 * runs jobs named (tube, func_name), as which role.  Nobody can make a job
 * run anything that was not registered here, and nobody can register a
 * handler that runs as a role they could not act as themselves.
 *
 * The rule, checked here as the caller (before switching to the tables'
 * owner) and again by the worker at every dispatch: a handler runs as
 * run_as, and both the role that registers it and the owner of its
 * function must be members of run_as; run_as must be allowed to execute
 * the function.  Only members of run_as replace, remove or grant a
 * registration.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "job.h"
#include "producer_acl.h"
#include "registry.h"
#include "registry_cache.h"
#include "schema.h"

PG_FUNCTION_INFO_V1(jobq_register);
PG_FUNCTION_INFO_V1(jobq_register_c);
PG_FUNCTION_INFO_V1(jobq_unregister);
PG_FUNCTION_INFO_V1(jobq_grant);
PG_FUNCTION_INFO_V1(jobq_revoke);

/*
 * The rule of the header comment, for a registration of function fn
 * (InvalidOid: a library/symbol handler, which only a superuser registers)
 * to run as run_as, by registrant.  The function and the roles exist.
 */
RegistryBreach
registry_rule_breach(Oid fn, Oid run_as, Oid registrant)
{
	if (!OidIsValid(fn))
		return superuser_arg(registrant) ? REGISTRY_RULE_HOLDS : REGISTRY_REGISTRANT_NOT_SUPERUSER;
	if (!is_member_of_role(registrant, run_as))
		return REGISTRY_REGISTRANT_NOT_MEMBER;
	/* whoever can change the function's body must already hold run_as */
	if (!is_member_of_role(schema_func_owner(fn), run_as))
		return REGISTRY_OWNER_NOT_MEMBER;
	if (pg_proc_aclcheck(fn, run_as, ACL_EXECUTE) != ACLCHECK_OK)
		return REGISTRY_NO_EXECUTE;
	return REGISTRY_RULE_HOLDS;
}

/* the options that both register functions take, from argument 'first' on */
typedef struct HandlerOptions
{
	Oid			run_as;
	int32		max_attempts;
	Interval   *backoff;
	Interval   *timeout;		/* NULL: the job's ttr bounds it */
	bool		keep_result;	/* 1.5: jobq_register's keep_result */
} HandlerOptions;

static void
handler_options(FunctionCallInfo fcinfo, int first, HandlerOptions *opt)
{
	Oid			caller = GetUserId();

	opt->run_as = PG_ARGISNULL(first) ? caller : PG_GETARG_OID(first);
	opt->max_attempts = PG_ARGISNULL(first + 1) ? 3 : PG_GETARG_INT32(first + 1);
	opt->backoff = PG_ARGISNULL(first + 2) ? NULL : PG_GETARG_INTERVAL_P(first + 2);
	opt->timeout = PG_ARGISNULL(first + 3) ? NULL : PG_GETARG_INTERVAL_P(first + 3);
	opt->keep_result = false;

	if (opt->max_attempts < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be at least 1")));
	if (opt->backoff != NULL && job_interval_usecs(opt->backoff) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("backoff must not be negative")));
	if (opt->timeout != NULL && job_interval_usecs(opt->timeout) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be positive")));
	if (opt->run_as != caller && !is_member_of_role(caller, opt->run_as))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be a member of role \"%s\" to register a handler that runs as it",
						GetUserNameFromId(opt->run_as, false))));
}

/*
 * A registration may only be replaced, removed or granted by a member of the
 * role it runs as: error out if (tube, func_name) is registered for a role
 * that 'caller' is not a member of.  Runs as the tables' owner (the caller
 * cannot read them), so the caller is passed in.  Returns whether there is
 * such a registration.
 */
static bool
check_may_replace(Oid caller, const char *tube, const char *func_name)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	int			rc;

	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(func_name);
	rc = SPI_execute_with_args(psprintf("SELECT %s, run_as::pg_catalog.text FROM jobq.handlers "
										"WHERE tube OPERATOR(pg_catalog.=) $1 "
										"AND func_name OPERATOR(pg_catalog.=) $2 FOR UPDATE",
										schema_role_oid_sql("run_as")),
							   2, types, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: registry lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		bool		missing;
		Datum		owner = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &missing);

		/* a run_as dropped or renamed since: only a superuser may take it over */
		if (missing ? !superuser_arg(caller) : !is_member_of_role(caller, DatumGetObjectId(owner)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("handler for func_name \"%s\" on tube \"%s\" belongs to role \"%s\"",
							func_name, tube, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
					 missing ?
					 errhint("That role no longer exists: only a superuser can replace or remove the registration.") :
					 errhint("Only members of that role can replace, remove or grant it.")));
		return true;
	}
	return false;
}

/*
 * Open a change of the registration of (tube, func_name): SPI, the tables'
 * owner, and the check that the caller may change it.  Returns whether it
 * exists.  registry_end closes it.
 */
static bool
registry_begin(Oid caller, const char *tube, const char *func_name, OwnerContext *owner)
{
	SPI_connect();
	schema_become_owner(owner);
	return check_may_replace(caller, tube, func_name);
}

static void
registry_end(OwnerContext *owner)
{
	schema_restore_user(owner);
	SPI_finish();
}

static void
upsert_handler(const char *tube, const char *func_name, Oid handler,
			   const char *library, const char *symbol, HandlerOptions *opt)
{
	Oid			types[11] = {TEXTOID, TEXTOID, OIDOID, TEXTOID, TEXTOID, OIDOID,
	INT4OID, INTERVALOID, INTERVALOID, OIDOID, BOOLOID};
	Datum		values[11];
	char		nulls[11] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		with_keep = schema_version() >= JOBQ_SCHEMA_1_5;
	Oid			caller = GetUserId();
	OwnerContext owner;
	int			rc;
	bool		by_name;
	char	   *same_run_as;

	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(func_name);
	values[2] = ObjectIdGetDatum(handler);
	nulls[2] = OidIsValid(handler) ? ' ' : 'n';
	values[3] = library ? CStringGetTextDatum(library) : (Datum) 0;
	nulls[3] = library ? ' ' : 'n';
	values[4] = symbol ? CStringGetTextDatum(symbol) : (Datum) 0;
	nulls[4] = symbol ? ' ' : 'n';
	values[5] = ObjectIdGetDatum(opt->run_as);
	values[6] = Int32GetDatum(opt->max_attempts);
	values[7] = opt->backoff ? IntervalPGetDatum(opt->backoff) : (Datum) 0;
	nulls[7] = opt->backoff ? ' ' : 'n';
	values[8] = opt->timeout ? IntervalPGetDatum(opt->timeout) : (Datum) 0;
	nulls[8] = opt->timeout ? ' ' : 'n';
	values[9] = ObjectIdGetDatum(caller);
	values[10] = BoolGetDatum(opt->keep_result);

	(void) registry_begin(caller, tube, func_name, &owner);
	/*
	 * The membership check is repeated in the upsert itself: a registration
	 * committed by someone else after check_may_replace looked (it cannot
	 * see an uncommitted insert) is only updated by a member of its run_as.
	 * A new run_as starts with no producers and a new registered_at (jobs
	 * put before it are not run, see worker.c).
	 */
	by_name = schema_handlers_by_name();
	same_run_as = psprintf("%s OPERATOR(pg_catalog.=) %s", schema_role_oid_sql("h.run_as"),
						   schema_role_oid_sql("excluded.run_as"));
	rc = SPI_execute_with_args(psprintf("INSERT INTO jobq.handlers AS h "
										"(tube, func_name, handler, library, symbol, run_as, "
										" max_attempts, backoff, timeout, registered_by%s) "
										"VALUES ($1, $2, %s, $4, $5, %s, $7, "
										"        COALESCE($8, '1 s'::pg_catalog.interval), $9, %s%s) "
										"ON CONFLICT (tube, func_name) DO UPDATE SET "
										" handler = excluded.handler, library = excluded.library, "
										" symbol = excluded.symbol, run_as = excluded.run_as, "
										" max_attempts = excluded.max_attempts, backoff = excluded.backoff, "
										" timeout = excluded.timeout, registered_by = excluded.registered_by, "
										"%s%s"
										" registered_at = CASE WHEN %s THEN h.registered_at "
										"   ELSE pg_catalog.now() END "
										"WHERE %s",
										with_keep ? ", keep_result" : "",
										/* the signature, printed with the owner's pinned search_path */
										by_name ? "$3::pg_catalog.regprocedure::pg_catalog.text"
										: "$3::pg_catalog.regprocedure",
										schema_role_value_sql(6), schema_role_value_sql(10),
										with_keep ? ", $11" : "",
										with_keep ? " keep_result = excluded.keep_result, " : "",
										(schema_version() >= JOBQ_SCHEMA_1_1)
										? psprintf(" producers = CASE WHEN %s THEN h.producers ELSE '{}' END, ",
												   same_run_as)
										: "",
										same_run_as,
										schema_member_sql(caller, "h.run_as")),
							   with_keep ? 11 : 10, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "jobq: registry insert failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("handler for func_name \"%s\" on tube \"%s\" belongs to another role",
						func_name, tube),
				 errhint("Only members of its run_as role can replace, remove or grant it.")));
	regcache_changed();
	registry_end(&owner);
}

static char *
name_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * The function called func_name on the search_path, which must be the only
 * one of that name.
 */
static Oid
resolve_handler(const char *func_name)
{
	List	   *names = stringToQualifiedNameList(func_name);
	FuncCandidateList cands = FuncnameGetCandidates(names, -1, NIL, false, false, false, true);
	StringInfoData list;
	int			n = 0;

	initStringInfo(&list);
	for (FuncCandidateList c = cands; c != NULL; c = c->next)
	{
		appendStringInfo(&list, "%s%s", n > 0 ? ", " : "", format_procedure(c->oid));
		n++;
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function \"%s\" does not exist", func_name),
				 errhint("Create the function, or pass the handler explicitly as 'name(argtypes)'::regprocedure.")));
	if (n > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_FUNCTION),
				 errmsg("function name \"%s\" is ambiguous", func_name),
				 errdetail("Candidates: %s.", list.data),
				 errhint("Pass the handler explicitly as 'name(argtypes)'::regprocedure.")));
	return cands->oid;
}

/*
 * jobq_register(tube, func_name, handler regprocedure, run_as regrole,
 *				 max_attempts, backoff, timeout)
 */
Datum
jobq_register(PG_FUNCTION_ARGS)
{
	char	   *tube = name_arg(fcinfo, 0, "tube");
	char	   *func_name = name_arg(fcinfo, 1, "func_name");
	Oid			handler;
	HandlerOptions opt;

	job_check_tube(tube);
	job_check_func_name(func_name);
	handler_options(fcinfo, 3, &opt);
	/* the 1.5 schema's parameter */
	if (PG_NARGS() > 7 && !PG_ARGISNULL(7))
		opt.keep_result = PG_GETARG_BOOL(7);
	handler = PG_ARGISNULL(2) ? resolve_handler(func_name) : PG_GETARG_OID(2);
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(handler)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", handler)));
	/* the caller's membership of run_as was checked with the options */
	switch (registry_rule_breach(handler, opt.run_as, GetUserId()))
	{
		case REGISTRY_RULE_HOLDS:
		case REGISTRY_REGISTRANT_NOT_SUPERUSER:
		case REGISTRY_REGISTRANT_NOT_MEMBER:
			break;
		case REGISTRY_NO_EXECUTE:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" may not execute function %s",
							GetUserNameFromId(opt.run_as, false), format_procedure(handler))));
			break;
		case REGISTRY_OWNER_NOT_MEMBER:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("owner \"%s\" of function %s is not a member of role \"%s\"",
							GetUserNameFromId(schema_func_owner(handler), false), format_procedure(handler),
							GetUserNameFromId(opt.run_as, false)),
					 errdetail("A handler runs as run_as, so the owner of its function, who can change its body, must be a member of that role."),
					 errhint("Pass run_as => the function's owner, or a role it is a member of.")));
			break;
	}
	upsert_handler(tube, func_name, handler, NULL, NULL, &opt);
	PG_RETURN_VOID();
}

/*
 * jobq_register_c(tube, func_name, library, symbol, run_as, max_attempts,
 *				   backoff, timeout): a C function that is not declared in SQL.
 */
Datum
jobq_register_c(PG_FUNCTION_ARGS)
{
	char	   *tube = name_arg(fcinfo, 0, "tube");
	char	   *func_name = name_arg(fcinfo, 1, "func_name");
	char	   *library = name_arg(fcinfo, 2, "library");
	char	   *symbol = name_arg(fcinfo, 3, "symbol");
	HandlerOptions opt;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may register C handlers")));
	job_check_tube(tube);
	job_check_func_name(func_name);
	handler_options(fcinfo, 4, &opt);
	/* fails with the dynamic loader's message if the symbol is not there */
	(void) load_external_function(library, symbol, true, NULL);
	upsert_handler(tube, func_name, InvalidOid, library, symbol, &opt);
	PG_RETURN_VOID();
}

/* jobq_unregister(tube, func_name) -> whether there was such a handler */
Datum
jobq_unregister(PG_FUNCTION_ARGS)
{
	char	   *tube = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *func_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	Oid			caller = GetUserId();
	OwnerContext owner;
	int			rc;
	bool		found;

	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(func_name);
	(void) registry_begin(caller, tube, func_name, &owner);
	rc = SPI_execute_with_args(psprintf("DELETE FROM jobq.handlers WHERE tube OPERATOR(pg_catalog.=) $1 "
										"AND func_name OPERATOR(pg_catalog.=) $2 AND %s",
										schema_member_sql(caller, "run_as")),
							   2, types, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "jobq: registry delete failed: %s", SPI_result_code_string(rc));
	found = SPI_processed > 0;
	regcache_changed();
	registry_end(&owner);
	PG_RETURN_BOOL(found);
}

/*
 * Add role to, or remove it from, the producers of (tube, func_name).
 * Returns whether the list changed.
 */
static bool
set_producer(const char *tube, const char *func_name, Oid role, bool grant)
{
	Oid			types[3] = {TEXTOID, TEXTOID, OIDOID};
	Datum		values[3];
	Oid			caller = GetUserId();
	OwnerContext owner;
	int			rc;
	bool		changed;
	char	   *sql;

	job_check_tube(tube);
	job_check_func_name(func_name);
	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(func_name);
	values[2] = ObjectIdGetDatum(role);
	if (!registry_begin(caller, tube, func_name, &owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no handler is registered for func_name \"%s\" on tube \"%s\"",
						func_name, tube)));
	/* a role is in producers once; members of run_as change the list */
	if (schema_handlers_by_name())
		sql = psprintf("UPDATE jobq.handlers SET producers = %s "
					   "WHERE tube OPERATOR(pg_catalog.=) $1 AND func_name OPERATOR(pg_catalog.=) $2 "
					   "AND %s(pg_catalog.pg_get_userbyid($3) OPERATOR(pg_catalog.=) ANY (producers)) AND %s",
					   grant ? "pg_catalog.array_append(producers, pg_catalog.pg_get_userbyid($3))"
					   : "pg_catalog.array_remove(producers, pg_catalog.pg_get_userbyid($3))",
					   grant ? "NOT " : "", schema_member_sql(caller, "run_as"));
	else
		sql = psprintf("UPDATE jobq.handlers SET producers = %s "
					   "WHERE tube OPERATOR(pg_catalog.=) $1 AND func_name OPERATOR(pg_catalog.=) $2 "
					   "AND %s($3 OPERATOR(pg_catalog.=) ANY (producers::pg_catalog.oid[])) AND %s",
					   grant ? "pg_catalog.array_append(producers, $3::pg_catalog.regrole)"
					   : "pg_catalog.array_remove(producers::pg_catalog.oid[], $3)::pg_catalog.regrole[]",
					   grant ? "NOT " : "", schema_member_sql(caller, "run_as"));
	rc = SPI_execute_with_args(sql, 3, types, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "jobq: registry update failed: %s", SPI_result_code_string(rc));
	changed = SPI_processed > 0;
	registry_end(&owner);
	return changed;
}

/*
 * jobq_grant(tube, func_name, role): members of role may enqueue jobs for
 * the registration (which runs as its run_as).  Only members of run_as may
 * grant.
 */
Datum
jobq_grant(PG_FUNCTION_ARGS)
{
	(void) set_producer(name_arg(fcinfo, 0, "tube"), name_arg(fcinfo, 1, "func_name"),
						PG_GETARG_OID(2), true);
	PG_RETURN_VOID();
}

/* jobq_revoke(tube, func_name, role) -> whether role was a producer */
Datum
jobq_revoke(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(set_producer(name_arg(fcinfo, 0, "tube"), name_arg(fcinfo, 1, "func_name"),
								PG_GETARG_OID(2), false));
}
