/*
 * registry_cache.h
 *		The one per-process cache of jobq.handlers, read by the producers'
 *		rights (producer_acl.c) and by the workers' dispatch (dispatch.c).
 */
#ifndef JOBQ_REGISTRY_CACHE_H
#define JOBQ_REGISTRY_CACHE_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* a row of jobq.handlers, its names resolved; strings and arrays palloc'd */
typedef struct Registration
{
	bool		registered;		/* false: nobody registered (tube, func_name) */
	Oid			fn;				/* the handler function now; InvalidOid if gone or library/symbol */
	char	   *signature;		/* the function as registered; NULL for library/symbol */
	char	   *library;
	char	   *symbol;
	Oid			run_as;			/* InvalidOid: the role no longer exists */
	char	   *run_as_name;	/* as registered */
	int			nproducers;
	Oid		   *producers;		/* roles that no longer exist left out */
	int			max_attempts;
	int64		backoff_ms;
	int64		timeout_ms;		/* 0: bounded by the job's ttr */
	Oid			registered_by;	/* InvalidOid: the role no longer exists */
	TimestampTz registered_at;
	bool		keep_result;	/* what the handler returns goes to jobq.done */
} Registration;

extern void regcache_lookup(const char *tube, const char *func_name, Registration *reg);
extern void regcache_changed(void);

#endif							/* JOBQ_REGISTRY_CACHE_H */
