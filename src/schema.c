/*
 * schema.c
 *		Acting on jobq's own tables with their owner's rights.
 *
 * The tables of schema jobq belong to the role that created the extension
 * and are not granted to anybody.  Functions that write them on a caller's
 * behalf (jobq_put, jobq_register, ...) switch to that owner for the SQL
 * they run, in the same way as PostgreSQL's own RI triggers do.  An error
 * inside restores the user through transaction abort.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "schema.h"

static Oid
jobq_tables_owner(void)
{
	Oid			nsp = get_namespace_oid("jobq", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("outbox", nsp) : InvalidOid;
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table jobq.outbox does not exist"),
				 errhint("Is the jobq extension installed in this database?")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

void
schema_become_owner(OwnerContext *ctx)
{
	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec_context);
	SetUserIdAndSecContext(jobq_tables_owner(),
						   ctx->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
schema_restore_user(OwnerContext *ctx)
{
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
}
