/*
 * registry_cache.c
 *		The one per-process cache of jobq.handlers.
 *
 * Producers (producer_acl.c: may this role enqueue for (tube, func_name)?)
 * and the workers (dispatch.c: which function runs it, as whom?) read the
 * same rows; this cache keeps each, keyed by (tube, func_name), with its
 * names resolved: the function's signature to the function it names now,
 * role names to roles (schema.c: by name since 1.4, as oids before).  A
 * pair nobody registered is cached too, as such.
 *
 * One invalidation path empties it: any change to jobq.handlers (its
 * statement trigger, jobq_handlers_changed, sends a relcache invalidation
 * for the table, whoever made the change), and any change to pg_proc or
 * pg_authid (a function or role renamed, dropped or created under a
 * registered name), pg_namespace or pg_type (a schema or an argument type
 * renamed: the signature changes).  Invalidations are taken in at the next lock or
 * AcceptInvalidationMessages, which the worker calls before every job.  A
 * load that an invalidation overtook is used but not kept: what it read may
 * be older than what the invalidation announced.  Role memberships are not
 * cached here: is_member_of_role has its own cache.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "beanstalk.h"
#include "job.h"
#include "registry_cache.h"
#include "schema.h"

PG_FUNCTION_INFO_V1(jobq_handlers_changed);

#define REGCACHE_MAX	4096	/* entries; the cache starts over beyond */

typedef struct RegKey
{
	char		tube[BS_MAX_NAME + 1];
	char		func_name[JOB_MAX_FUNC_NAME + 1];
} RegKey;

typedef struct RegEntry
{
	RegKey		key;
	Registration reg;			/* its strings and arrays in regcache_cxt */
} RegEntry;

static HTAB *regcache = NULL;
static MemoryContext regcache_cxt = NULL;
static bool callbacks_registered = false;
static Oid	handlers_relid = InvalidOid;
static uint64 generation = 0;	/* bumped by every invalidation */
static SPIPlanPtr load_plan = NULL;
static JobqSchemaVersion load_plan_version;

static void
regcache_reset(void)
{
	if (regcache_cxt != NULL)
		MemoryContextReset(regcache_cxt);
	regcache = NULL;
	generation++;
}

static void
relcache_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == handlers_relid)
		regcache_reset();
}

static void
catalog_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	regcache_reset();
}

/*
 * The callbacks, before anything is read: an invalidation taken in during
 * the first load must count too.  A function's signature also changes with
 * its schema's name and its argument types' names.
 */
static void
regcache_register_callbacks(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, catalog_changed, (Datum) 0);
	callbacks_registered = true;
}

static void
regcache_init(void)
{
	HASHCTL		ctl;

	if (regcache_cxt == NULL)
		regcache_cxt = AllocSetContextCreate(CacheMemoryContext, "jobq registry cache",
											 ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(RegKey);
	ctl.entrysize = sizeof(RegEntry);
	ctl.hcxt = regcache_cxt;
	regcache = hash_create("jobq registry cache", 64, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* reg with its strings and arrays copied into cxt */
static void
registration_copy(Registration *to, const Registration *from, MemoryContext cxt)
{
	*to = *from;
	to->signature = from->signature ? MemoryContextStrdup(cxt, from->signature) : NULL;
	to->library = from->library ? MemoryContextStrdup(cxt, from->library) : NULL;
	to->symbol = from->symbol ? MemoryContextStrdup(cxt, from->symbol) : NULL;
	to->run_as_name = from->run_as_name ? MemoryContextStrdup(cxt, from->run_as_name) : NULL;
	to->producers = MemoryContextAlloc(cxt, sizeof(Oid) * Max(from->nproducers, 1));
	memcpy(to->producers, from->producers, sizeof(Oid) * from->nproducers);
}

static int64
interval_ms(Datum d)
{
	return job_interval_usecs(DatumGetIntervalP(d)) / 1000;
}

static Oid
oid_or_invalid(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/* the SQL that reads one registration, names resolved (schema.c) */
static SPIPlanPtr
load_plan_for(JobqSchemaVersion version)
{
	Oid			types[2] = {TEXTOID, TEXTOID};

	if (load_plan != NULL && load_plan_version == version)
		return load_plan;
	if (load_plan != NULL)
	{
		SPI_freeplan(load_plan);
		load_plan = NULL;		/* not used again if the next prepare fails */
	}
	/* before 1.4 handler is a regprocedure, which prints as the same signature */
	load_plan = schema_keep_plan(psprintf("SELECT handler::pg_catalog.text, library, symbol, "
										  "%s, run_as::pg_catalog.text, %s, max_attempts, "
										  "backoff, timeout, %s, registered_at, %s "
										  "FROM jobq.handlers WHERE tube OPERATOR(pg_catalog.=) $1 "
										  "AND func_name OPERATOR(pg_catalog.=) $2",
										  schema_role_oid_sql("run_as"),
										  version >= JOBQ_SCHEMA_1_1 ? schema_role_oids_sql("producers")
										  : "NULL::pg_catalog.oid[]",
										  schema_role_oid_sql("registered_by"),
										  version >= JOBQ_SCHEMA_1_5 ? "keep_result" : "false"),
								 2, types);
	load_plan_version = version;
	return load_plan;
}

/* Read the registration of (tube, func_name), as the tables' owner. */
static void
regcache_load(const char *tube, const char *func_name, Registration *reg)
{
	Datum		values[2];
	OwnerContext owner;
	MemoryContext cxt = CurrentMemoryContext;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	int			rc;

	memset(reg, 0, sizeof(*reg));
	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(func_name);
	schema_become_owner(&owner);
	handlers_relid = schema_relid("handlers");
	SPI_connect();

	/*
	 * The latest committed state, not the caller's snapshot: a repeatable
	 * read transaction must not put a registration that was revoked since
	 * its snapshot into the cache (the invalidation it sent has been
	 * processed already, and would not empty the cache again).
	 */
	rc = SPI_execute_snapshot(load_plan_for(schema_version()), values, NULL,
							  GetLatestSnapshot(), InvalidSnapshot, true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: registry lookup failed: %s", SPI_result_code_string(rc));
	reg->registered = SPI_processed == 1;
	if (reg->registered)
	{
		MemoryContext spi = MemoryContextSwitchTo(cxt);

		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		reg->signature = SPI_getvalue(tup, desc, 1);
		reg->fn = schema_function_by_signature(reg->signature);
		reg->library = SPI_getvalue(tup, desc, 2);
		reg->symbol = SPI_getvalue(tup, desc, 3);
		reg->run_as = oid_or_invalid(tup, desc, 4);
		reg->run_as_name = SPI_getvalue(tup, desc, 5);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		reg->producers = palloc(sizeof(Oid) * 1);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			n;

			deconstruct_array(DatumGetArrayTypeP(d), OIDOID, sizeof(Oid), true,
							  TYPALIGN_INT, &elems, &nulls, &n);
			reg->producers = palloc(sizeof(Oid) * Max(n, 1));
			for (int i = 0; i < n; i++)
				if (!nulls[i])
					reg->producers[reg->nproducers++] = DatumGetObjectId(elems[i]);
		}
		reg->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
		reg->backoff_ms = interval_ms(SPI_getbinval(tup, desc, 8, &isnull));
		d = SPI_getbinval(tup, desc, 9, &isnull);
		reg->timeout_ms = isnull ? 0 : interval_ms(d);
		reg->registered_by = oid_or_invalid(tup, desc, 10);
		reg->registered_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 11, &isnull));
		reg->keep_result = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
		MemoryContextSwitchTo(spi);
	}
	else
		reg->producers = MemoryContextAlloc(cxt, sizeof(Oid));
	SPI_finish();
	schema_restore_user(&owner);
}

/*
 * The registration of (tube, func_name) (reg->registered false if there is
 * none), as a copy in the current memory context: catalog lookups that the
 * caller makes while it uses it (role memberships) may take in
 * invalidations that empty the cache.
 */
void
regcache_lookup(const char *tube, const char *func_name, Registration *reg)
{
	RegKey		key;
	RegEntry   *entry = NULL;
	bool		found;
	uint64		before;

	regcache_register_callbacks();

	/*
	 * A name longer than the key's room (only a hand-written row of
	 * jobq.failed can hold one) is looked up but never cached: cut to fit,
	 * its answer would be taken for that of the registration the cut name
	 * is.
	 */
	if (strlen(tube) >= sizeof(key.tube) || strlen(func_name) >= sizeof(key.func_name))
	{
		regcache_load(tube, func_name, reg);
		return;
	}
	memset(&key, 0, sizeof(key));
	strlcpy(key.tube, tube, sizeof(key.tube));
	strlcpy(key.func_name, func_name, sizeof(key.func_name));
	if (regcache != NULL)
		entry = hash_search(regcache, &key, HASH_FIND, NULL);
	if (entry != NULL)
	{
		registration_copy(reg, &entry->reg, CurrentMemoryContext);
		return;
	}

	before = generation;
	regcache_load(tube, func_name, reg);
	if (generation != before)
		return;
	if (regcache == NULL || hash_get_num_entries(regcache) >= REGCACHE_MAX)
	{
		regcache_reset();
		regcache_init();
	}
	entry = hash_search(regcache, &key, HASH_ENTER, &found);
	registration_copy(&entry->reg, reg, regcache_cxt);
}

/* Tell every backend that jobq.handlers changed (sent at commit). */
void
regcache_changed(void)
{
	Oid			relid = schema_relid("handlers");

	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
}

/* statement trigger on jobq.handlers: whatever changed it, caches notice */
Datum
jobq_handlers_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("jobq_handlers_changed() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	PG_RETURN_POINTER(NULL);
}
