/*
 * jobq_example_handler.c
 *		An example C handler for jobq: a V1 function taking the job's kwargs
 *		as one jsonb, registered either as a LANGUAGE C function or with
 *		jobq_register_c(tube, func, library, symbol).
 *
 * It records the kwargs and the role it ran as in public.results, through
 * SPI in the job's own transaction, so its effect commits with the job.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/jsonb.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(jobq_example_record);

Datum
jobq_example_record(PG_FUNCTION_ARGS)
{
	Oid			type = JSONBOID;
	Datum		kwargs;
	int			rc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("jobq_example_record needs kwargs")));
	kwargs = PG_GETARG_DATUM(0);
	SPI_connect();
	rc = SPI_execute_with_args("INSERT INTO public.results (func, args, who) "
							   "VALUES ('c_handler', $1, current_user)",
							   1, &type, &kwargs, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "jobq_example_record: insert failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	PG_RETURN_VOID();
}
