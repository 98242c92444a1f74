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
 * The check runs before any write or network I/O, on the registrations
 * that registry_cache.c keeps.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"

#include "producer_acl.h"
#include "registry_cache.h"
#include "schema.h"

/* whether 'role' may enqueue jobs for the registration reg */
static bool
acl_allows(const Registration *reg, Oid role)
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
	Registration reg;

	regcache_lookup(tube, func_name, &reg);
	return acl_allows(&reg, role);
}

/*
 * Error out (42501) unless 'role' may enqueue jobs for (tube, func_name).
 * Call before anything is written or sent.
 */
void
acl_check_producer(Oid role, const char *tube, const char *func_name)
{
	Registration reg;
	const char *run_as_name;

	regcache_lookup(tube, func_name, &reg);
	if (acl_allows(&reg, role))
		return;
	run_as_name = reg.run_as_name ? reg.run_as_name : "?";
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to enqueue jobs for func_name \"%s\" on tube \"%s\"",
					func_name, tube),
			 errdetail("Its handler runs as role \"%s\"; the current role is neither a member of it nor a granted producer.",
					   run_as_name),
			 errhint("A member of role \"%s\" can allow it with jobq_grant(tube, func_name, role).",
					 run_as_name)));
}
