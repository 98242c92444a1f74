/*
 * jobq.c
 *		Module entry point: defines every module's settings and, when jobq
 *		is in shared_preload_libraries, its shared memory and background
 *		workers.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "databases.h"
#include "jobq.h"
#include "outbox.h"
#include "pool.h"
#include "shmem.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	beanstalk_init_gucs();
	pool_init_gucs();
	put_init_gucs();
	signing_init_gucs();
	worker_init_gucs();
	job_run_init_gucs();
	touch_init_gucs();
	relay_init_gucs();
	outbox_init();

	/*
	 * Loaded by a backend (jobq_put_now and the admin functions work without
	 * the preload): no workers, and no PGC_POSTMASTER settings, which only
	 * a preload may define.
	 */
	if (!process_shared_preload_libraries_in_progress)
	{
		MarkGUCPrefixReserved("jobq");
		return;
	}
	databases_init_gucs();
	launcher_init_gucs();
	MarkGUCPrefixReserved("jobq");
	shmem_install_hooks();
	/*
	 * pg_upgrade runs both servers in binary-upgrade mode: nothing may
	 * send, run or prune jobs then (pg_cron does the same).
	 */
	if (!IsBinaryUpgrade)
		launcher_register();
}
