/*
 * launcher.c
 *		The jobq launcher: starts the relay and the job workers, and
 *		restarts them.
 *
 * The launcher is the one statically registered background worker.  It is
 * connected to no database, so it can wait for the databases of
 * jobq.database to exist without failing; for each that does, it starts a
 * relay and jobq.workers job workers as dynamic background workers (a
 * background worker stays in the database it connected to, so each database
 * has its own) and restarts any that exit, at most once every RESTART_DELAY
 * for a process that exits soon after starting, so a worker that cannot run
 * never turns into a crash loop.
 *
 * jobq.database is read again on SIGHUP: a database added to it gets a
 * block of slots (shmem.h) and its processes; one removed has its processes
 * stopped, and its block is free again once they are gone.  A database
 * dropped (DROP DATABASE ... WITH (FORCE) ends its processes) is waited for
 * until it exists again.
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
#include "utils/varlena.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "databases.h"
#include "jobq.h"
#include "shmem.h"
#include "worker.h"

#define RESTART_DELAY_MS	10000

int			jobq_workers = 2;

void
launcher_init_gucs(void)
{
	DefineCustomIntVariable("jobq.workers",
							"Number of job workers in each database of jobq.database.",
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
	MemoryContext caller = CurrentMemoryContext;

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
	MemoryContextSwitchTo(caller);
	return found;
}

static BackgroundWorkerHandle *
start_process(int slot, const char *database)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;
	bool		relay = slot_number(slot) == 0;
	MemoryContext old;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "jobq", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, relay ? "jobq_relay_main" : "jobq_worker_main", BGW_MAXLEN);
	if (relay)
		snprintf(bgw.bgw_name, BGW_MAXLEN, "jobq relay (%s)", database);
	else
		snprintf(bgw.bgw_name, BGW_MAXLEN, "jobq worker %d (%s)", slot_number(slot), database);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "jobq %s", relay ? "relay" : "worker");
	bgw.bgw_main_arg = Int32GetDatum(slot);
	StaticAssertStmt(NAMEDATALEN <= BGW_EXTRALEN, "a database name fits in bgw_extra");
	strlcpy(bgw.bgw_extra, database, BGW_EXTRALEN);
	bgw.bgw_notify_pid = MyProcPid;
	/* the handle lives as long as the process */
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
		handle = NULL;
	MemoryContextSwitchTo(old);
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

/* what the launcher knows of one block of slots */
typedef struct ServedDatabase
{
	char		name[NAMEDATALEN];	/* "" when the block is free */
	bool		listed;			/* still in jobq.database */
	bool		logged_missing;
	BackgroundWorkerHandle *handles[JOBQ_SLOTS_PER_DB];
	TimestampTz started[JOBQ_SLOTS_PER_DB];
} ServedDatabase;

static ServedDatabase served[JOBQ_MAX_DATABASES];

/*
 * Match the blocks to jobq.database: a listed database keeps its block or
 * takes a free one; a block whose database left the list is marked so.
 */
static void
assign_blocks(void)
{
	List	   *names = databases_list(jobq_database);
	ListCell   *lc;

	for (int db = 0; db < JOBQ_MAX_DATABASES; db++)
		served[db].listed = false;
	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		int			free_db = -1;
		int			db;

		for (db = 0; db < JOBQ_MAX_DATABASES; db++)
		{
			if (strcmp(served[db].name, name) == 0)
				break;
			if (free_db < 0 && served[db].name[0] == '\0')
				free_db = db;
		}
		if (db == JOBQ_MAX_DATABASES)
		{
			/* a block still stopping its old database's processes is not free */
			if (free_db < 0)
				continue;
			db = free_db;
			memset(&served[db], 0, sizeof(served[db]));
			strlcpy(served[db].name, name, NAMEDATALEN);
			shmem_set_block_database(db, name);
		}
		served[db].listed = true;
	}
}

/* Stop the processes of a database no longer listed; free its block after. */
static void
retire_block(ServedDatabase *d, int db)
{
	bool		any = false;

	for (int n = 0; n < JOBQ_SLOTS_PER_DB; n++)
	{
		int			slot = slot_of(db, n);

		if (!slot_running(slot, d->handles[n]))
			continue;
		any = true;
		if (d->handles[n] != NULL)
			TerminateBackgroundWorker(d->handles[n]);
	}
	if (!any)
	{
		ereport(LOG,
				(errmsg("jobq: database \"%s\" is no longer in jobq.database; its relay and workers have stopped",
						d->name)));
		for (int n = 0; n < JOBQ_SLOTS_PER_DB; n++)
			if (d->handles[n] != NULL)
				pfree(d->handles[n]);
		memset(d, 0, sizeof(*d));
		shmem_set_block_database(db, "");
	}
}

/* Start what is not running of a listed database's relay and workers. */
static void
serve_block(ServedDatabase *d, int db, bool *logged_no_slot)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!database_exists(d->name))
	{
		if (!d->logged_missing)
			ereport(LOG,
					(errmsg("jobq: database \"%s\" does not exist; jobq's workers wait for it",
							d->name),
					 errhint("Create the database, or remove it from jobq.database.")));
		d->logged_missing = true;
		return;
	}
	d->logged_missing = false;
	for (int n = 0; n <= jobq_workers; n++)
	{
		int			slot = slot_of(db, n);

		if (slot_running(slot, d->handles[n]))
			continue;
		if (d->handles[n] != NULL)
		{
			pfree(d->handles[n]);
			d->handles[n] = NULL;
		}
		/* one that ran briefly waits before it is tried again */
		if (d->started[n] != 0 &&
			!TimestampDifferenceExceeds(d->started[n], now, RESTART_DELAY_MS))
			continue;
		d->handles[n] = start_process(slot, d->name);
		if (d->handles[n] == NULL)
		{
			if (!*logged_no_slot)
				ereport(WARNING,
						(errmsg("jobq: could not start a background worker"),
						 errhint("Raise max_worker_processes: jobq needs jobq.workers + 1 per database of jobq.database, and one more.")));
			*logged_no_slot = true;
			return;
		}
		*logged_no_slot = false;
		d->started[n] = now;
	}
}

/*
 * A restarted launcher (its processes outlive it) takes back the blocks it
 * had assigned, so that it neither starts their processes twice nor loses
 * track of them; a block whose database left the list is retired as usual.
 * (A process started for a block that has since gone to another database
 * sees it at start and exits: worker_startup.)
 */
static void
recover_blocks(void)
{
	for (int db = 0; db < JOBQ_MAX_DATABASES; db++)
		shmem_block_database(db, served[db].name);
}

void
jobq_launcher_main(Datum arg)
{
	bool		logged_no_slot = false;
	MemoryContext loop_ctx;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("jobq launcher");
	recover_blocks();

	loop_ctx = AllocSetContextCreate(TopMemoryContext, "jobq launcher loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		worker_reload_config();
		MemoryContextSwitchTo(loop_ctx);
		MemoryContextReset(loop_ctx);
		assign_blocks();
		for (int db = 0; db < JOBQ_MAX_DATABASES; db++)
		{
			if (served[db].name[0] == '\0')
				continue;
			if (!served[db].listed)
				retire_block(&served[db], db);
			else
				serve_block(&served[db], db, &logged_no_slot);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
