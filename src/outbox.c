/*
 * outbox.c
 *		The outbox: a job written in the caller's transaction, and the
 *		relay's wake-up when that transaction commits.
 *
 * The job is encoded and checked at once, then written as a row of
 * jobq.outbox.  Nothing touches the network here: if the transaction rolls
 * back the row vanishes with it, and if it commits, a transaction callback
 * sets the relay's latch so that the row is sent within a moment (the relay
 * also sweeps the table periodically, for rows whose commit announced
 * nothing, such as COMMIT PREPARED).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "job.h"
#include "jobq.h"
#include "outbox.h"
#include "schema.h"
#include "shmem.h"

static bool callback_registered = false;
static bool outbox_written = false;
static bool warned_no_relay = false;
static SPIPlanPtr insert_plan = NULL;

/* Called after commit by a backend that wrote outbox rows. */
static void
relay_wakeup(void)
{
	Latch	   *latch = shmem_relay_latch();

	if (latch != NULL)
		SetLatch(latch);
}

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (outbox_written)
				relay_wakeup();
			outbox_written = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			outbox_written = false;
			break;
		default:
			break;
	}
}

/*
 * Write one job into jobq.outbox, as the table's owner: callers need
 * EXECUTE on jobq_put, not rights on the table.  *id is set to a new uuid
 * unless keep_id (a failed job put back keeps its identity).
 */
void
outbox_insert(const JobSpec *spec, pg_uuid_t *id, bool keep_id)
{
	char	   *body;
	size_t		len;
	uint64		max = shmem_available() ? pg_atomic_read_u64(&jobq_shared->max_job_size) : 0;
	Datum		values[7];
	OwnerContext owner;
	int			rc;

	if (!keep_id)
		job_new_uuid(id);
	body = job_encode(spec, id, &len);
	if (max > 0 && len > max)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("job body of %zu bytes exceeds the max-job-size of " UINT64_FORMAT " bytes of the beanstalkd server",
						len, max),
				 errhint("Send smaller kwargs, or raise beanstalkd's -z limit.")));

	if (!shmem_available() && !warned_no_relay)
	{
		ereport(WARNING,
				(errmsg("jobq's relay is not running: jobs stay in jobq.outbox"),
				 errdetail("The jobs will be sent to beanstalkd once the relay runs."),
				 errhint("Add jobq to shared_preload_libraries and restart the server.")));
		warned_no_relay = true;
	}

	values[0] = UUIDPGetDatum(id);
	values[1] = CStringGetTextDatum(spec->tube);
	values[2] = CStringGetTextDatum(spec->func_name);
	{
		bytea	   *b = palloc(VARHDRSZ + len);

		SET_VARSIZE(b, VARHDRSZ + len);
		memcpy(VARDATA(b), body, len);
		values[3] = PointerGetDatum(b);
	}
	values[4] = Int64GetDatum((int64) spec->priority);
	values[5] = Int64GetDatum((int64) spec->delay);
	values[6] = Int64GetDatum((int64) spec->ttr);

	schema_become_owner(&owner);
	SPI_connect();
	if (insert_plan == NULL)
	{
		Oid			types[7] = {UUIDOID, TEXTOID, TEXTOID, BYTEAOID, INT8OID, INT8OID, INT8OID};

		insert_plan = schema_keep_plan("INSERT INTO jobq.outbox (id, tube, func_name, body, priority, delay, ttr) "
									   "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, types);
	}
	rc = SPI_execute_plan(insert_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "jobq: outbox insert failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	schema_restore_user(&owner);

	if (!callback_registered)
	{
		RegisterXactCallback(outbox_xact_callback, NULL);
		callback_registered = true;
	}
	outbox_written = true;
}
