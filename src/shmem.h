/*
 * shmem.h
 *		jobq's shared memory: the relay's latch and one status slot per
 *		background worker, read by the jobq.workers view.
 */
#ifndef JOBQ_SHMEM_H
#define JOBQ_SHMEM_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#define JOBQ_MAX_WORKERS	64
#define JOBQ_ERRLEN			256

typedef enum JobqWorkerKind
{
	JOBQ_KIND_RELAY,
	JOBQ_KIND_WORKER
} JobqWorkerKind;

typedef struct JobqWorkerSlot
{
	slock_t		mutex;			/* protects everything below */
	int			pid;			/* 0 when not running */
	JobqWorkerKind kind;
	char		state[32];		/* "starting", "idle", "running", "waiting", ... */
	char		tube[201];
	char		func_name[201];
	uint64		job_id;			/* beanstalkd id of the current job */
	TimestampTz since;			/* when state last changed */
	uint64		succeeded;
	uint64		failed;
	char		last_error[JOBQ_ERRLEN];
	TimestampTz last_error_at;
} JobqWorkerSlot;

typedef struct JobqShared
{
	slock_t		mutex;
	Latch	   *relay_latch;	/* NULL while no relay runs */
	pg_atomic_uint64 max_job_size;	/* last seen from the server; 0 unknown */
	int			nslots;
	JobqWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} JobqShared;

extern JobqShared *jobq_shared;

extern void shmem_install_hooks(void);
extern void shmem_attach(void);
extern bool shmem_available(void);

extern void slot_set_state(int slot, const char *state, const char *tube,
						   const char *func_name, uint64 job_id);
extern void slot_count(int slot, bool ok, const char *error);
extern void slot_note_error(int slot, const char *error);
extern void relay_wakeup(void);

#endif							/* JOBQ_SHMEM_H */
