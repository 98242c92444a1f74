/*
 * schema.h
 *		Running jobq's own SQL with a pinned search_path, and on jobq's
 *		tables (schema jobq) with their owner's rights, so that callers need
 *		EXECUTE on jobq's functions and nothing more.
 */
#ifndef JOBQ_SCHEMA_H
#define JOBQ_SCHEMA_H

#include "postgres.h"

#include "executor/spi.h"

typedef struct OwnerContext
{
	Oid			save_userid;	/* the caller: check its rights with this */
	int			save_sec_context;
	int			guc_nest;
} OwnerContext;

extern Oid	schema_relid(const char *relname);
extern Oid	schema_tables_owner(void);
extern void schema_become_owner(OwnerContext *ctx);
extern void schema_restore_user(OwnerContext *ctx);
extern Oid	schema_func_owner(Oid fn);
/* the versions of jobq's tables that the library tells apart */
typedef enum JobqSchemaVersion
{
	JOBQ_SCHEMA_NONE,			/* not installed */
	JOBQ_SCHEMA_1_0,
	JOBQ_SCHEMA_1_1,			/* jobq.handlers.producers */
	JOBQ_SCHEMA_1_2,			/* jobq.outbox_packs */
	JOBQ_SCHEMA_1_3,			/* jobq.failed.server */
	JOBQ_SCHEMA_1_4,			/* jobq.handlers names functions and roles */
	JOBQ_SCHEMA_1_5				/* jobq.sent, jobq.unique_keys, a job's lifecycle */
} JobqSchemaVersion;

extern JobqSchemaVersion schema_version(void);
extern bool schema_handlers_by_name(void);
extern char *schema_role_oid_sql(const char *column);
extern char *schema_role_oids_sql(const char *column);
extern char *schema_role_value_sql(int param);
extern char *schema_member_sql(Oid role, const char *column);
extern char *schema_function_signature(Oid fn);
extern Oid	schema_function_by_signature(const char *signature);
extern SPIPlanPtr schema_keep_plan(const char *sql, int nargs, Oid *types);
extern SPIPlanPtr schema_keep_plan_opts(const char *sql, int nargs, Oid *types,
										int cursor_options);

#endif							/* JOBQ_SCHEMA_H */
