/*
 * unique.c
 *		Unique jobs: jobq_put(..., unique_key => k) enqueues nothing while a
 *		job of the same tube holds k, and returns that job's uuid instead.
 *
 * A key is a row of jobq.unique_keys, (tube, key) its primary key, written
 * in the producer's transaction.  Two transactions putting the same key
 * meet on the primary key's unique check: the second waits for the first,
 * and takes the key if the first rolled back, or returns the first's job if
 * it committed.  So whichever commits first holds the key, and a key taken
 * by a transaction that rolls back (or a subtransaction) was never taken.
 *
 * A key is given back when its job finishes: done, failed for the last
 * time, or cancelled (unique_release, in the transaction that records the
 * outcome, so a worker killed while the job runs leaves it taken until the
 * job, run again, finishes).  With unique_for the key stays taken until
 * that much time after the put even if the job finished sooner (the row
 * stays, marked finished); a put finding a finished key whose period is
 * over takes it over.
 *
 * The rows are written as the tables' owner with search_path pinned;
 * whether the caller may enqueue was checked before (put.c, trigger.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "schema.h"
#include "unique.h"

static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr holder_plan = NULL;
static SPIPlanPtr release_plan = NULL;
static SPIPlanPtr release_job_plan = NULL;

/* a key is non-empty text of at most JOB_MAX_UNIQUE_KEY bytes */
void
unique_check_key(const char *key)
{
	size_t		len = strlen(key);

	if (len == 0 || len > JOB_MAX_UNIQUE_KEY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unique_key must be 1 to %d bytes long", JOB_MAX_UNIQUE_KEY)));
}

/*
 * Take key on tube for job *id; false if another job holds it, with *id set
 * to that job's uuid.  period (NULL: none) keeps the key taken that long
 * after the put.
 */
bool
unique_claim(const char *tube, const char *key, const Interval *period, pg_uuid_t *id)
{
	OwnerContext owner;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		claimed;
	int			rc;

	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(key);
	values[2] = UUIDPGetDatum(id);
	values[3] = period ? IntervalPGetDatum(period) : (Datum) 0;
	if (period == NULL)
		nulls[3] = 'n';

	SPI_connect();
	schema_become_owner(&owner);
	if (claim_plan == NULL)
	{
		Oid			types[4] = {TEXTOID, TEXTOID, UUIDOID, INTERVALOID};

		/* a finished key whose period is over is taken over, in place */
		claim_plan = schema_keep_plan(
			"INSERT INTO jobq.unique_keys AS u (tube, key, job_id, expires_at) "
			"VALUES ($1, $2, $3, pg_catalog.now() OPERATOR(pg_catalog.+) $4) "
			"ON CONFLICT (tube, key) DO UPDATE "
			"SET job_id = excluded.job_id, enqueued_at = excluded.enqueued_at, "
			"    expires_at = excluded.expires_at, finished = false "
			"WHERE u.finished AND (u.expires_at IS NULL "
			"      OR u.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()) "
			"RETURNING job_id", 4, types);
		holder_plan = schema_keep_plan(
			"SELECT job_id FROM jobq.unique_keys "
			"WHERE tube OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
			2, types);
	}
	rc = SPI_execute_plan(claim_plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "jobq: taking a unique key failed: %s", SPI_result_code_string(rc));
	claimed = (SPI_processed == 1);
	if (!claimed)
	{
		bool		isnull;

		/* the holder committed before us (its row is what stopped ours) */
		rc = SPI_execute_plan(holder_plan, values, NULL, false, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "jobq: reading a unique key's holder failed");
		*id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	schema_restore_user(&owner);
	SPI_finish();
	return claimed;
}

/* run plan (a release) with its arguments, as the tables' owner */
static void
release_with(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *values)
{
	OwnerContext owner;
	int			rc;

	SPI_connect();
	schema_become_owner(&owner);
	if (*plan == NULL)
		*plan = schema_keep_plan(sql, nargs, types);
	rc = SPI_execute_plan(*plan, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE && rc != SPI_OK_UPDATE && rc != SPI_OK_SELECT)
		elog(ERROR, "jobq: giving back a unique key failed: %s", SPI_result_code_string(rc));
	schema_restore_user(&owner);
	SPI_finish();
}

/*
 * The key's row goes, or, within its period, is marked finished.  One
 * statement: a data-modifying CTE does both.
 */
#define RELEASE_SQL(where) \
	"WITH k AS (SELECT tube, key, expires_at FROM jobq.unique_keys WHERE " where " FOR UPDATE), " \
	"gone AS (DELETE FROM jobq.unique_keys u USING k " \
	"  WHERE u.tube OPERATOR(pg_catalog.=) k.tube AND u.key OPERATOR(pg_catalog.=) k.key " \
	"    AND (k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()) RETURNING 1) " \
	"UPDATE jobq.unique_keys u SET finished = true FROM k " \
	"  WHERE u.tube OPERATOR(pg_catalog.=) k.tube AND u.key OPERATOR(pg_catalog.=) k.key " \
	"    AND k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()"

/* Give back the key job *id holds on tube (from its body), if it still does. */
void
unique_release(const char *tube, const char *key, const pg_uuid_t *id)
{
	Oid			types[3] = {TEXTOID, TEXTOID, UUIDOID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(tube);
	values[1] = CStringGetTextDatum(key);
	values[2] = UUIDPGetDatum(id);
	release_with(&release_plan,
				 RELEASE_SQL("tube OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2 "
							 "AND job_id OPERATOR(pg_catalog.=) $3"),
				 3, types, values);
}

/* Give back whatever key job *id holds (a cancel, which has no body). */
void
unique_release_job(const pg_uuid_t *id)
{
	Oid			type = UUIDOID;
	Datum		value = UUIDPGetDatum(id);

	release_with(&release_job_plan,
				 RELEASE_SQL("job_id OPERATOR(pg_catalog.=) $1"), 1, &type, &value);
}
