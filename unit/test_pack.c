/*
 * test_pack.c
 *		The pack format (src/pack.c): round trips, and packs cut or lying
 *		about their lengths, which must fail without a read past the end.
 */
#include "unit.h"

#include "pack.h"

static void
uuid_of(int n, pg_uuid_t *id)
{
	for (int i = 0; i < UUID_LEN; i++)
		id->data[i] = (unsigned char) (n * 31 + i);
}

/* three jobs: an ordinary one, empty strings and body, a binary body with NULs */
static void
three_jobs(StringInfo pack)
{
	pg_uuid_t	id;
	static const char bin[] = {'a', '\0', 'b', '\0', '\xff'};

	initStringInfo(pack);
	uuid_of(1, &id);
	CHECK(pack_append(pack, &id, 1024, 0, 60, "mail", "send", "{\"to\": 1}", 9));
	uuid_of(2, &id);
	CHECK(pack_append(pack, &id, 0, -1, PG_INT64_MAX, "t", "", "", 0));
	uuid_of(3, &id);
	CHECK(pack_append(pack, &id, PG_INT64_MIN, 5, 1, "t", "f", bin, sizeof(bin)));
}

static void
round_trip(void)
{
	StringInfoData pack;
	PackReader	r;
	PackedJob	job;
	pg_uuid_t	id;
	char	   *error = NULL;

	three_jobs(&pack);
	pack_reader_init(&r, pack.data, pack.len);
	CHECK(pack_read(&r, &job, &error) == 1);
	uuid_of(1, &id);
	CHECK(memcmp(job.id.data, id.data, UUID_LEN) == 0);
	CHECK(job.priority == 1024 && job.delay == 0 && job.ttr == 60);
	CHECK(strcmp(job.tube, "mail") == 0 && strcmp(job.func_name, "send") == 0);
	CHECK(job.body_len == 9 && memcmp(job.body, "{\"to\": 1}", 9) == 0);
	CHECK(pack_read(&r, &job, &error) == 1);
	CHECK(job.delay == -1 && job.ttr == PG_INT64_MAX && job.func_name[0] == '\0' && job.body_len == 0);
	CHECK(pack_read(&r, &job, &error) == 1);
	CHECK(job.priority == PG_INT64_MIN && job.body_len == 5 && job.body[1] == '\0' &&
		  (unsigned char) job.body[4] == 0xff);
	CHECK(pack_read(&r, &job, &error) == 0);
	CHECK(pack_read(&r, &job, &error) == 0);

	pack_reader_init(&r, "", 0);
	CHECK(pack_read(&r, &job, &error) == 0);
}

/*
 * Every prefix of a pack of three jobs: whole jobs read, then the cut one
 * is an error.  Each prefix is copied into a buffer of exactly its size,
 * so that a read past the end is valgrind's to see.
 */
static void
cut_packs(void)
{
	StringInfoData pack;
	int			ends[3];
	int			k = 0;
	PackReader	r;
	PackedJob	job;
	char	   *error;

	three_jobs(&pack);
	pack_reader_init(&r, pack.data, pack.len);
	while (pack_read(&r, &job, &error) == 1)
		ends[k++] = (int) (r.next - pack.data);
	CHECK(k == 3 && ends[2] == pack.len);
	for (int cut = 0; cut < pack.len; cut++)
	{
		char	   *copy = palloc(Max(cut, 1));
		int			whole = 0;
		int			rc;

		memcpy(copy, pack.data, cut);
		pack_reader_init(&r, copy, cut);
		error = NULL;
		while ((rc = pack_read(&r, &job, &error)) == 1)
			whole++;
		for (int j = 0; j < 3; j++)
			if (cut == (j == 0 ? 0 : ends[j - 1]))
				CHECK(rc == 0 && whole == j);
		if (cut != 0 && cut != ends[0] && cut != ends[1])
			CHECK(rc == -1 && error != NULL && whole == (cut > ends[1] ? 2 : cut > ends[0] ? 1 : 0));
		/* read no further after an error */
		CHECK(pack_read(&r, &job, &error) == 0);
		pfree(copy);
	}
}

/* lengths that claim more than the pack holds, and strings not in the encoding */
static void
lying_packs(void)
{
	StringInfoData pack;
	PackReader	r;
	PackedJob	job;
	char	   *error = NULL;
	pg_uuid_t	id;
	int			tube_len_at = UUID_LEN + 3 * 8;

	uuid_of(1, &id);
	initStringInfo(&pack);
	CHECK(pack_append(&pack, &id, 0, 0, 1, "t", "f", "b", 1));
	pack.data[tube_len_at] = '\x7f';	/* tube length 2^31 - ... */
	pack_reader_init(&r, pack.data, pack.len);
	CHECK(pack_read(&r, &job, &error) == -1 && strstr(error, "runs past the end") != NULL);

	initStringInfo(&pack);
	CHECK(pack_append(&pack, &id, 0, 0, 1, "t\xff", "f", "b", 1));
	pack_reader_init(&r, pack.data, pack.len);
	CHECK(pack_read(&r, &job, &error) == -1 && strstr(error, "not valid") != NULL);

	/* a whole job then trailing bytes too few for another */
	initStringInfo(&pack);
	CHECK(pack_append(&pack, &id, 0, 0, 1, "t", "f", "b", 1));
	appendStringInfoString(&pack, "xyz");
	pack_reader_init(&r, pack.data, pack.len);
	CHECK(pack_read(&r, &job, &error) == 1);
	CHECK(pack_read(&r, &job, &error) == -1 && strstr(error, "cut off") != NULL);
}

void
test_pack(void)
{
	round_trip();
	cut_packs();
	lying_packs();
}
