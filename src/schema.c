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
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/catcache.h"

#include "schema.h"

#define PINNED_SEARCH_PATH	"pg_catalog, pg_temp"

/* The relation jobq.<relname>, or InvalidOid (no such relation, no schema jobq). */
Oid
schema_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid("jobq", true);

	return OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
}

/* The owner of jobq's tables, hence of the extension's objects. */
Oid
schema_tables_owner(void)
{
	Oid			relid = schema_relid("handlers");
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

/*
 * Which version of jobq's tables this database has: the library serves
 * every schema from 1.0 on until ALTER EXTENSION jobq UPDATE, and each
 * difference it cares about is read from the catalog here, the one place
 * (a few syscache lookups; not cached, so that an update is seen at once).
 */
JobqSchemaVersion
schema_version(void)
{
	Oid			handlers = schema_relid("handlers");
	Oid			failed;
	AttrNumber	att;

	if (!OidIsValid(handlers))
		return JOBQ_SCHEMA_NONE;
	if (OidIsValid(schema_relid("unique_keys")))
		return JOBQ_SCHEMA_1_5;
	att = get_attnum(handlers, "run_as");
	if (att != InvalidAttrNumber && get_atttype(handlers, att) == NAMEOID)
		return JOBQ_SCHEMA_1_4;
	failed = schema_relid("failed");
	if (OidIsValid(failed) && get_attnum(failed, "server") != InvalidAttrNumber)
		return JOBQ_SCHEMA_1_3;
	if (OidIsValid(schema_relid("outbox_packs")))
		return JOBQ_SCHEMA_1_2;
	if (get_attnum(handlers, "producers") != InvalidAttrNumber)
		return JOBQ_SCHEMA_1_1;
	return JOBQ_SCHEMA_1_0;
}

/*
 * How jobq.handlers names functions and roles.  Before 1.4 as reg* values
 * (oids: pg_upgrade refuses tables with such columns, and pg_dump/restore
 * gives every function and role a new oid), since 1.4 by name: handler is
 * the function's signature (schema_function_signature), run_as,
 * registered_by and producers are role names, resolved when used, as
 * pg_cron does.  The library serves both until ALTER EXTENSION jobq UPDATE:
 * the helpers below give the SQL for either.
 */
bool
schema_handlers_by_name(void)
{
	return schema_version() >= JOBQ_SCHEMA_1_4;
}

/* SQL for the oid of the role in a column of jobq.handlers (NULL: no such role) */
char *
schema_role_oid_sql(const char *column)
{
	if (schema_handlers_by_name())
		return psprintf("pg_catalog.to_regrole(pg_catalog.quote_ident(%s))::pg_catalog.oid", column);
	return psprintf("%s::pg_catalog.oid", column);
}

/* ... and for the oid[] of the producers column (NULL elements: no such role) */
char *
schema_role_oids_sql(const char *column)
{
	if (schema_handlers_by_name())
		return psprintf("ARRAY(SELECT pg_catalog.to_regrole(pg_catalog.quote_ident(p))::pg_catalog.oid "
						"FROM pg_catalog.unnest(%s) p)", column);
	return psprintf("%s::pg_catalog.oid[]", column);
}

/* SQL for the value of a role column, from the oid in parameter $param */
char *
schema_role_value_sql(int param)
{
	if (schema_handlers_by_name())
		return psprintf("pg_catalog.pg_get_userbyid($%d)", param);
	return psprintf("$%d::pg_catalog.regrole", param);
}

/*
 * SQL that is true when 'role' is a member of the role in a column; for a
 * role that no longer exists (dropped or renamed since), true only for
 * superusers, who are then the only ones to replace or remove it.
 */
char *
schema_member_sql(Oid role, const char *column)
{
	return psprintf("COALESCE(pg_catalog.pg_has_role(%u::pg_catalog.oid, %s, 'MEMBER'), %s)",
					role, schema_role_oid_sql(column), superuser_arg(role) ? "true" : "false");
}

/*
 * A function's signature as jobq.handlers keeps it: what regprocedure
 * prints with search_path pinned, e.g. "public.send_mail(jsonb)" (only
 * pg_catalog's names go unqualified), so that it reads the same in every
 * session and after pg_dump or pg_upgrade, which oids do not.
 */
char *
schema_function_signature(Oid fn)
{
	int			nest = schema_pin_search_path();
	char	   *sig = format_procedure(fn);

	schema_unpin_search_path(nest);
	return sig;
}

/*
 * One identifier of a qualified name as quote_identifier writes it, from
 * *p into out (NAMEDATALEN bytes); false if it is not one.
 */
static bool
signature_ident(const char **p, char *out)
{
	const char *s = *p;
	int			n = 0;

	if (*s == '"')
	{
		for (s++;; s++)
		{
			if (*s == '\0')
				return false;
			if (*s == '"' && s[1] != '"')
				break;
			if (*s == '"')
				s++;
			if (n == NAMEDATALEN - 1)
				return false;
			out[n++] = *s;
		}
		s++;
	}
	else
	{
		while (*s != '\0' && *s != '.' && *s != '(')
		{
			if (n == NAMEDATALEN - 1)
				return false;
			out[n++] = *s++;
		}
	}
	out[n] = '\0';
	*p = s;
	return n > 0;
}

/*
 * The function a signature (schema_function_signature) names now, or
 * InvalidOid if there is none: dropped, renamed, moved to another schema,
 * or one of its argument types renamed.  Never throws, whatever the text
 * (jobq.handlers may have been edited by hand): the signature is matched
 * against those of the functions of that name, not parsed as SQL.
 */
Oid
schema_function_by_signature(const char *signature)
{
	const char *p = signature;
	char		first[NAMEDATALEN];
	char		second[NAMEDATALEN];
	const char *nspname = "pg_catalog";
	const char *proname = first;
	Oid			nsp;
	Oid			found = InvalidOid;
	CatCList   *list;

	if (signature == NULL || !signature_ident(&p, first))
		return InvalidOid;
	if (*p == '.')
	{
		p++;
		if (!signature_ident(&p, second))
			return InvalidOid;
		nspname = first;
		proname = second;
	}
	if (*p != '(')
		return InvalidOid;
	nsp = get_namespace_oid(nspname, true);
	if (!OidIsValid(nsp))
		return InvalidOid;
	list = SearchSysCacheList1(PROCNAMEARGSNSP, CStringGetDatum(proname));
	for (int i = 0; i < list->n_members && !OidIsValid(found); i++)
	{
		HeapTuple	tup = &list->members[i]->tuple;
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		if (proc->pronamespace == nsp &&
			strcmp(schema_function_signature(proc->oid), signature) == 0)
			found = proc->oid;
	}
	ReleaseSysCacheList(list);
	return found;
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
