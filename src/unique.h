/*
 * unique.h
 *		Unique jobs: a key per tube that one job holds until it finishes
 *		(see unique.c).
 */
#ifndef JOBQ_UNIQUE_H
#define JOBQ_UNIQUE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/uuid.h"

#include "job.h"

extern void unique_check_key(const char *key);
extern bool unique_claim(const char *tube, const char *key, const Interval *period,
						 pg_uuid_t *id);
extern void unique_release(const char *tube, const char *key, const pg_uuid_t *id);
extern void unique_release_job(const pg_uuid_t *id);

#endif							/* JOBQ_UNIQUE_H */
