/*
 * schema.c
 *		Running jobq's own SQL safely: with a pinned search_path, and on
 *		jobq's tables with their owner's rights.
 *
 * The tables of schema jobq belong to the role that created the extension
 * and are not granted to anybody.  Functions that write them on a caller's
 * behalf (jobq_put, jobq_register, ...) switch to that owner for the SQL
 * they run, in the same way as PostgreSQL's own RI triggers do.
 *
 * Whoever runs it, SQL that jobq builds never resolves a name through a
 * search_path that somebody else controls (the caller's, a database- or
 * role-level setting, or what a handler left behind): every scope below
 * opens a GUC nest level and sets search_path to "pg_catalog, pg_temp" in
 * it, as PostgreSQL's maintenance commands do, and the SQL itself
 * schema-qualifies its functions and operators.  Leaving the scope undoes
 * the setting; an error inside undoes it (and the user switch) through
 * transaction or subtransaction abort.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "schema.h"

#define PINNED_SEARCH_PATH	"pg_catalog, pg_temp"

/* The owner of jobq's tables, hence of the extension's objects. */
Oid
schema_tables_owner(void)
{
	Oid			nsp = get_namespace_oid("jobq", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("handlers", nsp) : InvalidOid;
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table jobq.handlers does not exist"),
				 errhint("Is the jobq extension installed in this database?")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Open a GUC nest level with search_path pinned; returns the level. */
static int
schema_pin_search_path(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", PINNED_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/* Close a level opened by schema_pin_search_path, undoing what it set. */
static void
schema_unpin_search_path(int nest)
{
	AtEOXact_GUC(true, nest);
}

/*
 * Become the tables' owner with search_path pinned.  The caller's identity
 * stays in ctx->save_userid: check the caller's rights with it, never with
 * GetUserId(), which now names the owner.
 */
void
schema_become_owner(OwnerContext *ctx)
{
	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec_context);
	SetUserIdAndSecContext(schema_tables_owner(),
						   ctx->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ctx->guc_nest = schema_pin_search_path();
}

void
schema_restore_user(OwnerContext *ctx)
{
	schema_unpin_search_path(ctx->guc_nest);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
}

/* The owner of function fn, or InvalidOid if it is gone. */
Oid
schema_func_owner(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}

/* A prepared statement kept for the life of the process (SPI connected). */
SPIPlanPtr
schema_keep_plan(const char *sql, int nargs, Oid *types)
{
	return schema_keep_plan_opts(sql, nargs, types, 0);
}

/*
 * The same with planner options, such as CURSOR_OPT_GENERIC_PLAN for a
 * statement run many times a second whose plan never depends on its
 * parameters' values.
 */
SPIPlanPtr
schema_keep_plan_opts(const char *sql, int nargs, Oid *types, int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, cursor_options);

	if (plan == NULL)
		elog(ERROR, "jobq: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}
