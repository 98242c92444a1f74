/*
 * launcher.c
 *		The jobq launcher and what every jobq process does to start.
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
bool		jobq_touch_jobs = true;
int			jobq_done_retention = 7 * 24 * 3600;
int			jobq_failed_retention = 30 * 24 * 3600;
int			jobq_max_handler_time = 3600 * 1000;

static int	my_slot = -1;

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
	DefineCustomBoolVariable("jobq.touch_jobs",
							 "Keep the reservation of a job whose handler runs long by touching it.",
							 NULL,
							 &jobq_touch_jobs,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.done_retention",
							"How long the ids of completed jobs are kept to detect second deliveries.",
							NULL,
							&jobq_done_retention,
							7 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.failed_retention",
							"How long rows of jobq.failed are kept.",
							"Bodies anyone can put end up there; older rows are pruned by the relay.",
							&jobq_failed_retention,
							30 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.max_handler_time",
							"Longest a handler registered without a timeout may run.",
							"A job's ttr (the producer's choice) can only shorten it.",
							&jobq_max_handler_time,
							3600 * 1000, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
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
	int			shm_pid;

	if (handle != NULL)
		return GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED;
	SpinLockAcquire(&jobq_shared->slots[slot].mutex);
	shm_pid = jobq_shared->slots[slot].pid;
	SpinLockRelease(&jobq_shared->slots[slot].mutex);
	return shm_pid != 0;
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

/* --- start-up shared by the relay and the job workers --- */

static void
slot_detach(int code, Datum arg)
{
	int			slot = DatumGetInt32(arg);
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	if (slot == RELAY_SLOT)
	{
		SpinLockAcquire(&jobq_shared->mutex);
		jobq_shared->relay_latch = NULL;
		SpinLockRelease(&jobq_shared->mutex);
	}
	SpinLockAcquire(&s->mutex);
	s->pid = 0;
	strlcpy(s->state, "stopped", sizeof(s->state));
	s->tube[0] = s->func_name[0] = '\0';
	s->job_id = 0;
	s->since = GetCurrentTimestamp();
	SpinLockRelease(&s->mutex);
}

/*
 * The workers connect as the bootstrap superuser, and a database's owner
 * can attach settings to the database (ALTER DATABASE ... SET) that every
 * session there starts with.  None of them may steer jobq's own SQL or stop
 * the workers: these session values override them.  search_path is pinned
 * for jobq's SQL; handlers get their own in a GUC nest level of each job
 * (worker.c), which also undoes whatever a handler sets.
 */
static void
worker_session_settings(void)
{
	static const char *const settings[][2] = {
		{"search_path", "pg_catalog, pg_temp"},
		{"role", "none"},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"default_transaction_deferrable", "off"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"session_replication_role", "origin"},
		{"row_security", "on"},
	};

	for (int i = 0; i < lengthof(settings); i++)
		SetConfigOption(settings[i][0], settings[i][1], PGC_SUSET, PGC_S_SESSION);

	/*
	 * Not even a handler may change these, for the length of its job: an
	 * error must stay an error of the job (not end the worker), and a job is
	 * deleted from beanstalkd only once its commit is durable.  The relay
	 * turns synchronous_commit off for itself on purpose (relay.c).
	 */
	SetConfigOption("exit_on_error", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
}

void
worker_startup(int slot, const char *what)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	my_slot = slot;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(jobq_database, NULL, 0);
	worker_session_settings();
	pgstat_report_appname(what);

	SpinLockAcquire(&s->mutex);
	s->pid = MyProcPid;
	s->kind = slot == RELAY_SLOT ? JOBQ_KIND_RELAY : JOBQ_KIND_WORKER;
	SpinLockRelease(&s->mutex);
	before_shmem_exit(slot_detach, Int32GetDatum(slot));
	slot_set_state(slot, "starting", NULL, NULL, 0);
}

bool
worker_extension_ready(void)
{
	bool		ok;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	ok = OidIsValid(get_extension_oid("jobq", true));
	CommitTransactionCommand();
	return ok;
}

/* Wait until CREATE EXTENSION jobq has run in our database; log it once. */
void
worker_wait_for_extension(int slot)
{
	bool		logged = false;

	while (!worker_extension_ready())
	{
		if (!logged)
			ereport(LOG,
					(errmsg("jobq: extension \"jobq\" is not installed in database \"%s\"; waiting",
							jobq_database),
					 errhint("Run CREATE EXTENSION jobq in that database.")));
		logged = true;
		slot_set_state(slot, "waiting for extension", NULL, NULL, 0);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 2000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		worker_reload_config();
	}
}

/* Sleep for ms whatever sets the latch meanwhile; interrupts still end it. */
void
worker_sleep(int ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);

		if (left <= 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

void
worker_reload_config(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * Error recovery for a jobq process's main loop, called from PG_CATCH:
 * report the error (once per outage for connection errors, which repeat
 * while beanstalkd is down), abort any transaction, and carry on.
 */
void
worker_report_error(int slot, const char *what, bool *in_outage)
{
	ErrorData  *edata;
	bool		connection;
	MemoryContext ctx = CurrentMemoryContext;

	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(ctx);
	RESUME_INTERRUPTS();

	connection = ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_CONNECTION_EXCEPTION;
	if (!connection || !*in_outage)
		ereport(LOG,
				(errmsg("jobq %s: %s", what, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 connection ? errhint("Retrying; the next message says when beanstalkd answers again.") : 0));
	if (connection)
		*in_outage = true;
	slot_note_error(slot, edata->message);
	slot_set_state(slot, connection ? "waiting for beanstalkd" : "recovering", NULL, NULL, 0);
	FreeErrorData(edata);
}
