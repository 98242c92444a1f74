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

/*
 * A copy of JSON text in which every number too big for a double is 0, or
 * NULL when there is none.  jansson reads numbers as doubles and refuses
 * those ("real number overflow"), while jobq takes the kwargs' numbers from
 * PostgreSQL's jsonb, which keeps them exactly (job_decode): the copy is
 * what jansson checks (structure, duplicate keys, UTF-8, the names).  Only
 * bytes outside strings are looked at; a token that is not a whole number
 * is left as it is, for jansson to refuse.
 */
char *
job_json_without_huge_numbers(const char *text, size_t len, size_t *outlen)
{
	StringInfoData out;
	bool		changed = false;
	size_t		i = 0;

	initStringInfo(&out);
	while (i < len)
	{
		size_t		j = i + 1;

		if (text[i] == '"')
		{
			while (j < len && text[j] != '"')
				j += (text[j] == '\\') ? 2 : 1;
			j = Min(j + 1, len);
		}
		else if (text[i] == '-' || isdigit((unsigned char) text[i]))
		{
			char	   *token;
			char	   *end;
			double		d;

			while (j < len && text[j] != '\0' && strchr("0123456789+-.eE", text[j]) != NULL)
				j++;
			token = pnstrdup(text + i, j - i);
			d = strtod(token, &end);
			if (*end == '\0' && isinf(d))
			{
				appendStringInfoChar(&out, '0');
				changed = true;
				pfree(token);
				i = j;
				continue;
			}
			pfree(token);
		}
		appendBinaryStringInfo(&out, text + i, j - i);
		i = j;
	}
	if (!changed)
	{
		pfree(out.data);
		return NULL;
	}
	*outlen = out.len;
	return out.data;
}

/*
 * Check a body with jansson and fill func_name, tube and id of *job.  On a
 * defect return false with *error set (palloc'd).  jansson allocates with
 * malloc: the tree is freed on every path, errors included.
 */
bool
job_json_check(const char *body, size_t len, JobBody *job, char **error)
{
	json_error_t jerr;
	json_t	   *root;
	json_t	   *v;
	volatile bool ok = false;

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
		char	   *checked = job_json_without_huge_numbers(body, len, &checked_len);

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
		if (!json_is_object(root))
			*error = pstrdup("body is not a JSON object");
		else if (!json_is_string(v = json_object_get(root, "func_name")))
			*error = pstrdup("body has no string \"func_name\"");
		else if (json_string_length(v) == 0 || json_string_length(v) > JOB_MAX_FUNC_NAME ||
				 strlen(json_string_value(v)) != json_string_length(v) ||
				 !job_func_name_printable(json_string_value(v), json_string_length(v)))
			*error = pstrdup("body has an invalid \"func_name\"");
		else
		{
			/* the name as the registry spells it: in the server's encoding */
			const char *utf8 = json_string_value(v);
			char	   *name = pg_any_to_server(utf8, json_string_length(v), PG_UTF8);

			job->func_name = (name == utf8) ? pstrdup(utf8) : name;
			v = json_object_get(root, "tube");
			if (!json_is_string(v))
				*error = pstrdup("body has no string \"tube\"");
			else if (!bs_tube_name_ok(json_string_value(v)))
				*error = pstrdup("body has an invalid \"tube\"");
			else
			{
				job->tube = pstrdup(json_string_value(v));
				v = json_object_get(root, "kwargs");
				if (v != NULL && !json_is_object(v))
					*error = pstrdup("body has a \"kwargs\" that is not an object");
				else
				{
					json_t	   *idv = json_object_get(root, "id");

					json_t	   *dbv = json_object_get(root, "db");

					if (idv != NULL && !json_is_null(idv))
					{
						if (!json_is_string(idv) || !parse_uuid(json_string_value(idv), &job->id))
							*error = pstrdup("body has an \"id\" that is not a uuid");
						else
							job->has_id = true;
					}
					if (*error == NULL && dbv != NULL && !json_is_null(dbv))
					{
						if (!json_is_string(dbv) || json_string_length(dbv) == 0 ||
							json_string_length(dbv) >= NAMEDATALEN ||
							strlen(json_string_value(dbv)) != json_string_length(dbv))
							*error = pstrdup("body has a \"db\" that is not a database name");
						else
						{
							const char *utf8db = json_string_value(dbv);
							char	   *db = pg_any_to_server(utf8db, json_string_length(dbv), PG_UTF8);

							/* jansson's string goes with the tree */
							job->database = (db == utf8db) ? pstrdup(utf8db) : db;
						}
					}
					ok = (*error == NULL);
				}
			}
		}
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();
	return ok;
}
