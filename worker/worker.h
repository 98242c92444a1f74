/*
 * worker.h
 *		What jobq's background processes share: for each database it
 *		serves, the launcher starts a relay and jobq.workers job workers
 *		(see shmem.h for their slots).
 */
#ifndef JOBQ_WORKER_H
#define JOBQ_WORKER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "beanstalk.h"
#include "registry_cache.h"

/* the handler of one (tube, func_name), as jobq.handlers has it */
typedef Registration Handler;

/* launcher.c */
extern int	jobq_workers;

/* what stats-job says of a reserved job */
typedef struct JobFacts
{
	char		tube[BS_MAX_NAME + 1];	/* the tube it was reserved from */
	TimestampTz put_at;			/* at the latest (beanstalkd counts whole seconds) */
	uint64		priority;		/* the job's own: released and recorded with it */
	uint64		ttr_ms;
	int			attempt;		/* beanstalkd's reserve count, this one included */
	int			failures;		/* runs that failed before: releases + buries */
} JobFacts;

/* the outcome of running one job */
typedef struct Outcome
{
	bool		ok;
	bool		bury_now;		/* not worth retrying: no handler */
	char		sqlstate[6];
	char	   *message;
	char	   *func_name;		/* of the job, once its body was read; else NULL */
	int			max_attempts;
	int64		backoff_ms;
	bool		cancelled;		/* by jobq_cancel while it ran: recorded, deleted */
	char		cancelled_by[NAMEDATALEN];
} Outcome;

/* one job of a batch, from its reservation until it is settled */
typedef struct BatchJob
{
	BsJob		job;
	int			server;			/* in the worker's pool: ids are per server */
	JobFacts	facts;
	bool		gone;			/* deleted meanwhile: nothing to run or settle */
	Outcome		out;
	bool		final_failure;	/* buried, and recorded in jobq.failed */
} BatchJob;

#define JOBQ_DEFAULT_BATCH_SIZE	32
#define JOBQ_MAX_BATCH_SIZE		1000

/* job_run.c */
extern int	jobq_max_handler_time;	/* ms */

struct BsPool;
extern void job_run_init(int slot, struct BsPool *pool);
extern bool job_may_share_xact(void);
extern void job_run(BatchJob *bj);

/* relay.c */
extern int	jobq_done_retention;	/* s */
extern int	jobq_failed_retention;	/* s */
extern bool jobq_track_jobs;

/* process.c: what the relay and the workers share */
typedef struct ProcessBackoff
{
	bool		in_outage;		/* a connection error was logged; say when it ends */
	int			backoff_ms;		/* 0 after a good iteration */
} ProcessBackoff;

extern char worker_database[];
extern void worker_startup(int slot, const char *what);
extern bool worker_extension_ready(void);
extern void worker_wait_for_extension(int slot);
extern void worker_reload_config(void);
extern void worker_sleep(int ms);
extern int	worker_report_error(int slot, const char *what, bool *in_outage);
extern void process_xact_begin(void);
extern void process_xact_end(void);
extern void process_succeeded(ProcessBackoff *bo);
extern int	process_recover(int slot, const char *what, ProcessBackoff *bo);
extern void process_back_off(int slot, const ProcessBackoff *bo);

/* dispatch.c */
extern bool dispatch_lookup(const char *tube, const char *func_name, Handler *h);
extern Jsonb *dispatch_call(const Handler *h, Jsonb *kwargs);

/* job_cancel.c */
extern void job_cancel_init(int slot);
extern void job_cancel_arm(void);
extern void job_cancel_disarm(void);
extern bool job_cancel_struck(void);

/* worker.c / relay.c entry points, started by the launcher */
extern PGDLLEXPORT void jobq_worker_main(Datum arg);
extern PGDLLEXPORT void jobq_relay_main(Datum arg);
extern PGDLLEXPORT void jobq_launcher_main(Datum arg);

#endif							/* JOBQ_WORKER_H */
