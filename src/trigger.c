/*
 * trigger.c
 *		jobq_enqueue: a generic row trigger that enqueues one job per row
 *		through the outbox, so the job exists only if the row change commits.
 *
 *	CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON tab
 *		FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('tube', 'func' [, '{"ttr": 30}']);
 *
 * kwargs are {"op": TG_OP, "schema": ..., "table": ..., "new": row|null,
 * "old": row|null}, the rows as JSON objects.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "job.h"
#include "outbox.h"
#include "put.h"

PG_FUNCTION_INFO_V1(jobq_enqueue);

/* one saved plan per row type: it builds kwargs with to_jsonb() */
typedef struct KwargsPlan
{
	Oid			rowtype;		/* hash key */
	SPIPlanPtr	plan;
} KwargsPlan;

static HTAB *kwargs_plans = NULL;

static SPIPlanPtr
kwargs_plan(Oid rowtype)
{
	KwargsPlan *entry;
	bool		found;

	if (kwargs_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(KwargsPlan);
		kwargs_plans = hash_create("jobq trigger plans", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(kwargs_plans, &rowtype, HASH_ENTER, &found);
	if (!found)
	{
		Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, rowtype, rowtype};
		SPIPlanPtr	plan;

		entry->plan = NULL;
		plan = SPI_prepare("SELECT pg_catalog.jsonb_build_object("
						   "'op', $1, 'schema', $2, 'table', $3, "
						   "'new', pg_catalog.to_jsonb($4), 'old', pg_catalog.to_jsonb($5))",
						   5, types);
		if (plan == NULL)
		{
			hash_search(kwargs_plans, &rowtype, HASH_REMOVE, NULL);
			elog(ERROR, "jobq: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		}
		SPI_keepplan(plan);
		entry->plan = plan;
	}
	return entry->plan;
}

Datum
jobq_enqueue(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	Relation	rel;
	JobSpec		spec;
	const char *op;
	HeapTuple	newtup = NULL;
	HeapTuple	oldtup = NULL;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', 'n', 'n'};
	pg_uuid_t	id;
	Jsonb	   *kwargs;
	bool		isnull;
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("jobq_enqueue() must be called as a trigger")));
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("jobq_enqueue() must be a FOR EACH ROW trigger"),
				 errhint("Create the trigger with FOR EACH ROW.")));

	trigger = trigdata->tg_trigger;
	rel = trigdata->tg_relation;
	if (trigger->tgnargs < 2 || trigger->tgnargs > 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobq_enqueue() takes a tube, a func_name and optional options, got %d arguments",
						trigger->tgnargs),
				 errhint("Use EXECUTE FUNCTION jobq_enqueue('tube', 'func') or jobq_enqueue('tube', 'func', '{\"ttr\": 30}').")));

	spec.tube = trigger->tgargs[0];
	spec.func_name = trigger->tgargs[1];
	job_check_tube(spec.tube);
	job_check_func_name(spec.func_name);
	put_spec_from_options(&spec,
						  trigger->tgnargs == 3
						  ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(trigger->tgargs[2])))
						  : NULL);

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		op = "INSERT";
		newtup = trigdata->tg_trigtuple;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		op = "UPDATE";
		oldtup = trigdata->tg_trigtuple;
		newtup = trigdata->tg_newtuple;
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		op = "DELETE";
		oldtup = trigdata->tg_trigtuple;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("jobq_enqueue() fires on INSERT, UPDATE or DELETE only")));

	values[0] = CStringGetTextDatum(op);
	values[1] = CStringGetTextDatum(get_namespace_name(RelationGetNamespace(rel)));
	values[2] = CStringGetTextDatum(RelationGetRelationName(rel));
	if (newtup != NULL)
	{
		values[3] = heap_copy_tuple_as_datum(newtup, RelationGetDescr(rel));
		nulls[3] = ' ';
	}
	if (oldtup != NULL)
	{
		values[4] = heap_copy_tuple_as_datum(oldtup, RelationGetDescr(rel));
		nulls[4] = ' ';
	}

	SPI_connect();
	rc = SPI_execute_plan(kwargs_plan(RelationGetDescr(rel)->tdtypeid), values, nulls, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "jobq: building trigger kwargs failed: %s", SPI_result_code_string(rc));
	kwargs = DatumGetJsonbP(SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 1, &isnull),
											  false, -1));
	SPI_finish();

	spec.kwargs = kwargs;
	outbox_insert(&spec, &id, false);

	if (TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		return PointerGetDatum(newtup != NULL ? newtup : oldtup);
	return PointerGetDatum(NULL);
}
