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

#include "utils/guc.h"

/* beanstalk.c: where the server is and how long to wait for it */
extern char *jobq_servers;
extern int	jobq_connect_timeout;	/* ms */
extern int	jobq_io_timeout;		/* ms */

/* put.c: defaults for jobs whose caller passes NULL */
extern int	jobq_default_priority;
extern int	jobq_default_delay;		/* s */
extern int	jobq_default_ttr;		/* s */


/*
 * jobq.c: in the relay and the job workers, jobq.* settings come from the
 * server's configuration only (see jobq_setting_source_ok).
 */
extern bool jobq_background_process;
extern bool jobq_setting_source_ok(GucSource source);
extern bool jobq_check_int_setting(int *newval, void **extra, GucSource source);

extern void beanstalk_init_gucs(void);
extern void signing_init_gucs(void);
extern void put_init_gucs(void);

/* launcher.c: the databases the relays and the workers serve (preload only) */
extern char *jobq_database;
extern bool launcher_serves(const char *database);

/* worker/: the background processes' settings, and the launcher */
extern void launcher_init_gucs(void);
extern void worker_init_gucs(void);
extern void relay_init_gucs(void);
extern void launcher_register(void);

#endif							/* JOBQ_H */
