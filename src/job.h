/*
 * job.h
 *		Job bodies: validation of what goes in, the wire format, decoding.
 *
 * The wire format is the Python original's, compact JSON, with the job's id
 * and the database that enqueued it:
 *	{"func_name":"f","tube":"t","kwargs":{...},"id":"<uuid>","db":"<name>"}
 */
#ifndef JOBQ_JOB_H
#define JOBQ_JOB_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#define JOB_MAX_FUNC_NAME	200
#define JOB_MAX_UNIQUE_KEY	1000	/* bytes: well inside a btree entry */

/* what jobq_put and jobq_put_now are asked to send, validated */
typedef struct JobSpec
{
	const char *tube;
	const char *func_name;
	Jsonb	   *kwargs;
	const char *kwargs_json;	/* instead of kwargs: a compact JSON object */
	uint64		priority;
	uint64		delay;			/* s */
	uint64		ttr;			/* s */
	const char *unique_key;		/* or NULL (unique.c) */
} JobSpec;

/* a job body read back from beanstalkd */
typedef struct JobBody
{
	char	   *func_name;
	char	   *tube;
	Jsonb	   *kwargs;			/* never NULL: absent means {} */
	bool		has_id;
	pg_uuid_t	id;
	char	   *database;		/* the database that enqueued it; NULL: unknown */
	char	   *unique_key;		/* the key it holds on its tube, or NULL */
} JobBody;

extern void job_check_tube(const char *tube);
extern void job_check_func_name(const char *func_name);
extern bool job_func_name_printable(const char *s, size_t len);
extern int64 job_interval_usecs(const Interval *iv);
extern void job_check_kwargs(Jsonb *kwargs);
extern uint64 job_priority_arg(int64 value);
extern uint64 job_seconds_arg(bool isnull, Interval *value, const char *what,
							  uint64 minimum, int default_s);

extern char *job_too_big_message(size_t len, int64 max, const char *server);
extern void job_new_uuid(pg_uuid_t *uuid);
extern char *job_encode(const JobSpec *spec, const pg_uuid_t *id, size_t *len);
extern bool job_decode(const char *body, size_t len, JobBody *job, char **error);
extern void job_append_jsonb_compact(StringInfo out, JsonbContainer *container);
extern JsonbValue *job_jsonb_get(Jsonb *object, const char *key);

#endif							/* JOBQ_JOB_H */
