/*
 * outbox.h
 *		Transactional enqueue: jobs written to jobq.outbox and sent by the
 *		relay after commit.
 */
#ifndef JOBQ_OUTBOX_H
#define JOBQ_OUTBOX_H

#include "job.h"

extern void outbox_init(void);
extern void outbox_insert(const JobSpec *spec, pg_uuid_t *id, bool keep_id);

#endif							/* JOBQ_OUTBOX_H */
