/*
 * failed.h
 *		jobq.failed: every write to it (see failed.c).
 */
#ifndef JOBQ_FAILED_H
#define JOBQ_FAILED_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/uuid.h"

/* one row of jobq.failed; NULL pointers and negative numbers are unknown */
typedef struct FailedJob
{
	const pg_uuid_t *job_id;
	uint64		bs_id;			/* 0: never in beanstalkd */
	const char *server;			/* the server bs_id is on (ids are per server) */
	const char *tube;
	const char *func_name;
	Jsonb	   *kwargs;
	const char *raw_body;		/* an unreadable body: a printable prefix is kept */
	size_t		raw_len;
	const char *sqlstate;
	const char *message;
	int			attempts;
	int64		priority;
	int64		ttr;			/* s */
	const char *source;			/* "worker" or "relay" */
} FailedJob;

extern void failed_record(const FailedJob *f);
extern Jsonb *failed_kwargs_of_body(const char *body, size_t len);

#endif							/* JOBQ_FAILED_H */
