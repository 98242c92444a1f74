/*
 * producer_acl.c
 *		Who may enqueue jobs for a registered handler.
 *
 * A registration of (tube, func_name) runs its handler as run_as, so a job
 * for it is a request to run code with run_as's rights.  Enqueueing one from
 * SQL (jobq_put, jobq_put_now, the trigger, jobq_retry_failed) therefore
 * needs the caller to be a member of run_as, or of a role that a member of
 * run_as granted it to with jobq_grant (the registration's "producers").
 * Pairs that nobody registered in this database stay free: their consumers
 * live elsewhere, and a job for them runs nothing here.
 *
 * The check runs before any write or network I/O.  Registrations are cached
 * per backend, keyed by (tube, func_name); any change to jobq.handlers sends
 * a relcache invalidation for it (jobq_handlers_changed, a statement
 * trigger), which empties the cache.  Role memberships are not cached here:
 * is_member_of_role has its own cache, invalidated by GRANT and REVOKE.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "beanstalk.h"
#include "job.h"
#include "producer_acl.h"
#include "schema.h"

PG_FUNCTION_INFO_V1(jobq_handlers_changed);

#define ACL_CACHE_MAX	4096	/* entries; the cache starts over beyond */

typedef struct AclKey
{
	char		tube[BS_MAX_NAME + 1];
	char		func_name[JOB_MAX_FUNC_NAME + 1];
} AclKey;

typedef struct AclEntry
{
	AclKey		key;
	bool		registered;
	Oid			run_as;
	int			nproducers;
	Oid		   *producers;		/* in acl_cxt */
} AclEntry;

static HTAB *acl_cache = NULL;
static MemoryContext acl_cxt = NULL;
static bool acl_callback_registered = false;
static SPIPlanPtr acl_plan = NULL;
static bool acl_plan_has_producers;
static bool acl_plan_by_name;
static Oid	acl_handlers_relid = InvalidOid;
static uint64 acl_generation = 0;	/* bumped by every invalidation */

static void
acl_cache_reset(void)
{
	if (acl_cxt != NULL)
		MemoryContextReset(acl_cxt);
	acl_cache = NULL;
}

/* an invalidation of jobq.handlers, or of every relation, empties the cache */
static void
acl_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == acl_handlers_relid)
	{
		acl_cache_reset();
		acl_generation++;
	}
}

static void
acl_cache_init(void)
{
	HASHCTL		ctl;

	if (acl_cxt == NULL)
		acl_cxt = AllocSetContextCreate(CacheMemoryContext, "jobq producer ACL cache",
										ALLOCSET_SMALL_SIZES);
	if (!acl_callback_registered)
	{
		CacheRegisterRelcacheCallback(acl_relcache_callback, (Datum) 0);
		acl_callback_registered = true;
	}
	ctl.keysize = sizeof(AclKey);
	ctl.entrysize = sizeof(AclEntry);
	ctl.hcxt = acl_cxt;
	acl_cache = hash_create("jobq producer ACL cache", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Read the registration of (tube, func_name) into *entry, as the tables'
 * owner; producers are palloc'd in the current context.
 */
static void
acl_load(const char *tube, const char *func_name, AclEntry *entry)
{
	Datum		values[2];
	OwnerContext owner;
	MemoryContext cxt = CurrentMemoryContext;
	bool		has_producers;
	bool		by_name;
	int			rc;

	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(func_name);
	schema_become_owner(&owner);
	acl_handlers_relid = get_relname_relid("handlers", get_namespace_oid("jobq", false));
	has_producers = acl_schema_has_producers();
	by_name = schema_handlers_by_name();
	SPI_connect();
	if (acl_plan != NULL && (acl_plan_has_producers != has_producers || acl_plan_by_name != by_name))
	{
		SPI_freeplan(acl_plan);
		acl_plan = NULL;
	}
	if (acl_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, TEXTOID};

		/* roles by name (1.4) resolve now; one that no longer exists is NULL */
		acl_plan = schema_keep_plan(psprintf("SELECT %s, %s "
											 "FROM jobq.handlers "
											 "WHERE tube OPERATOR(pg_catalog.=) $1 "
											 "AND func_name OPERATOR(pg_catalog.=) $2",
											 schema_role_oid_sql("run_as"),
											 has_producers ? schema_role_oids_sql("producers")
											 : "NULL::pg_catalog.oid[]"),
									2, types);
		acl_plan_has_producers = has_producers;
		acl_plan_by_name = by_name;
	}
	/*
	 * The latest committed state, not the caller's snapshot: a repeatable
	 * read transaction must not put a registration that was revoked since
	 * its snapshot into the cache (the invalidation it sent has been
	 * processed already, and would not empty the cache again).
	 */
	rc = SPI_execute_snapshot(acl_plan, values, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: registry lookup failed: %s", SPI_result_code_string(rc));
	entry->registered = (SPI_processed == 1);
	entry->run_as = InvalidOid;
	entry->nproducers = 0;
	entry->producers = NULL;
	if (entry->registered)
	{
		bool		isnull;
		Datum		d;

		entry->run_as = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
		if (isnull)
			entry->run_as = InvalidOid;
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			n;

			deconstruct_array(DatumGetArrayTypeP(d), OIDOID, sizeof(Oid), true,
							  TYPALIGN_INT, &elems, &nulls, &n);
			entry->producers = MemoryContextAlloc(cxt, sizeof(Oid) * Max(n, 1));
			for (int i = 0; i < n; i++)
				if (!nulls[i])
					entry->producers[entry->nproducers++] = DatumGetObjectId(elems[i]);
		}
	}
	SPI_finish();
	schema_restore_user(&owner);
}

/*
 * The registration of (tube, func_name), as a copy in the current memory
 * context: catalog lookups made while the caller uses it (role
 * memberships) may process invalidations that empty the cache.
 */
static void
acl_lookup(const char *tube, const char *func_name, AclEntry *result)
{
	AclKey		key;
	AclEntry   *entry = NULL;
	bool		found;
	uint64		generation;

	/*
	 * A name longer than the key's room (only a hand-written row of
	 * jobq.failed can hold one) is looked up but never cached: cut to fit,
	 * its answer would be taken for that of the registration the cut name
	 * is.
	 */
	if (strlen(tube) >= sizeof(key.tube) || strlen(func_name) >= sizeof(key.func_name))
	{
		acl_load(tube, func_name, result);
		return;
	}
	memset(&key, 0, sizeof(key));
	strlcpy(key.tube, tube, sizeof(key.tube));
	strlcpy(key.func_name, func_name, sizeof(key.func_name));
	if (acl_cache != NULL)
		entry = hash_search(acl_cache, &key, HASH_FIND, NULL);
	if (entry != NULL)
	{
		*result = *entry;
		result->producers = palloc(sizeof(Oid) * Max(entry->nproducers, 1));
		memcpy(result->producers, entry->producers, sizeof(Oid) * entry->nproducers);
		return;
	}

	generation = acl_generation;
	acl_load(tube, func_name, result);
	result->key = key;

	/*
	 * Remember it, unless an invalidation came in during the load: what was
	 * read may be older than what it announced.
	 */
	if (generation != acl_generation)
		return;
	if (acl_cache == NULL || hash_get_num_entries(acl_cache) >= ACL_CACHE_MAX)
	{
		acl_cache_reset();
		acl_cache_init();
	}
	entry = hash_search(acl_cache, &key, HASH_ENTER, &found);
	*entry = *result;
	entry->producers = MemoryContextAlloc(acl_cxt, sizeof(Oid) * Max(result->nproducers, 1));
	memcpy(entry->producers, result->producers, sizeof(Oid) * result->nproducers);
}

/* whether 'role' may enqueue jobs for the registration reg */
static bool
acl_entry_allows(const AclEntry *reg, Oid role)
{
	if (!reg->registered || is_member_of_role(role, reg->run_as))
		return true;
	for (int i = 0; i < reg->nproducers; i++)
		if (is_member_of_role(role, reg->producers[i]))
			return true;
	return false;
}

/*
 * Whether 'role' may enqueue jobs for (tube, func_name), which is also who
 * may see what is known of such a job (its error in jobq.workers).
 */
bool
acl_may_produce(Oid role, const char *tube, const char *func_name)
{
	AclEntry	reg;

	acl_lookup(tube, func_name, &reg);
	return acl_entry_allows(&reg, role);
}

/*
 * Error out (42501) unless 'role' may enqueue jobs for (tube, func_name).
 * Call before anything is written or sent.
 */
void
acl_check_producer(Oid role, const char *tube, const char *func_name)
{
	AclEntry	reg;
	const char *run_as_name;

	acl_lookup(tube, func_name, &reg);
	if (acl_entry_allows(&reg, role))
		return;
	run_as_name = GetUserNameFromId(reg.run_as, true);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to enqueue jobs for func_name \"%s\" on tube \"%s\"",
					func_name, tube),
			 errdetail("Its handler runs as role \"%s\"; the current role is neither a member of it nor a granted producer.",
					   run_as_name ? run_as_name : "?"),
			 errhint("A member of role \"%s\" can allow it with jobq_grant(tube, func_name, role).",
					 run_as_name ? run_as_name : "?")));
}

/* whether jobq.handlers has the producers column (not on the 1.0 schema) */
bool
acl_schema_has_producers(void)
{
	return schema_version() >= JOBQ_SCHEMA_1_1;
}

/* Tell every backend that jobq.handlers changed (sent at commit). */
void
acl_registry_changed(void)
{
	Oid			nsp = get_namespace_oid("jobq", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("handlers", nsp) : InvalidOid;

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
