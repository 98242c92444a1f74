/*
 * json_numbers.c
 *		Numbers of JSON text too big for a double, read as 0 for jansson.
 *
 * Pure code (make unit tests it): it compiles in the backend and as
 * frontend code.
 */
#ifndef FRONTEND
#include "postgres.h"
#else
#include "postgres_fe.h"
#endif

#include <ctype.h>
#include <math.h>

#include "lib/stringinfo.h"

#include "json_numbers.h"

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
json_without_huge_numbers(const char *text, size_t len, size_t *outlen)
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
