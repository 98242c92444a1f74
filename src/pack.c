/*
 * pack.c
 *		Writing and reading packs (see pack.h).
 *
 * A pack is read back by the relay and by anyone who may call jobq.unpack
 * on any bytea: every length is checked against what is left, and a pack
 * that does not parse is an error, never a read past its end.  Pure code
 * (make unit tests it): the backend's side, which throws, is pack_sql.c.
 */
#ifndef FRONTEND
#include "postgres.h"
#else
#include "postgres_fe.h"
#endif

#include "mb/pg_wchar.h"
#include "port/pg_bswap.h"

#include "pack.h"

#define PACK_FIXED_BYTES	(UUID_LEN + 3 * sizeof(int64))

static void
append_int64(StringInfo pack, int64 value)
{
	uint64		be = pg_hton64((uint64) value);

	appendBinaryStringInfoNT(pack, (const char *) &be, sizeof(be));
}

static void
append_string(StringInfo pack, const char *s, size_t len)
{
	uint32		be = pg_hton32((uint32) len);

	appendBinaryStringInfoNT(pack, (const char *) &be, sizeof(be));
	appendBinaryStringInfoNT(pack, s, len);
}

/* Append one job to pack; false (nothing appended) if its body is too large for one. */
bool
pack_append(StringInfo pack, const pg_uuid_t *id, int64 priority, int64 delay,
			int64 ttr, const char *tube, const char *func_name,
			const char *body, size_t body_len)
{
	if (body_len > PG_INT32_MAX)
		return false;
	appendBinaryStringInfoNT(pack, (const char *) id->data, UUID_LEN);
	append_int64(pack, priority);
	append_int64(pack, delay);
	append_int64(pack, ttr);
	append_string(pack, tube, strlen(tube));
	append_string(pack, func_name, strlen(func_name));
	append_string(pack, body, body_len);
	return true;
}

static int64
read_int64(PackReader *reader)
{
	uint64		be;

	memcpy(&be, reader->next, sizeof(be));
	reader->next += sizeof(be);
	return (int64) pg_ntoh64(be);
}

/* a length-prefixed byte string, its bytes left in the pack; NULL: *error says why */
static const char *
read_bytes(PackReader *reader, size_t *len, const char *what, char **error)
{
	uint32		be;
	const char *bytes;

	if (reader->end - reader->next < (ptrdiff_t) sizeof(be))
	{
		*error = psprintf("the length of a %s is cut off", what);
		return NULL;
	}
	memcpy(&be, reader->next, sizeof(be));
	reader->next += sizeof(be);
	*len = pg_ntoh32(be);
	if ((size_t) (reader->end - reader->next) < *len)
	{
		*error = psprintf("a %s of %zu bytes runs past the end", what, *len);
		return NULL;
	}
	bytes = reader->next;
	reader->next += *len;
	return bytes;
}

/* whether s is valid in the database encoding (UTF-8 in the unit tests) */
static bool
valid_in_database(const char *s, size_t len)
{
#ifndef FRONTEND
	return pg_verifymbstr(s, (int) len, true);
#else
	return pg_encoding_verifymbstr(PG_UTF8, s, (int) len) == (int) len;
#endif
}

/* a length-prefixed string, as a C string; NULL: *error says why */
static char *
read_string(PackReader *reader, const char *what, char **error)
{
	size_t		len;
	const char *s = read_bytes(reader, &len, what, error);

	if (s == NULL)
		return NULL;
	if (!valid_in_database(s, len))
	{
		*error = psprintf("a %s is not valid in the database encoding", what);
		return NULL;
	}
	return pnstrdup(s, len);
}

void
pack_reader_init(PackReader *reader, const char *data, size_t len)
{
	reader->next = data;
	reader->end = data + len;
}

/*
 * The next job of the pack into *job: 1, or 0 at its end, or -1 with
 * *error set (palloc'd) for a pack that does not parse, which is then read
 * no further.
 */
int
pack_read(PackReader *reader, PackedJob *job, char **error)
{
	if (reader->next == reader->end)
		return 0;
	if ((size_t) (reader->end - reader->next) < PACK_FIXED_BYTES)
	{
		*error = pstrdup("a job is cut off");
		reader->next = reader->end;
		return -1;
	}
	memcpy(job->id.data, reader->next, UUID_LEN);
	reader->next += UUID_LEN;
	job->priority = read_int64(reader);
	job->delay = read_int64(reader);
	job->ttr = read_int64(reader);
	if ((job->tube = read_string(reader, "tube", error)) == NULL ||
		(job->func_name = read_string(reader, "func_name", error)) == NULL ||
		(job->body = read_bytes(reader, &job->body_len, "body", error)) == NULL)
	{
		reader->next = reader->end;
		return -1;
	}
	return 1;
}
