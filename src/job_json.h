/*
 * job_json.h
 *		The jansson side of decoding a job body, private to job.c.
 */
#ifndef JOBQ_JOB_JSON_H
#define JOBQ_JOB_JSON_H

#include "job.h"

extern bool job_json_check(const char *body, size_t len, JobBody *job, char **error);

#endif							/* JOBQ_JOB_JSON_H */
