/*
 * job_json.c
 *		The jansson side of decoding a job body: strict parsing (duplicate
 *		keys, UTF-8, nesting) and the checks of func_name, tube and id.
 *
 * Kept apart from job.c because jansson's json_* names collide with
 * PostgreSQL's fmgr prototypes of the same names.
 */
#include "postgres.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>

#include "mb/pg_wchar.h"

#include "beanstalk.h"
#include "job.h"
#include "job_json.h"
#include "json_numbers.h"

/* no control characters: a func_name ends up in log lines and messages */
bool
job_func_name_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static bool
parse_uuid(const char *s, pg_uuid_t *out)
{
	int			i = 0;

	for (const char *p = s; *p != '\0'; p++)
	{
		int			hi;
		int			lo;

		if (*p == '-' && (i == 4 || i == 6 || i == 8 || i == 10) && p[1] != '-')
			continue;
		if (i >= UUID_LEN || !isxdigit((unsigned char) p[0]) || !isxdigit((unsigned char) p[1]))
			return false;
		hi = isdigit((unsigned char) p[0]) ? p[0] - '0' : (tolower((unsigned char) p[0]) - 'a' + 10);
		lo = isdigit((unsigned char) p[1]) ? p[1] - '0' : (tolower((unsigned char) p[1]) - 'a' + 10);
		out->data[i++] = (hi << 4) | lo;
		p++;
	}
	return i == UUID_LEN;
}

/* a string of jansson's tree in the server's encoding, palloc'd (the tree is freed) */
static char *
server_string(json_t *v)
{
	const char *utf8 = json_string_value(v);
	char	   *s = pg_any_to_server(utf8, json_string_length(v), PG_UTF8);

	return (s == utf8) ? pstrdup(utf8) : s;
}

/* a string that holds no NUL, of 1 to max bytes */
static bool
string_of_length(json_t *v, size_t max)
{
	return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max &&
		strlen(json_string_value(v)) == json_string_length(v);
}

/*
 * The fields of a parsed body into *job; the first defect as a palloc'd
 * message, or NULL.
 */
static char *
job_json_fields(json_t *root, JobBody *job)
{
	json_t	   *v;

	if (!json_is_object(root))
		return pstrdup("body is not a JSON object");
	v = json_object_get(root, "func_name");
	if (!json_is_string(v))
		return pstrdup("body has no string \"func_name\"");
	if (!string_of_length(v, JOB_MAX_FUNC_NAME) ||
		!job_func_name_printable(json_string_value(v), json_string_length(v)))
		return pstrdup("body has an invalid \"func_name\"");
	/* the name as the registry spells it: in the server's encoding */
	job->func_name = server_string(v);
	v = json_object_get(root, "tube");
	if (!json_is_string(v))
		return pstrdup("body has no string \"tube\"");
	if (!bs_tube_name_ok(json_string_value(v)))
		return pstrdup("body has an invalid \"tube\"");
	job->tube = pstrdup(json_string_value(v));
	v = json_object_get(root, "kwargs");
	if (v != NULL && !json_is_object(v))
		return pstrdup("body has a \"kwargs\" that is not an object");
	v = json_object_get(root, "id");
	if (v != NULL && !json_is_null(v))
	{
		if (!json_is_string(v) || !parse_uuid(json_string_value(v), &job->id))
			return pstrdup("body has an \"id\" that is not a uuid");
		job->has_id = true;
	}
	v = json_object_get(root, "db");
	if (v != NULL && !json_is_null(v))
	{
		if (!string_of_length(v, NAMEDATALEN - 1))
			return pstrdup("body has a \"db\" that is not a database name");
		job->database = server_string(v);
	}
	v = json_object_get(root, "unique_key");
	if (v != NULL && !json_is_null(v))
	{
		if (!string_of_length(v, JOB_MAX_UNIQUE_KEY))
			return pstrdup("body has a \"unique_key\" that is not a key");
		job->unique_key = server_string(v);
	}
	return NULL;
}

/*
 * Check a body with jansson and fill func_name, tube, id and db of *job.
 * On a defect return false with *error set (palloc'd).  jansson allocates
 * with malloc: the tree is freed on every path, errors included.
 */
bool
job_json_check(const char *body, size_t len, JobBody *job, char **error)
{
	json_error_t jerr;
	json_t	   *root;

	*error = NULL;
	/*
	 * Integers as doubles: jansson's own integers stop at 2^63, and jobq
	 * reads the kwargs' numbers from PostgreSQL's jsonb anyway (job.c).  A
	 * number beyond a double's range (a trigger's numeric column may hold
	 * one) is checked as 0.
	 */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
	if (root == NULL && json_error_code(&jerr) == json_error_numeric_overflow)
	{
		size_t		checked_len;
		char	   *checked = json_without_huge_numbers(body, len, &checked_len);

		if (checked != NULL)
		{
			root = json_loadb(checked, checked_len,
							  JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
			pfree(checked);
		}
	}
	if (root == NULL)
	{
		*error = psprintf("body is not valid JSON: %s (at byte %d)", jerr.text, jerr.position);
		return false;
	}
	PG_TRY();
	{
		*error = job_json_fields(root, job);
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();
	return *error == NULL;
}
