/*
 * jobq.h
 *		Settings and entry points shared by jobq's modules.
 *
 * Each module owns its GUCs and defines them in its own ...Init() function,
 * called from _PG_init; the variables are declared here so that the other
 * modules can read them.
 */
#ifndef JOBQ_H
#define JOBQ_H

#include "postgres.h"

/* pool.c: where the servers are; beanstalk.c: how long to wait for them */
extern char *jobq_servers;
extern int	jobq_connect_timeout;	/* ms */
extern int	jobq_io_timeout;		/* ms */

/* put.c: defaults for jobs whose caller passes NULL */
extern int	jobq_default_priority;
extern int	jobq_default_delay;		/* s */
extern int	jobq_default_ttr;		/* s */


extern void beanstalk_init_gucs(void);
extern void signing_init_gucs(void);
extern void put_init_gucs(void);


/* worker/: the background processes' settings, and the launcher */
extern void launcher_init_gucs(void);
extern void worker_init_gucs(void);
extern void job_run_init_gucs(void);
extern void touch_init_gucs(void);
extern void relay_init_gucs(void);
extern void launcher_register(void);

#endif							/* JOBQ_H */
