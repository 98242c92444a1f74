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
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/json.h"
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
 * A row's JSON object.  Most row types go straight to JSON text with
 * row_to_json (column order, no jsonb in between).  A row type that holds a
 * json value anywhere (a json column, a domain over json, an array or a
 * composite, which may nest one) goes through to_jsonb instead: a json
 * value is kept verbatim by row_to_json, duplicate keys included, and a
 * body with duplicate keys is one the workers refuse.  to_jsonb is called
 * directly: its FmgrInfo carries a made-up call expression whose argument
 * has the row type, which is all to_jsonb looks at.  One entry per row
 * type, kept for the session.
 */
typedef struct RowToJson
{
	Oid			rowtype;		/* hash key */
	int			natts;			/* the columns as_text was decided for */
	Oid		   *types;			/* (ALTER TABLE keeps the row type's OID) */
	bool		as_text;		/* row_to_json will do */
	FmgrInfo	flinfo;			/* to_jsonb otherwise */
} RowToJson;

/* whether the entry was made for this tuple descriptor's columns */
static bool
row_converter_current(const RowToJson *entry, TupleDesc desc)
{
	if (entry->natts != desc->natts)
		return false;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (entry->types[i] != (att->attisdropped ? InvalidOid : att->atttypid))
			return false;
	}
	return true;
}

static HTAB *row_converters = NULL;

/* whether a value of this type comes out of row_to_json as jsonb would write it */
static bool
type_json_safe(Oid type)
{
	Oid			base = getBaseType(type);
	char		kind = get_typtype(base);
	Oid			elem;

	if (base == JSONOID || (kind != TYPTYPE_BASE && kind != TYPTYPE_ENUM))
		return false;
	elem = get_element_type(base);
	if (OidIsValid(elem))
	{
		Oid			elembase = getBaseType(elem);
		char		elemkind = get_typtype(elembase);

		return elembase != JSONOID && (elemkind == TYPTYPE_BASE || elemkind == TYPTYPE_ENUM);
	}
	return true;
}

static RowToJson *
row_converter(TupleDesc desc)
{
	RowToJson  *entry;
	bool		found;

	if (row_converters == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RowToJson);
		row_converters = hash_create("jobq trigger row types", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(row_converters, &desc->tdtypeid, HASH_ENTER, &found);
	if (found && !row_converter_current(entry, desc))
	{
		pfree(entry->types);
		found = false;
	}
	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		entry->as_text = true;
		entry->natts = desc->natts;
		entry->types = palloc(sizeof(Oid) * Max(desc->natts, 1));
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			entry->types[i] = att->attisdropped ? InvalidOid : att->atttypid;
			if (!att->attisdropped && !type_json_safe(att->atttypid))
				entry->as_text = false;
		}
		fmgr_info(F_TO_JSONB, &entry->flinfo);
		entry->flinfo.fn_expr = (Node *)
			makeFuncExpr(F_TO_JSONB, JSONBOID,
						 list_make1(makeNullConst(desc->tdtypeid, -1, InvalidOid)),
						 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		MemoryContextSwitchTo(old);
	}
	return entry;
}

/* Append the row (or null) as a JSON object. */
static void
append_row(StringInfo buf, HeapTuple tuple, TupleDesc desc)
{
	RowToJson  *conv;
	Datum		row;

	if (tuple == NULL)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	conv = row_converter(desc);
	row = heap_copy_tuple_as_datum(tuple, desc);
	if (conv->as_text)
	{
		text	   *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));

		appendBinaryStringInfo(buf, VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));
	}
	else
		job_append_jsonb_compact(buf, &DatumGetJsonbP(FunctionCall1(&conv->flinfo, row))->root);
}

/*
 * {"op": ..., "schema": ..., "table": ..., "new": row|null, "old": row|null}
 * as compact JSON text
 */
static char *
trigger_kwargs(const char *op, Relation rel, HeapTuple newtup, HeapTuple oldtup)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"op\":");
	escape_json(&buf, op);
	appendStringInfoString(&buf, ",\"schema\":");
	escape_json(&buf, get_namespace_name(RelationGetNamespace(rel)));
	appendStringInfoString(&buf, ",\"table\":");
	escape_json(&buf, RelationGetRelationName(rel));
	appendStringInfoString(&buf, ",\"new\":");
	append_row(&buf, newtup, RelationGetDescr(rel));
	appendStringInfoString(&buf, ",\"old\":");
	append_row(&buf, oldtup, RelationGetDescr(rel));
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * The checks of a trigger's arguments and of the producer's right hold for
 * every row of one statement: they run for its first row only.  Keyed by
 * the trigger, the role and the command (a command counter increment, e.g.
 * by another trigger's SQL, makes them run again).
 */
static struct
{
	Oid			tgoid;
	Oid			role;
	LocalTransactionId lxid;
	CommandId	cid;
	uint64		priority;
	uint64		delay;
	uint64		ttr;
}			last_checked = {InvalidOid};

static bool
checked_recently(const Trigger *trigger, JobSpec *spec)
{
	if (last_checked.tgoid != trigger->tgoid || last_checked.role != GetUserId() ||
		last_checked.lxid != MyProc->lxid || last_checked.cid != GetCurrentCommandId(false))
		return false;
	spec->priority = last_checked.priority;
	spec->delay = last_checked.delay;
	spec->ttr = last_checked.ttr;
	return true;
}

static void
remember_checked(const Trigger *trigger, const JobSpec *spec)
{
	last_checked.tgoid = trigger->tgoid;
	last_checked.role = GetUserId();
	last_checked.lxid = MyProc->lxid;
	last_checked.cid = GetCurrentCommandId(false);
	last_checked.priority = spec->priority;
	last_checked.delay = spec->delay;
	last_checked.ttr = spec->ttr;
}

Datum
jobq_enqueue(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	Relation	rel;
	JobSpec		spec = {0};
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
	if (!checked_recently(trigger, &spec))
	{
		job_check_tube(spec.tube);
		job_check_func_name(spec.func_name);
		acl_check_producer(GetUserId(), spec.tube, spec.func_name);
		put_spec_from_options(&spec,
							  trigger->tgnargs == 3
							  ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(trigger->tgargs[2])))
							  : NULL);
		remember_checked(trigger, &spec);
	}

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

	spec.kwargs_json = trigger_kwargs(op, rel, newtup, oldtup);
	outbox_insert(&spec, &id, false);

	if (TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		return PointerGetDatum(newtup != NULL ? newtup : oldtup);
	return PointerGetDatum(NULL);
}
