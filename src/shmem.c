/*
 * shmem.c
 *		Shared memory for jobq: requested at preload, initialised by the
 *		first process that attaches, used by the workers to publish their
 *		state and by committing backends to wake the relay.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "jobq.h"
#include "shmem.h"

JobqShared *jobq_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
shmem_size(void)
{
	return add_size(offsetof(JobqShared, slots),
					mul_size(JOBQ_MAX_WORKERS + 1, sizeof(JobqWorkerSlot)));
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shmem_size());
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	shmem_attach();
}

void
shmem_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

void
shmem_attach(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	jobq_shared = ShmemInitStruct("jobq", shmem_size(), &found);
	if (!found)
	{
		memset(jobq_shared, 0, shmem_size());
		SpinLockInit(&jobq_shared->mutex);
		pg_atomic_init_u64(&jobq_shared->max_job_size, 0);
		jobq_shared->nslots = JOBQ_MAX_WORKERS + 1;
		for (int i = 0; i < jobq_shared->nslots; i++)
			SpinLockInit(&jobq_shared->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* true when jobq was preloaded, so that its workers can exist */
bool
shmem_available(void)
{
	return jobq_shared != NULL;
}

void
slot_set_state(int slot, const char *state, const char *tube,
			   const char *func_name, uint64 job_id)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	SpinLockAcquire(&s->mutex);
	strlcpy(s->state, state, sizeof(s->state));
	strlcpy(s->tube, tube ? tube : "", sizeof(s->tube));
	strlcpy(s->func_name, func_name ? func_name : "", sizeof(s->func_name));
	s->job_id = job_id;
	s->since = GetCurrentTimestamp();
	SpinLockRelease(&s->mutex);
}

void
slot_count(int slot, bool ok, const char *error)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	SpinLockAcquire(&s->mutex);
	if (ok)
		s->succeeded++;
	else
		s->failed++;
	SpinLockRelease(&s->mutex);
	if (error != NULL)
		slot_note_error(slot, error);
}

void
slot_note_error(int slot, const char *error)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&s->mutex);
	strlcpy(s->last_error, error, sizeof(s->last_error));
	s->last_error_at = now;
	SpinLockRelease(&s->mutex);
}

/* Called after commit by a backend that wrote outbox rows. */
void
relay_wakeup(void)
{
	Latch	   *latch;

	if (jobq_shared == NULL)
		return;
	SpinLockAcquire(&jobq_shared->mutex);
	latch = jobq_shared->relay_latch;
	SpinLockRelease(&jobq_shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
}
