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

#include "jobq.h"
#include "shmem.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	beanstalk_init_gucs();
	put_init_gucs();
	signing_init_gucs();
	launcher_init_gucs();
	MarkGUCPrefixReserved("jobq");

	if (!process_shared_preload_libraries_in_progress)
		return;

	shmem_install_hooks();
	launcher_register();
}
