/*
 * worker.h
 *		What jobq's background processes share: the launcher starts the
 *		relay (slot 0) and the job workers (slots 1..jobq.workers).
 */
#ifndef JOBQ_WORKER_H
#define JOBQ_WORKER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "beanstalk.h"

#define RELAY_SLOT	0

/* the handler of one (tube, func_name), as jobq.handlers has it */
typedef struct Handler
{
	Oid			fn;				/* InvalidOid for a library/symbol handler */
	char	   *library;
	char	   *symbol;
	Oid			run_as;
	int			max_attempts;
	int64		backoff_ms;
	int64		timeout_ms;		/* 0: bounded by the job's ttr */
	Oid			registered_by;
	TimestampTz registered_at;	/* when (tube, func_name) got this run_as */
} Handler;

/* launcher.c: common start-up of a jobq process connected to a database */
extern void worker_startup(int slot, const char *what);
extern bool worker_extension_ready(void);
extern void worker_wait_for_extension(int slot);
extern void worker_reload_config(void);
extern void worker_sleep(int ms);
extern void worker_report_error(int slot, const char *what, bool *in_outage);

/* dispatch.c */
extern bool dispatch_lookup(const char *tube, const char *func_name, Handler *h);
extern void dispatch_call(const Handler *h, Jsonb *kwargs);

/* worker.c / relay.c entry points, started by the launcher */
extern PGDLLEXPORT void jobq_worker_main(Datum arg);
extern PGDLLEXPORT void jobq_relay_main(Datum arg);
extern PGDLLEXPORT void jobq_launcher_main(Datum arg);

#endif							/* JOBQ_WORKER_H */
