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
#include "nodes/makefuncs.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "job.h"
#include "outbox.h"
#include "producer_acl.h"
#include "put.h"

PG_FUNCTION_INFO_V1(jobq_enqueue);

/*
 * to_jsonb() of a row, called directly: its FmgrInfo carries a made-up call
 * expression whose argument has the row type, which is all to_jsonb looks
 * at.  One per row type, kept for the session.
 */
typedef struct RowToJsonb
{
	Oid			rowtype;		/* hash key */
	FmgrInfo	flinfo;
} RowToJsonb;

static HTAB *row_converters = NULL;

static Jsonb *
row_to_jsonb(HeapTuple tuple, TupleDesc desc)
{
	RowToJsonb *entry;
	bool		found;

	if (row_converters == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RowToJsonb);
		row_converters = hash_create("jobq trigger row types", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(row_converters, &desc->tdtypeid, HASH_ENTER, &found);
	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		fmgr_info(F_TO_JSONB, &entry->flinfo);
		entry->flinfo.fn_expr = (Node *)
			makeFuncExpr(F_TO_JSONB, JSONBOID,
						 list_make1(makeNullConst(desc->tdtypeid, -1, InvalidOid)),
						 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		MemoryContextSwitchTo(old);
	}
	return DatumGetJsonbP(FunctionCall1(&entry->flinfo, heap_copy_tuple_as_datum(tuple, desc)));
}

static void
push_key(JsonbParseState **state, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(state, WJB_KEY, &k);
}

static void
push_string(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	v;

	push_key(state, key);
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	(void) pushJsonbValue(state, WJB_VALUE, &v);
}

static void
push_row(JsonbParseState **state, const char *key, HeapTuple tuple, TupleDesc desc)
{
	JsonbValue	v;

	push_key(state, key);
	if (tuple == NULL)
		v.type = jbvNull;
	else
	{
		Jsonb	   *row = row_to_jsonb(tuple, desc);

		v.type = jbvBinary;
		v.val.binary.data = &row->root;
		v.val.binary.len = VARSIZE(row) - VARHDRSZ;
	}
	(void) pushJsonbValue(state, WJB_VALUE, &v);
}

/* {"op": ..., "schema": ..., "table": ..., "new": row|null, "old": row|null} */
static Jsonb *
trigger_kwargs(const char *op, Relation rel, HeapTuple newtup, HeapTuple oldtup)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_string(&state, "op", op);
	push_string(&state, "schema", get_namespace_name(RelationGetNamespace(rel)));
	push_string(&state, "table", RelationGetRelationName(rel));
	push_row(&state, "new", newtup, RelationGetDescr(rel));
	push_row(&state, "old", oldtup, RelationGetDescr(rel));
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
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
	pg_uuid_t	id;

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
	acl_check_producer(GetUserId(), spec.tube, spec.func_name);
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

	spec.kwargs = trigger_kwargs(op, rel, newtup, oldtup);
	outbox_insert(&spec, &id, false);

	if (TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		return PointerGetDatum(newtup != NULL ? newtup : oldtup);
	return PointerGetDatum(NULL);
}
