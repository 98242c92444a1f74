/*
 * put.h
 *		Turning the arguments of jobq_put / jobq_put_now into a job.
 */
#ifndef JOBQ_PUT_H
#define JOBQ_PUT_H

#include "fmgr.h"

#include "job.h"

extern void put_spec_from_args(FunctionCallInfo fcinfo, JobSpec *spec);
extern void put_spec_from_options(JobSpec *spec, Jsonb *options, char **unique_column,
								  Interval **unique_for);
extern void put_enqueue(const JobSpec *spec, const Interval *unique_for, pg_uuid_t *id);

#endif							/* JOBQ_PUT_H */
