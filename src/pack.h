/*
 * pack.h
 *		Packs: the jobs of one outbox write, one after the other in a bytea
 *		(a row of jobq.outbox_packs).
 *
 * Each job is, in network byte order (what uuid_send, int8send and int4send
 * give, so that SQL can write a pack too):
 *	id uuid (16 bytes) | priority int8 | delay int8 | ttr int8 |
 *	int4 length, tube | int4 length, func_name | int4 length, body
 * The strings are in the database encoding, without a terminating NUL.
 */
#ifndef JOBQ_PACK_H
#define JOBQ_PACK_H

#include "lib/stringinfo.h"
#include "utils/uuid.h"

/* one job read back from a pack; body points into the pack */
typedef struct PackedJob
{
	pg_uuid_t	id;
	int64		priority;
	int64		delay;
	int64		ttr;
	char	   *tube;			/* palloc'd */
	char	   *func_name;		/* palloc'd */
	const char *body;
	size_t		body_len;
} PackedJob;

typedef struct PackReader
{
	const char *next;
	const char *end;
} PackReader;

extern bool pack_append(StringInfo pack, const pg_uuid_t *id, int64 priority,
						int64 delay, int64 ttr, const char *tube,
						const char *func_name, const char *body, size_t body_len);
extern void pack_reader_init(PackReader *reader, const char *data, size_t len);
extern int	pack_read(PackReader *reader, PackedJob *job, char **error);
extern bool pack_next(PackReader *reader, PackedJob *job);

#endif							/* JOBQ_PACK_H */
