/*
 * touch.h
 *		Keeping a batch's jobs reserved while its handlers run: a timer
 *		sends "touch <id>" for each of them, from a signal handler.
 */
#ifndef JOBQ_TOUCH_H
#define JOBQ_TOUCH_H

#include "datatype/timestamp.h"

#include "worker.h"

struct BsPool;

extern bool jobq_touch_jobs;

extern void touch_init_gucs(void);
extern void touch_init(struct BsPool *pool);
extern void touch_start(const BatchJob *jobs, int n);
extern void touch_drain(void);
extern void touch_stop(void);
extern void touch_limit(TimestampTz until);
extern void touch_no_limit(void);
extern bool touch_owed(int server);
extern pg_nodiscard BsStatus touch_settle(int server);

#endif							/* JOBQ_TOUCH_H */
