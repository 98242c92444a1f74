/*
 * shmem.c
 *		Shared memory for jobq: requested at preload, initialised by the
 *		first process that attaches, used by the workers to publish their
 *		state and by committing backends to wake the relay.
 *
 * Note about locking: every write to shared memory goes through this file.
 * A slot belongs to one process at a time (the launcher starts at most one
 * process per slot); that process writes it, under the slot's spinlock,
 * and anybody may read a consistent copy under the same spinlock
 * (slot_read).  relay_latch is set by the relay at start and cleared at its
 * exit, under jobq_shared->mutex; committing backends read it under the
 * same mutex and set the latch outside it.  max_job_size is an atomic
 * written by the relay and read without a lock: a stale value only delays
 * an early size check to the relay.  No code holds two of these locks at
 * once, and none runs anything but plain assignments while holding one.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "jobq.h"
#include "shmem.h"

JobqShared *jobq_shared = NULL;

const char *const jobq_state_names[] = {
	[JOBQ_STATE_STOPPED] = "stopped",
	[JOBQ_STATE_STARTING] = "starting",
	[JOBQ_STATE_WAITING_EXTENSION] = "waiting for extension",
	[JOBQ_STATE_IDLE] = "idle",
	[JOBQ_STATE_IDLE_NO_HANDLERS] = "idle (no handlers)",
	[JOBQ_STATE_RUNNING] = "running",
	[JOBQ_STATE_REJECTING] = "rejecting",
	[JOBQ_STATE_SENDING] = "sending",
	[JOBQ_STATE_WAITING_BEANSTALKD] = "waiting for beanstalkd",
	[JOBQ_STATE_RECOVERING] = "recovering",
};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
shmem_size(void)
{
	return add_size(offsetof(JobqShared, slots),
					mul_size(JOBQ_MAX_DATABASES * JOBQ_SLOTS_PER_DB, sizeof(JobqWorkerSlot)));
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
		for (int i = 0; i < JOBQ_MAX_SERVER_MARKS; i++)
		{
			pg_atomic_init_u64(&jobq_shared->server_marks[i].key, 0);
			pg_atomic_init_u64(&jobq_shared->server_marks[i].retry_at, 0);
		}
		ConditionVariableInit(&jobq_shared->job_finished);
		pg_atomic_init_u32(&jobq_shared->waiters, 0);
		jobq_shared->nslots = JOBQ_MAX_DATABASES * JOBQ_SLOTS_PER_DB;
		for (int i = 0; i < jobq_shared->nslots; i++)
			SpinLockInit(&jobq_shared->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The mark of the server whose name hashes to key; with create, a free
 * entry is claimed for it (compare-and-swap: no lock).  NULL when there is
 * none, or no room (the processes then keep their own marks only).
 */
static JobqServerMark *
server_mark(uint64 key, bool create)
{
	key = key == 0 ? 1 : key;
	for (int i = 0; i < JOBQ_MAX_SERVER_MARKS; i++)
	{
		JobqServerMark *m = &jobq_shared->server_marks[i];
		uint64		k = pg_atomic_read_u64(&m->key);

		if (k == key)
			return m;
		if (k == 0 && create)
		{
			uint64		expected = 0;

			if (pg_atomic_compare_exchange_u64(&m->key, &expected, key) || expected == key)
				return m;
		}
	}
	return NULL;
}

/* until when some process marked the server down (0: not marked) */
TimestampTz
shmem_server_retry_at(uint64 key)
{
	JobqServerMark *m;

	if (!shmem_available() || (m = server_mark(key, false)) == NULL)
		return 0;
	return (TimestampTz) pg_atomic_read_u64(&m->retry_at);
}

/* mark the server down until retry_at, or up (0), for every process */
void
shmem_set_server_retry_at(uint64 key, TimestampTz retry_at)
{
	JobqServerMark *m;

	if (!shmem_available() || (m = server_mark(key, retry_at != 0)) == NULL)
		return;
	pg_atomic_write_u64(&m->retry_at, (uint64) retry_at);
}

/* true when jobq was preloaded, so that its workers can exist */
bool
shmem_available(void)
{
	return jobq_shared != NULL;
}

/* The relay of database block db announces its latch (NULL at exit). */
void
shmem_set_relay_latch(int db, Latch *latch)
{
	SpinLockAcquire(&jobq_shared->mutex);
	jobq_shared->relays[db].dboid = MyDatabaseId;
	jobq_shared->relays[db].latch = latch;
	SpinLockRelease(&jobq_shared->mutex);
}

/* The launcher assigns database block db to a database ("": frees it). */
void
shmem_set_block_database(int db, const char *database)
{
	SpinLockAcquire(&jobq_shared->mutex);
	strlcpy(jobq_shared->relays[db].database, database, NAMEDATALEN);
	SpinLockRelease(&jobq_shared->mutex);
}

/* The database block db was assigned to, into database[NAMEDATALEN]. */
void
shmem_block_database(int db, char *database)
{
	SpinLockAcquire(&jobq_shared->mutex);
	strlcpy(database, jobq_shared->relays[db].database, NAMEDATALEN);
	SpinLockRelease(&jobq_shared->mutex);
}

/*
 * The latch of the relay serving this backend's database, or NULL when none
 * runs (or jobq is not preloaded).
 */
Latch *
shmem_relay_latch(void)
{
	Latch	   *latch = NULL;

	if (jobq_shared == NULL)
		return NULL;
	SpinLockAcquire(&jobq_shared->mutex);
	for (int db = 0; db < JOBQ_MAX_DATABASES; db++)
	{
		if (jobq_shared->relays[db].dboid == MyDatabaseId &&
			jobq_shared->relays[db].latch != NULL)
		{
			latch = jobq_shared->relays[db].latch;
			break;
		}
	}
	SpinLockRelease(&jobq_shared->mutex);
	return latch;
}

/* A process takes its slot at start. */
void
slot_attach(int slot, JobqWorkerKind kind)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	SpinLockAcquire(&s->mutex);
	s->pid = MyProcPid;
	if (s->dboid != MyDatabaseId)
	{
		/* a block used by another database before: show nothing of it */
		s->succeeded = s->failed = 0;
		s->last_error[0] = '\0';
		s->last_error_at = 0;
		s->last_error_of_job = false;
	}
	s->dboid = MyDatabaseId;
	s->kind = kind;
	s->has_job_uuid = false;
	s->cancel_requested = false;
	SpinLockRelease(&s->mutex);
	slot_set_state(slot, JOBQ_STATE_STARTING, NULL, NULL, 0);
}

/* ... and gives it back at exit (its counters stay). */
void
slot_detach(int slot)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	if (s->kind == JOBQ_KIND_RELAY)
		shmem_set_relay_latch(slot_db(slot), NULL);
	slot_set_state(slot, JOBQ_STATE_STOPPED, NULL, NULL, 0);
	SpinLockAcquire(&s->mutex);
	s->pid = 0;
	SpinLockRelease(&s->mutex);
}

int
slot_pid(int slot)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];
	int			pid;

	SpinLockAcquire(&s->mutex);
	pid = s->pid;
	SpinLockRelease(&s->mutex);
	return pid;
}

void
slot_read(int slot, JobqWorkerSlot *copy)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	SpinLockAcquire(&s->mutex);
	memcpy(copy, s, sizeof(*copy));
	SpinLockRelease(&s->mutex);
}

void
slot_set_state(int slot, JobqWorkerState state, const char *tube,
			   const char *func_name, uint64 job_id)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&s->mutex);
	s->state = state;
	strlcpy(s->tube, tube ? tube : "", sizeof(s->tube));
	strlcpy(s->func_name, func_name ? func_name : "", sizeof(s->func_name));
	s->job_id = job_id;
	s->since = now;
	SpinLockRelease(&s->mutex);
}

/*
 * The job whose handler the process runs now (id NULL: none).  A cancel
 * request for another job is dropped: it came too late.
 */
void
slot_set_job(int slot, const pg_uuid_t *id, uint64 attempt)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	SpinLockAcquire(&s->mutex);
	s->has_job_uuid = (id != NULL);
	if (id != NULL)
		s->job_uuid = *id;
	s->job_attempt = attempt;
	if (s->cancel_requested &&
		(id == NULL || memcmp(&s->cancel_uuid, id, sizeof(pg_uuid_t)) != 0))
		s->cancel_requested = false;
	SpinLockRelease(&s->mutex);
}

/*
 * Whether a jobq_cancel asked for job *id while the process ran it; if so
 * the request is taken, and by (NAMEDATALEN) says whose it was.
 */
bool
slot_take_cancel(int slot, const pg_uuid_t *id, char *by)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];
	bool		taken;

	SpinLockAcquire(&s->mutex);
	taken = s->cancel_requested && memcmp(&s->cancel_uuid, id, sizeof(pg_uuid_t)) == 0;
	if (taken)
	{
		strlcpy(by, s->cancelled_by, NAMEDATALEN);
		s->cancel_requested = false;
	}
	SpinLockRelease(&s->mutex);
	return taken;
}

/*
 * jobq_cancel of job *id, which a worker of this database runs: asked in its
 * slot, if the slot still names that job.  Returns the worker's pid, or 0 if
 * no worker runs the job (any more).  The caller then signals the pid.
 */
int
shmem_request_cancel(const pg_uuid_t *id, const char *by)
{
	for (int i = 0; i < jobq_shared->nslots; i++)
	{
		JobqWorkerSlot *s = &jobq_shared->slots[i];
		int			pid = 0;

		SpinLockAcquire(&s->mutex);
		if (s->pid != 0 && s->dboid == MyDatabaseId && s->has_job_uuid &&
			memcmp(&s->job_uuid, id, sizeof(pg_uuid_t)) == 0)
		{
			s->cancel_requested = true;
			s->cancel_uuid = *id;
			strlcpy(s->cancelled_by, by, NAMEDATALEN);
			pid = s->pid;
		}
		SpinLockRelease(&s->mutex);
		if (pid != 0)
			return pid;
	}
	return 0;
}

/* After a commit that finished jobs: wake jobq_wait, if anyone waits. */
void
shmem_jobs_finished(void)
{
	pg_memory_barrier();
	if (pg_atomic_read_u32(&jobq_shared->waiters) > 0)
		ConditionVariableBroadcast(&jobq_shared->job_finished);
}

void
slot_count(int slot, bool ok)
{
	slot_add_counts(slot, ok ? 1 : 0, ok ? 0 : 1);
}

void
slot_add_counts(int slot, uint64 succeeded, uint64 failed)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];

	SpinLockAcquire(&s->mutex);
	s->succeeded += succeeded;
	s->failed += failed;
	SpinLockRelease(&s->mutex);
}

/*
 * The last error of a process, for jobq.workers: a job's (tube not NULL;
 * func_name NULL when its body could not be read), whose text may carry
 * the job's kwargs and is shown only to whom may see the job (admin.c), or
 * the process's own.  Cut at a character's end, in the database's
 * encoding, which every reader of the slot shares.
 */
void
slot_note_error(int slot, const char *error, const char *tube, const char *func_name)
{
	JobqWorkerSlot *s = &jobq_shared->slots[slot];
	TimestampTz now = GetCurrentTimestamp();
	int			len = pg_mbcliplen(error, strlen(error), JOBQ_ERRLEN - 1);

	SpinLockAcquire(&s->mutex);
	memcpy(s->last_error, error, len);
	s->last_error[len] = '\0';
	s->last_error_at = now;
	s->last_error_of_job = tube != NULL;
	strlcpy(s->last_error_tube, tube ? tube : "", sizeof(s->last_error_tube));
	strlcpy(s->last_error_func, func_name ? func_name : "", sizeof(s->last_error_func));
	SpinLockRelease(&s->mutex);
}
