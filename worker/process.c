/*
 * process.c
 *		What the relay and the job workers share: start-up in the database,
 *		session settings no database owner or handler can steer, waiting for
 *		the extension, one transaction with SPI, sleeping, and recovery from
 *		an error in the main loop (with back-off, logged once per outage).
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
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

#include "databases.h"
#include "jobq.h"
#include "settings.h"
#include "shmem.h"
#include "worker.h"

#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000


static void
on_exit_detach(int code, Datum arg)
{
	slot_detach(DatumGetInt32(arg));
}

/*
 * The workers connect as the bootstrap superuser, and a database's owner
 * can attach settings to the database (ALTER DATABASE ... SET) that every
 * session there starts with.  None of them may steer jobq's own SQL or stop
 * the workers: these session values override them.  search_path is pinned
 * for jobq's SQL; handlers get their own in a GUC nest level of each job
 * (worker.c), which also undoes whatever a handler sets.  jobq's own
 * settings attached to the database or a role are refused as they are
 * applied (jobq_setting_source_ok).
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

/* the database this process serves, which the launcher passes in bgw_extra */
char		worker_database[NAMEDATALEN];

void
worker_startup(int slot, const char *what)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	strlcpy(worker_database, MyBgworkerEntry->bgw_extra, sizeof(worker_database));
	{
		char		block_database[NAMEDATALEN];

		/* started for a block the launcher has given to another database since */
		shmem_block_database(slot_db(slot), block_database);
		if (strcmp(block_database, worker_database) != 0)
		{
			ereport(LOG,
					(errmsg("jobq: %s is no longer needed for database \"%s\"; exiting",
							what, worker_database)));
			proc_exit(0);
		}
	}
	/* database and role settings of jobq.* are refused from now on (jobq.c) */
	jobq_background_process = true;
	BackgroundWorkerInitializeConnection(worker_database, NULL, 0);
	worker_session_settings();
	pgstat_report_appname(what);

	slot_attach(slot, slot_number(slot) == 0 ? JOBQ_KIND_RELAY : JOBQ_KIND_WORKER);
	before_shmem_exit(on_exit_detach, Int32GetDatum(slot));
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
							worker_database),
					 errhint("Run CREATE EXTENSION jobq in that database.")));
		logged = true;
		slot_set_state(slot, JOBQ_STATE_WAITING_EXTENSION, NULL, NULL, 0);
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

		/*
		 * A relay or worker whose database left jobq.database ends itself
		 * (the launcher also stops it, but a restarted launcher has no
		 * handle on the processes it did not start).
		 */
		if (worker_database[0] != '\0' && !databases_serve(worker_database))
		{
			ereport(LOG,
					(errmsg("jobq: database \"%s\" is no longer in jobq.database; %s exits",
							worker_database, MyBgworkerEntry->bgw_name)));
			proc_exit(0);
		}
	}
}

/*
 * Error recovery for a jobq process's main loop, called from PG_CATCH:
 * report the error (once per outage for connection errors, which repeat
 * while beanstalkd is down), abort any transaction, and carry on.
 */
int
worker_report_error(int slot, const char *what, bool *in_outage)
{
	int			code;
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
				 connection ? errhint("Retrying; each server that comes back is logged as answering again.") : 0));
	if (connection)
		*in_outage = true;
	slot_note_error(slot, edata->message, NULL, NULL);
	slot_set_state(slot, connection ? JOBQ_STATE_WAITING_BEANSTALKD : JOBQ_STATE_RECOVERING,
				   NULL, NULL, 0);
	code = edata->sqlerrcode;
	FreeErrorData(edata);
	return code;
}

/*
 * One unit of work: a transaction with SPI connected and a snapshot pushed,
 * as worker_spi does it.  Every process_xact_begin has its process_xact_end;
 * an error in between is cleaned up by process_recover.
 */
static MemoryContext xact_caller_cxt = NULL;

void
process_xact_begin(void)
{
	xact_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

/* ... and back in the memory context the caller had at process_xact_begin */
void
process_xact_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(xact_caller_cxt);
}

/*
 * The main loop's iteration went through: the back-off starts over.  The
 * servers' health, and the messages of an outage's end, are the pool's
 * (pool.c logs "answers again" for each server that was down).
 */
void
process_succeeded(ProcessBackoff *bo)
{
	bo->in_outage = false;
	bo->backoff_ms = 0;
}

/*
 * From the main loop's PG_CATCH: report the error (once per outage for
 * connection errors), abort any transaction, and double the back-off.
 * Returns the error's SQLSTATE.
 */
int
process_recover(int slot, const char *what, ProcessBackoff *bo)
{
	int			code = worker_report_error(slot, what, &bo->in_outage);

	bo->backoff_ms = Min(Max(bo->backoff_ms * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS);
	return code;
}

/* After a failed iteration: hold to the back-off, then check the extension. */
void
process_back_off(int slot, const ProcessBackoff *bo)
{
	if (bo->backoff_ms == 0)
		return;
	worker_sleep(bo->backoff_ms);
	if (!worker_extension_ready())
		worker_wait_for_extension(slot);
}
