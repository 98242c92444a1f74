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

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "commands/trigger.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "fmgr.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
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
#include "unique.h"

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
 *
 * The commonest rows, whose columns are all of built-in scalar types
 * (numbers, booleans, dates and timestamps, text and the other types JSON
 * shows as strings), are written here the way row_to_json writes them
 * (json.c's datum_to_json), with each column's category and output
 * function looked up once instead of for every row.
 */
typedef enum ColumnJson
{
	COL_DROPPED,
	COL_BOOL,
	COL_NUMBER,					/* bare if a valid JSON number, else a string */
	COL_DATE,
	COL_TIMESTAMP,
	COL_TIMESTAMPTZ,
	COL_STRING					/* the output function's text, as a string */
} ColumnJson;

typedef struct RowToJson
{
	Oid			rowtype;		/* hash key */
	int			natts;			/* the columns as_text was decided for */
	Oid		   *types;			/* (ALTER TABLE keeps the row type's OID) */
	NameData   *names;
	bool		as_text;		/* row_to_json will do */
	FmgrInfo	flinfo;			/* to_jsonb otherwise */
	bool		direct;			/* written here, column by column */
	ColumnJson *kinds;
	FmgrInfo   *out;			/* output function of each column's base type */
	char	  **keys;			/* "name": of each column, JSON-escaped */
	Datum	   *values;			/* room for a row's columns */
	bool	   *nulls;
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

		if (entry->types[i] != (att->attisdropped ? InvalidOid : att->atttypid) ||
			strcmp(NameStr(entry->names[i]), NameStr(att->attname)) != 0)
			return false;
	}
	return true;
}

/*
 * How row_to_json writes a column of this type, if it is one written here
 * (json.c's json_categorize_type for built-in scalar types); *fn is its
 * output function.  COL_DROPPED: not one of them.
 */
static ColumnJson
column_kind(Oid type, Oid *fn)
{
	Oid			base = getBaseType(type);
	bool		varlena;

	*fn = InvalidOid;
	switch (base)
	{
		case BOOLOID:
			return COL_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			getTypeOutputInfo(base, fn, &varlena);
			return COL_NUMBER;
		case DATEOID:
			return COL_DATE;
		case TIMESTAMPOID:
			return COL_TIMESTAMP;
		case TIMESTAMPTZOID:
			return COL_TIMESTAMPTZ;
		case JSONOID:
		case JSONBOID:
			return COL_DROPPED;
		default:
			break;
	}
	/* arrays, composites, and types that may have a cast to json */
	if (base >= FirstNormalObjectId || OidIsValid(get_element_type(base)) ||
		type_is_rowtype(base) || get_typtype(base) == TYPTYPE_PSEUDO)
		return COL_DROPPED;
	getTypeOutputInfo(base, fn, &varlena);
	return COL_STRING;
}

/* Decide whether rows of desc are written here, and how (in TopMemoryContext). */
static void
row_converter_direct(RowToJson *entry, TupleDesc desc)
{
	int			n = Max(desc->natts, 1);

	entry->kinds = palloc(sizeof(ColumnJson) * n);
	entry->out = palloc0(sizeof(FmgrInfo) * n);
	entry->keys = palloc0(sizeof(char *) * n);
	entry->values = palloc(sizeof(Datum) * n);
	entry->nulls = palloc(sizeof(bool) * n);
	entry->direct = entry->as_text;
	for (int i = 0; i < desc->natts && entry->direct; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			fn;
		StringInfoData key;

		if (att->attisdropped)
		{
			entry->kinds[i] = COL_DROPPED;
			continue;
		}
		entry->kinds[i] = column_kind(att->atttypid, &fn);
		if (entry->kinds[i] == COL_DROPPED)
		{
			entry->direct = false;
			break;
		}
		if (OidIsValid(fn))
			fmgr_info(fn, &entry->out[i]);
		initStringInfo(&key);
		escape_json(&key, NameStr(att->attname));
		appendStringInfoChar(&key, ':');
		entry->keys[i] = key.data;
	}
}

/* Append the row as row_to_json writes it (entry->direct). */
static void
append_row_direct(StringInfo buf, RowToJson *conv, HeapTuple tuple, TupleDesc desc)
{
	bool		first = true;

	heap_deform_tuple(tuple, desc, conv->values, conv->nulls);
	appendStringInfoChar(buf, '{');
	for (int i = 0; i < desc->natts; i++)
	{
		Datum		v = conv->values[i];
		char		date[MAXDATELEN + 1];
		char	   *s;

		if (conv->kinds[i] == COL_DROPPED)
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		appendStringInfoString(buf, conv->keys[i]);
		if (conv->nulls[i])
		{
			appendStringInfoString(buf, "null");
			continue;
		}
		switch (conv->kinds[i])
		{
			case COL_BOOL:
				appendStringInfoString(buf, DatumGetBool(v) ? "true" : "false");
				break;
			case COL_NUMBER:
				s = OutputFunctionCall(&conv->out[i], v);
				if (IsValidJsonNumber(s, strlen(s)))
					appendStringInfoString(buf, s);
				else
					escape_json(buf, s);
				pfree(s);
				break;
			case COL_DATE:
			case COL_TIMESTAMP:
			case COL_TIMESTAMPTZ:
				JsonEncodeDateTime(date, v,
								   conv->kinds[i] == COL_DATE ? DATEOID :
								   conv->kinds[i] == COL_TIMESTAMP ? TIMESTAMPOID : TIMESTAMPTZOID,
								   NULL);
				appendStringInfoChar(buf, '"');
				appendStringInfoString(buf, date);
				appendStringInfoChar(buf, '"');
				break;
			case COL_STRING:
				s = OutputFunctionCall(&conv->out[i], v);
				escape_json(buf, s);
				pfree(s);
				break;
			case COL_DROPPED:
				break;
		}
	}
	appendStringInfoChar(buf, '}');
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
		/* the old entry's arrays stay behind: a row type changes rarely */
		found = false;
	}
	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		entry->as_text = true;
		entry->natts = desc->natts;
		entry->types = palloc(sizeof(Oid) * Max(desc->natts, 1));
		entry->names = palloc(sizeof(NameData) * Max(desc->natts, 1));
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			entry->types[i] = att->attisdropped ? InvalidOid : att->atttypid;
			entry->names[i] = att->attname;
			if (!att->attisdropped && !type_json_safe(att->atttypid))
				entry->as_text = false;
		}
		fmgr_info(F_TO_JSONB, &entry->flinfo);
		entry->flinfo.fn_expr = (Node *)
			makeFuncExpr(F_TO_JSONB, JSONBOID,
						 list_make1(makeNullConst(desc->tdtypeid, -1, InvalidOid)),
						 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		row_converter_direct(entry, desc);
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
	if (conv->direct)
	{
		append_row_direct(buf, conv, tuple, desc);
		return;
	}
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
 * as compact JSON text; where_json is the schema and table part, which
 * holds for the whole statement (see checked_recently).
 */
static char *
trigger_kwargs(const char *op, const char *where_json, Relation rel,
			   HeapTuple newtup, HeapTuple oldtup)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"op\":");
	escape_json(&buf, op);
	appendStringInfoString(&buf, where_json);
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
	AttrNumber	unique_attnum;	/* the column that makes the unique key, or 0 */
	Interval	unique_for;		/* and its period, if has_unique_for */
	bool		has_unique_for;
	char	   *where_json;		/* ,"schema":...,"table":... (TopMemoryContext) */
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

/* the relation cannot be renamed or moved while the statement holds its lock */
static void
remember_checked(const Trigger *trigger, const JobSpec *spec, Relation rel,
				 const char *unique_column, const Interval *unique_for)
{
	StringInfoData where;

	initStringInfo(&where);
	appendStringInfoString(&where, ",\"schema\":");
	escape_json(&where, get_namespace_name(RelationGetNamespace(rel)));
	appendStringInfoString(&where, ",\"table\":");
	escape_json(&where, RelationGetRelationName(rel));
	if (last_checked.where_json != NULL)
		pfree(last_checked.where_json);
	last_checked.where_json = MemoryContextStrdup(TopMemoryContext, where.data);
	pfree(where.data);

	last_checked.tgoid = trigger->tgoid;
	last_checked.role = GetUserId();
	last_checked.lxid = MyProc->lxid;
	last_checked.cid = GetCurrentCommandId(false);
	last_checked.priority = spec->priority;
	last_checked.delay = spec->delay;
	last_checked.ttr = spec->ttr;
	last_checked.unique_attnum = 0;
	if (unique_column != NULL)
	{
		AttrNumber	att = attnameAttNum(rel, unique_column, false);

		if (att <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of option \"unique_key\" is not a column of table \"%s\"",
							unique_column, RelationGetRelationName(rel))));
		last_checked.unique_attnum = att;
	}
	last_checked.has_unique_for = (unique_for != NULL);
	if (unique_for != NULL)
		last_checked.unique_for = *unique_for;
}

/*
 * The unique key of a row's job: the text of the unique_key column of the
 * new row (the old one for a DELETE); NULL if the column is null.
 */
static char *
row_unique_key(Relation rel, HeapTuple tuple)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			out;
	bool		varlena;
	bool		isnull;
	Datum		d = heap_getattr(tuple, last_checked.unique_attnum, desc, &isnull);
	char	   *key;

	if (isnull)
		return NULL;
	getTypeOutputInfo(TupleDescAttr(desc, last_checked.unique_attnum - 1)->atttypid, &out, &varlena);
	key = OidOutputFunctionCall(out, d);
	unique_check_key(key);
	return key;
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
		char	   *unique_column;
		Interval   *unique_for;

		job_check_tube(spec.tube);
		job_check_func_name(spec.func_name);
		acl_check_producer(GetUserId(), spec.tube, spec.func_name);
		put_spec_from_options(&spec,
							  trigger->tgnargs == 3
							  ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(trigger->tgargs[2])))
							  : NULL,
							  &unique_column, &unique_for);
		remember_checked(trigger, &spec, rel, unique_column, unique_for);
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

	spec.kwargs_json = trigger_kwargs(op, last_checked.where_json, rel, newtup, oldtup);
	if (last_checked.unique_attnum > 0)
		spec.unique_key = row_unique_key(rel, newtup != NULL ? newtup : oldtup);
	put_enqueue(&spec, last_checked.has_unique_for ? &last_checked.unique_for : NULL, &id);

	if (TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		return PointerGetDatum(newtup != NULL ? newtup : oldtup);
	return PointerGetDatum(NULL);
}
