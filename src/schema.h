/*
 * schema.h
 *		Acting on jobq's own tables (schema jobq) with their owner's rights,
 *		so that callers need EXECUTE on jobq's functions and nothing more.
 */
#ifndef JOBQ_SCHEMA_H
#define JOBQ_SCHEMA_H

#include "postgres.h"

typedef struct OwnerContext
{
	Oid			save_userid;
	int			save_sec_context;
} OwnerContext;

extern void schema_become_owner(OwnerContext *ctx);
extern void schema_restore_user(OwnerContext *ctx);

#endif							/* JOBQ_SCHEMA_H */
