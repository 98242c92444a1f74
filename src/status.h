/*
 * status.h
 *		What became of a job, by its uuid (status.c), for jobq_status,
 *		jobq_wait and jobq_cancel.
 */
#ifndef JOBQ_STATUS_H
#define JOBQ_STATUS_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

typedef enum JobState
{
	JOB_UNKNOWN,				/* never enqueued here, or older than the retention */
	JOB_PENDING,				/* committed, in the outbox */
	JOB_QUEUED,					/* in beanstalkd (jobq.sent) */
	JOB_RUNNING,				/* a worker is in its handler */
	JOB_FAILED,					/* its jobq.failed row */
	JOB_DONE,
	JOB_CANCELLED
} JobState;

/* one row of jobq_status; a field is known if its pointer or has_ flag is set */
typedef struct JobStatus
{
	pg_uuid_t	id;
	JobState	state;
	char	   *tube;
	char	   *func_name;
	Jsonb	   *kwargs;			/* only for the roles that may enqueue the job */
	bool		has_enqueued_at;
	TimestampTz enqueued_at;
	char	   *server;
	bool		has_bs_id;
	int64		bs_id;
	char	   *bs_state;		/* ready, delayed, reserved, buried, as beanstalkd said */
	bool		has_attempts;
	int32		attempts;
	bool		has_worker;
	int32		worker;
	TimestampTz since;			/* with worker: when its handler began */
	int			worker_pid;
	bool		has_finished_at;
	TimestampTz finished_at;
	Jsonb	   *result;			/* as kwargs */
	char	   *sqlstate;
	char	   *message;		/* as kwargs */
	char	   *cancelled_by;
	char	   *cancelled_in;
} JobStatus;

extern const char *job_state_name(JobState state);
extern bool job_state_finished(JobState state);
extern void status_read(const pg_uuid_t *ids, int n, JobStatus *out, bool ask_servers);
extern void status_wait(const pg_uuid_t *id, TimestampTz deadline,
						bool (*until) (const JobStatus *));
extern HeapTuple status_tuple(const JobStatus *st, TupleDesc desc);

#endif							/* JOBQ_STATUS_H */
