/*
 * bs_reply.c
 *		beanstalkd's replies, parsed into typed results (see bs_reply.h).
 *
 * One convention for every number beanstalkd sends: an unsigned decimal
 * that fills its field, as bs_parse_u64 reads it.  The callers clamp to
 * what their column or counter holds.
 */
#ifndef FRONTEND
#include "postgres.h"
#else
#include "postgres_fe.h"
#endif

#include <inttypes.h>

#include "bs_reply.h"

/* Parse an unsigned decimal that must end at 'end' (strictly, no sign). */
bool
bs_parse_u64(const char *s, const char **endp, uint64 *out)
{
	char	   *end;
	uintmax_t	v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoumax(s, &end, 10);
	if (errno != 0 || v > PG_UINT64_MAX)
		return false;
	*out = (uint64) v;
	*endp = end;
	return true;
}

/* "WORD <n>" with nothing after n */
bool
bs_reply_u64(const char *line, const char *word, uint64 *out)
{
	size_t		wl = strlen(word);
	const char *end;

	if (strncmp(line, word, wl) != 0 || line[wl] != ' ')
		return false;
	return bs_parse_u64(line + wl + 1, &end, out) && *end == '\0';
}

/* "WORD <n> <m>" with nothing after m */
bool
bs_reply_u64_u64(const char *line, const char *word, uint64 *a, uint64 *b)
{
	size_t		wl = strlen(word);
	const char *end;

	if (strncmp(line, word, wl) != 0 || line[wl] != ' ')
		return false;
	if (!bs_parse_u64(line + wl + 1, &end, a) || *end != ' ')
		return false;
	return bs_parse_u64(end + 1, &end, b) && *end == '\0';
}

/* Tube names: 1-200 bytes of A-Za-z0-9-+/;.$_(), not starting with '-' */
bool
bs_tube_name_ok(const char *tube)
{
	size_t		len = strlen(tube);

	if (len == 0 || len > BS_MAX_NAME || tube[0] == '-')
		return false;
	return strspn(tube, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				  "0123456789-+/;.$_()") == len;
}

/*
 * The lines of a YAML document as beanstalkd writes one: "---", then one
 * item a line.  Splits doc in place (each '\n' becomes a NUL) and returns
 * the number of item lines, their starts in *lines (palloc'd), or -1 when
 * the document does not start with "---" or holds a NUL.
 */
static int
doc_lines(char *doc, size_t len, char ***lines)
{
	int			n = 0;
	int			cap = 32;
	char	   *p;
	char	   *end = doc + len;

	*lines = NULL;
	if (strlen(doc) != len || strncmp(doc, "---\n", 4) != 0)
		return -1;
	*lines = palloc(sizeof(char *) * cap);
	for (p = doc + 4; p < end;)
	{
		char	   *nl = memchr(p, '\n', end - p);

		if (nl != NULL)
			*nl = '\0';
		if (*p != '\0')
		{
			if (n == cap)
			{
				cap *= 2;
				*lines = repalloc(*lines, sizeof(char *) * cap);
			}
			(*lines)[n++] = p;
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return n;
}

/* "key: value" lines; false if a line is not one */
bool
bs_parse_stats(char *doc, size_t len, BsStats *out)
{
	char	  **lines;
	int			n = doc_lines(doc, len, &lines);

	out->n = 0;
	out->pairs = NULL;
	if (n < 0)
		return false;
	out->pairs = palloc(sizeof(BsStatsPair) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		char	   *sep = strchr(lines[i], ':');

		if (sep == NULL || sep == lines[i] || (sep[1] != ' ' && sep[1] != '\0'))
		{
			pfree(lines);
			return false;
		}
		*sep = '\0';
		out->pairs[out->n].key = lines[i];
		out->pairs[out->n].value = sep[1] == ' ' ? sep + 2 : sep + 1;
		out->n++;
	}
	pfree(lines);
	return true;
}

/* the value of key, or NULL */
const char *
bs_stats_get(const BsStats *stats, const char *key)
{
	for (int i = 0; i < stats->n; i++)
		if (strcmp(stats->pairs[i].key, key) == 0)
			return stats->pairs[i].value;
	return NULL;
}

/* the fields of a typed result, and where each goes */
typedef struct NumField
{
	const char *key;
	size_t		offset;			/* of a uint64, or of an int64 if is_signed */
	bool		is_signed;
} NumField;

typedef struct StrField
{
	const char *key;
	size_t		offset;			/* of a char array */
	size_t		size;			/* of that array */
} StrField;

/*
 * Every field of nums[] and strs[] into base: false unless the document has
 * each, the strings fit and the numbers are numbers.  Keys that jobq does
 * not read are ignored.
 */
static bool
parse_typed(char *doc, size_t len, const NumField *nums, int nnums,
			const StrField *strs, int nstrs, void *base)
{
	BsStats		stats;
	bool		ok = bs_parse_stats(doc, len, &stats);

	for (int i = 0; ok && i < nstrs; i++)
	{
		const char *v = bs_stats_get(&stats, strs[i].key);

		ok = v != NULL && strlen(v) < strs[i].size;
		if (ok)
			strcpy((char *) base + strs[i].offset, v);
	}
	for (int i = 0; ok && i < nnums; i++)
	{
		const char *v = bs_stats_get(&stats, nums[i].key);
		void	   *to = (char *) base + nums[i].offset;
		bool		minus = nums[i].is_signed && v != NULL && *v == '-';
		uint64		u = 0;
		const char *end;

		ok = v != NULL && bs_parse_u64(v + minus, &end, &u) && *end == '\0';
		if (ok && nums[i].is_signed)
		{
			ok = u <= (uint64) PG_INT64_MAX;
			*(int64 *) to = minus ? -(int64) u : (int64) u;
		}
		else if (ok)
			*(uint64 *) to = u;
	}
	if (stats.pairs != NULL)
		pfree(stats.pairs);
	return ok;
}

#define NUM(type, key, member)	{key, offsetof(type, member), false}
#define SIGNED(type, key, member)	{key, offsetof(type, member), true}
#define STR(type, key, member)	{key, offsetof(type, member), sizeof(((type *) 0)->member)}

bool
bs_parse_job_stats(char *doc, size_t len, BsJobStats *out)
{
	static const NumField nums[] = {
		NUM(BsJobStats, "id", id), NUM(BsJobStats, "pri", pri),
		NUM(BsJobStats, "age", age), NUM(BsJobStats, "delay", delay),
		NUM(BsJobStats, "ttr", ttr), SIGNED(BsJobStats, "time-left", time_left),
		NUM(BsJobStats, "reserves", reserves), NUM(BsJobStats, "timeouts", timeouts),
		NUM(BsJobStats, "releases", releases), NUM(BsJobStats, "buries", buries),
		NUM(BsJobStats, "kicks", kicks)
	};
	static const StrField strs[] = {
		STR(BsJobStats, "tube", tube), STR(BsJobStats, "state", state)
	};

	memset(out, 0, sizeof(*out));
	return parse_typed(doc, len, nums, lengthof(nums), strs, lengthof(strs), out);
}

bool
bs_parse_tube_stats(char *doc, size_t len, BsTubeStats *out)
{
	static const NumField nums[] = {
		NUM(BsTubeStats, "current-jobs-urgent", urgent),
		NUM(BsTubeStats, "current-jobs-ready", ready),
		NUM(BsTubeStats, "current-jobs-reserved", reserved),
		NUM(BsTubeStats, "current-jobs-delayed", delayed),
		NUM(BsTubeStats, "current-jobs-buried", buried),
		NUM(BsTubeStats, "total-jobs", total),
		NUM(BsTubeStats, "current-using", using),
		NUM(BsTubeStats, "current-watching", watching),
		NUM(BsTubeStats, "current-waiting", waiting),
		NUM(BsTubeStats, "pause", pause),
		SIGNED(BsTubeStats, "pause-time-left", pause_time_left)
	};
	static const StrField strs[] = {STR(BsTubeStats, "name", name)};

	memset(out, 0, sizeof(*out));
	return parse_typed(doc, len, nums, lengthof(nums), strs, lengthof(strs), out);
}

/* "- name" lines; names that are not tube names are left out */
bool
bs_parse_tube_list(char *doc, size_t len, BsTubeList *out)
{
	char	  **lines;
	int			n = doc_lines(doc, len, &lines);

	if (n < 0)
		return false;
	out->n = 0;
	out->names = lines;
	for (int i = 0; i < n; i++)
	{
		if (strncmp(lines[i], "- ", 2) != 0)
			return false;
		if (bs_tube_name_ok(lines[i] + 2))
			out->names[out->n++] = lines[i] + 2;
	}
	return true;
}
