/*
 * job.c
 *		Job bodies: checking what a caller asks to enqueue, encoding it in
 *		the wire format, and decoding (strictly, with jansson) what comes
 *		back from beanstalkd.
 *
 * Encoding writes the JSON text directly from the jsonb, so numbers keep
 * their exact decimal form (a round trip through jansson's doubles would
 * turn 12.34 into 12.339999999999999).  Decoding validates the body with
 * jansson (duplicate keys, UTF-8, types) and then takes the kwargs from
 * PostgreSQL's own jsonb parser, for the same reason.
 */
#include "postgres.h"

#include <ctype.h>

#include "common/int.h"
#include "commands/dbcommands.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "beanstalk.h"
#include "job.h"
#include "job_json.h"
#include "signing.h"

void
job_check_tube(const char *tube)
{
	if (tube == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tube must not be null")));
	if (!bs_tube_name_ok(tube))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tube name \"%s\"", tube),
				 errdetail("A tube name is 1 to %d bytes of letters, digits and -+/;.$_(), and does not start with \"-\".",
						   BS_MAX_NAME)));
}

void
job_check_func_name(const char *func_name)
{
	size_t		len;

	if (func_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("func_name must not be null")));
	len = strlen(func_name);
	if (len == 0 || len > JOB_MAX_FUNC_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid func_name of %zu bytes", len),
				 errdetail("A func_name is 1 to %d bytes long.", JOB_MAX_FUNC_NAME)));
	if (!job_func_name_printable(func_name, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid func_name: it contains a control character"),
				 errdetail("A func_name is printable text: no byte below 0x20, and no 0x7f.")));
}

/*
 * An interval as microseconds, saturating at the int64 range instead of
 * overflowing (a month counts 30 days, as interval arithmetic does).
 */
int64
job_interval_usecs(const Interval *iv)
{
	int64		days = (int64) iv->month * DAYS_PER_MONTH + iv->day;
	int64		usecs;

	if (pg_mul_s64_overflow(days, USECS_PER_DAY, &usecs))
		return days < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	if (pg_add_s64_overflow(usecs, iv->time, &usecs))
		return iv->time < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	return usecs;
}

void
job_check_kwargs(Jsonb *kwargs)
{
	if (kwargs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kwargs must not be null"),
				 errhint("Pass '{}' for a job without arguments.")));
	if (!JB_ROOT_IS_OBJECT(kwargs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kwargs must be a JSON object"),
				 errdetail("Got a JSON %s.",
						   JB_ROOT_IS_SCALAR(kwargs) ? "scalar" : "array")));
}

/* a priority for beanstalkd, checked */
uint64
job_priority_arg(int64 value)
{
	if (value < 0 || (uint64) value > BS_MAX_UINT32)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("priority " INT64_FORMAT " is out of range", value),
				 errdetail("A priority is between 0 (most urgent) and 4294967295.")));
	return (uint64) value;
}

/*
 * An interval argument as whole seconds for beanstalkd, rounded up so that a
 * job never runs earlier or with less time than asked.  NULL means the
 * default.
 */
uint64
job_seconds_arg(bool isnull, Interval *value, const char *what,
				uint64 minimum, int default_s)
{
	int64		usecs;
	uint64		secs;

	if (isnull)
		return (uint64) default_s;
	usecs = job_interval_usecs(value);
	if (usecs == PG_INT64_MAX || usecs == PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is out of range", what)));
	if (usecs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what)));
	secs = (uint64) (usecs / USECS_PER_SEC) + (usecs % USECS_PER_SEC != 0);
	if (secs < minimum)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at least " UINT64_FORMAT " second", what, minimum)));
	if (secs > BS_MAX_UINT32)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is out of range", what),
				 errdetail("beanstalkd takes at most 4294967295 seconds.")));
	return secs;
}

/*
 * What a body too big for a server is told, in one wording: 'max' is the
 * server's max-job-size (-1: unknown, as after a JOB_TOO_BIG reply), and
 * 'server' NULL when the limit is the one the relay last saw.
 */
char *
job_too_big_message(size_t len, int64 max, const char *server)
{
	if (max < 0)
		return psprintf("job body of %zu bytes exceeds the max-job-size of beanstalkd at %s",
						len, server);
	return psprintf("job body of %zu bytes exceeds the max-job-size of " INT64_FORMAT " bytes of %s%s",
					len, max, server ? "beanstalkd at " : "the beanstalkd server",
					server ? server : "");
}

/*
 * A new version 4 uuid.  The random bytes come from pg_strong_random
 * UUID_BATCH uuids at a time: a trigger makes one per row, and each call
 * into OpenSSL costs as much as the rest of the uuid.  The batch belongs to
 * the process that drew it: a forked child draws its own.
 */
#define UUID_BATCH	64

void
job_new_uuid(pg_uuid_t *uuid)
{
	static uint8 batch[UUID_BATCH * UUID_LEN];
	static int	used = UUID_BATCH;
	static int	drawn_by = 0;

	if (used == UUID_BATCH || drawn_by != MyProcPid)
	{
		if (!pg_strong_random(batch, sizeof(batch)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
		used = 0;
		drawn_by = MyProcPid;
	}
	memcpy(uuid->data, batch + used * UUID_LEN, UUID_LEN);
	/* each random byte serves once */
	memset(batch + used * UUID_LEN, 0, UUID_LEN);
	used++;
	/* RFC 4122 version 4, variant 1 */
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
}

static void
append_uuid(StringInfo out, const pg_uuid_t *id)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			appendStringInfoChar(out, '-');
		appendStringInfoChar(out, hex[id->data[i] >> 4]);
		appendStringInfoChar(out, hex[id->data[i] & 0x0f]);
	}
}

static void
append_json_string(StringInfo out, const char *s, int len)
{
	char	   *copy = pnstrdup(s, len);

	escape_json(out, copy);
	pfree(copy);
}

static void
append_scalar(StringInfo out, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(out, "null");
			break;
		case jbvBool:
			appendStringInfoString(out, v->val.boolean ? "true" : "false");
			break;
		case jbvString:
			append_json_string(out, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			{
				char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric)));

				appendStringInfoString(out, text);
			}
			break;
		default:
			elog(ERROR, "jobq: unexpected jsonb value type %d", (int) v->type);
	}
}

/* jsonb as compact JSON text: no blanks between tokens */
void
job_append_jsonb_compact(StringInfo out, JsonbContainer *container)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		comma = false;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
			case WJB_BEGIN_ARRAY:
				if (comma)
					appendStringInfoChar(out, ',');
				if (tok == WJB_BEGIN_ARRAY && v.val.array.rawScalar)
					break;
				appendStringInfoChar(out, tok == WJB_BEGIN_OBJECT ? '{' : '[');
				comma = false;
				break;
			case WJB_END_OBJECT:
				appendStringInfoChar(out, '}');
				comma = true;
				break;
			case WJB_END_ARRAY:
				if (!(JsonContainerIsScalar(container)))
					appendStringInfoChar(out, ']');
				comma = true;
				break;
			case WJB_KEY:
				if (comma)
					appendStringInfoChar(out, ',');
				append_json_string(out, v.val.string.val, v.val.string.len);
				appendStringInfoChar(out, ':');
				comma = false;
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				if (comma && tok == WJB_ELEM)
					appendStringInfoChar(out, ',');
				append_scalar(out, &v);
				comma = true;
				break;
			default:
				break;
		}
	}
}

/*
 * This backend's database, which every body names so that only its own
 * workers run the job (a database cannot be renamed while connected to).
 */
static const char *
job_database_name(void)
{
	static char *name = NULL;

	if (name == NULL)
		name = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	return name;
}

/*
 * The body for a job, as UTF-8 (beanstalkd bodies are bytes; jobq's are
 * always UTF-8 JSON whatever the database encoding).
 */
char *
job_encode(const JobSpec *spec, const pg_uuid_t *id, size_t *len)
{
	StringInfoData buf;
	char	   *utf8;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"func_name\":");
	escape_json(&buf, spec->func_name);
	appendStringInfoString(&buf, ",\"tube\":");
	escape_json(&buf, spec->tube);
	appendStringInfoString(&buf, ",\"kwargs\":");
	if (spec->kwargs_json != NULL)
		appendStringInfoString(&buf, spec->kwargs_json);
	else
		job_append_jsonb_compact(&buf, &spec->kwargs->root);
	appendStringInfoString(&buf, ",\"id\":\"");
	append_uuid(&buf, id);
	appendStringInfoString(&buf, "\",\"db\":");
	escape_json(&buf, job_database_name());
	if (spec->unique_key != NULL)
	{
		appendStringInfoString(&buf, ",\"unique_key\":");
		escape_json(&buf, spec->unique_key);
	}
	appendStringInfoChar(&buf, '}');

	utf8 = pg_server_to_any(buf.data, buf.len, PG_UTF8);
	*len = (utf8 != buf.data) ? strlen(utf8) : (size_t) buf.len;
	if (signing_enabled())
		return signing_sign(utf8, len);
	return utf8;
}

/* The value of key in a jsonb object, or NULL. */
JsonbValue *
job_jsonb_get(Jsonb *object, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&object->root, JB_FOBJECT, &k);
}

/*
 * Decode a job body.  A body is untrusted input: on any defect this returns
 * false with *error saying what is wrong (palloc'd), and nothing else of
 * *job may be used.
 */
bool
job_decode(const char *body, size_t len, JobBody *job, char **error)
{
	bool		ok;

	memset(job, 0, sizeof(*job));
	ok = job_json_check(body, len, job, error);
	if (!ok)
		return false;

	/*
	 * jansson has checked the body; take the kwargs through jsonb so numbers
	 * keep their exact decimal text.
	 */
	{
		char	   *text = pg_any_to_server(body, len, PG_UTF8);
		Jsonb	   *whole = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
		JsonbValue *kw = job_jsonb_get(whole, "kwargs");

		if (kw == NULL)
			job->kwargs = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
		else
			job->kwargs = JsonbValueToJsonb(kw);
	}
	return true;
}
