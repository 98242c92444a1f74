/*
 * pack_sql.c
 *		The backend's side of packs: reading one that must parse, and
 *		jobq.unpack(bytea), which shows a pack's jobs as rows (the view
 *		jobq.outbox is built on it).
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "pack.h"

PG_FUNCTION_INFO_V1(jobq_unpack);

/* The next job of the pack into *job; false at its end.  Throws on a bad pack. */
bool
pack_next(PackReader *reader, PackedJob *job)
{
	char	   *error = NULL;
	int			rc = pack_read(reader, job, &error);

	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid jobq pack: %s", error)));
	return rc > 0;
}

/*
 * jobq.unpack(packed bytea): the jobs of a pack, in order, as
 * (ord, id, tube, func_name, body, priority, delay, ttr).
 */
Datum
jobq_unpack(PG_FUNCTION_ARGS)
{
	bytea	   *packed = PG_GETARG_BYTEA_PP(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PackReader	reader;
	PackedJob	job;
	int32		ord = 0;

	InitMaterializedSRF(fcinfo, 0);
	pack_reader_init(&reader, VARDATA_ANY(packed), VARSIZE_ANY_EXHDR(packed));
	while (pack_next(&reader, &job))
	{
		Datum		values[8];
		bool		nulls[8] = {0};
		bytea	   *body = palloc(VARHDRSZ + job.body_len);
		pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

		SET_VARSIZE(body, VARHDRSZ + job.body_len);
		memcpy(VARDATA(body), job.body, job.body_len);
		*id = job.id;
		values[0] = Int32GetDatum(++ord);
		values[1] = UUIDPGetDatum(id);
		values[2] = CStringGetTextDatum(job.tube);
		values[3] = CStringGetTextDatum(job.func_name);
		values[4] = PointerGetDatum(body);
		values[5] = Int64GetDatum(job.priority);
		values[6] = Int64GetDatum(job.delay);
		values[7] = Int64GetDatum(job.ttr);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_NULL();
}
