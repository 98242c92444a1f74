/*
 * launcher.c
 *		The jobq launcher: starts the relay and the job workers, and
 *		restarts them.
 *
 * The launcher is the one statically registered background worker.  It is
 * connected to no database, so it can wait for jobq.database to exist
 * without failing; once it does, it starts the relay and the job workers as
 * dynamic background workers and restarts any that exit, at most once every
 * RESTART_DELAY for a process that exits soon after starting, so a worker
 * that cannot run never turns into a crash loop.
 */
#include "postgres.h"

#include <limits.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "jobq.h"
#include "shmem.h"
#include "worker.h"

#define RESTART_DELAY_MS	10000

char	   *jobq_database = NULL;
int			jobq_workers = 2;

void
launcher_init_gucs(void)
{
	DefineCustomStringVariable("jobq.database",
							   "Database in which jobq's workers run.",
							   NULL,
							   &jobq_database,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.workers",
							"Number of job workers.",
							NULL,
							&jobq_workers,
							2, 0, JOBQ_MAX_WORKERS,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
}

void
launcher_register(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = RESTART_DELAY_MS / 1000;
	strlcpy(bgw.bgw_library_name, "jobq", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "jobq_launcher_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "jobq launcher", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "jobq launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

/*
 * Whether the database exists and accepts connections.  With no database
 * selected only shared catalogs can be read, and only by a plain heap scan
 * (as the autovacuum launcher does it).
 */
static bool
database_exists(const char *name)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), name) == 0 && db->datallowconn)
		{
			found = true;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return found;
}

static BackgroundWorkerHandle *
start_process(int slot)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;
	const char *what = slot == RELAY_SLOT ? "relay" : "worker";

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "jobq", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name,
			slot == RELAY_SLOT ? "jobq_relay_main" : "jobq_worker_main", BGW_MAXLEN);
	if (slot == RELAY_SLOT)
		snprintf(bgw.bgw_name, BGW_MAXLEN, "jobq relay");
	else
		snprintf(bgw.bgw_name, BGW_MAXLEN, "jobq worker %d", slot);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "jobq %s", what);
	bgw.bgw_main_arg = Int32GetDatum(slot);
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
		return NULL;
	return handle;
}

/* a slot's process runs if its handle says so, or (after a launcher
 * restart, with no handle) if it has published its pid */
static bool
slot_running(int slot, BackgroundWorkerHandle *handle)
{
	pid_t		pid;

	if (handle != NULL)
		return GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED;
	return slot_pid(slot) != 0;
}

void
jobq_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *handles[JOBQ_MAX_WORKERS + 1] = {0};
	TimestampTz started[JOBQ_MAX_WORKERS + 1] = {0};
	bool		logged_missing = false;
	bool		logged_no_slot = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("jobq launcher");

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		worker_reload_config();

		if (!database_exists(jobq_database))
		{
			if (!logged_missing)
				ereport(LOG,
						(errmsg("jobq: database \"%s\" does not exist; jobq's workers wait for it",
								jobq_database),
						 errhint("Create the database, or set jobq.database.")));
			logged_missing = true;
		}
		else
		{
			TimestampTz now = GetCurrentTimestamp();

			logged_missing = false;
			for (int slot = 0; slot <= jobq_workers; slot++)
			{
				if (slot_running(slot, handles[slot]))
					continue;
				if (handles[slot] != NULL)
				{
					pfree(handles[slot]);
					handles[slot] = NULL;
				}
				/* one that ran briefly waits before it is tried again */
				if (started[slot] != 0 &&
					!TimestampDifferenceExceeds(started[slot], now, RESTART_DELAY_MS))
					continue;
				handles[slot] = start_process(slot);
				if (handles[slot] == NULL)
				{
					if (!logged_no_slot)
						ereport(WARNING,
								(errmsg("jobq: could not start a background worker"),
								 errhint("Raise max_worker_processes: jobq needs jobq.workers + 2.")));
					logged_no_slot = true;
					break;
				}
				logged_no_slot = false;
				started[slot] = now;
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
