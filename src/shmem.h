/*
 * shmem.h
 *		jobq's shared memory: each served database's relay latch, the
 *		server's max-job-size, and one status slot per background process,
 *		read by the jobq.workers view.  See shmem.c for the locking rules.
 *
 * The slots come in blocks of JOBQ_SLOTS_PER_DB, one block per database the
 * launcher serves (at most JOBQ_MAX_DATABASES): in a block, slot 0 is the
 * relay's and slots 1..jobq.workers the workers'.
 */
#ifndef JOBQ_SHMEM_H
#define JOBQ_SHMEM_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "job.h"

#define JOBQ_MAX_WORKERS	64
#define JOBQ_MAX_DATABASES	16
#define JOBQ_SLOTS_PER_DB	(JOBQ_MAX_WORKERS + 1)

/* a slot's database block, and its number in the block (0: the relay) */
#define slot_db(slot)		((slot) / JOBQ_SLOTS_PER_DB)
#define slot_number(slot)	((slot) % JOBQ_SLOTS_PER_DB)
#define slot_of(db, number)	((db) * JOBQ_SLOTS_PER_DB + (number))
#define JOBQ_ERRLEN			256

typedef enum JobqWorkerKind
{
	JOBQ_KIND_RELAY,
	JOBQ_KIND_WORKER
} JobqWorkerKind;

/* what a process is doing; jobq_state_names has the text jobq.workers shows */
typedef enum JobqWorkerState
{
	JOBQ_STATE_STOPPED,
	JOBQ_STATE_STARTING,
	JOBQ_STATE_WAITING_EXTENSION,
	JOBQ_STATE_IDLE,
	JOBQ_STATE_IDLE_NO_HANDLERS,
	JOBQ_STATE_RUNNING,
	JOBQ_STATE_REJECTING,
	JOBQ_STATE_SENDING,
	JOBQ_STATE_WAITING_BEANSTALKD,
	JOBQ_STATE_RECOVERING
} JobqWorkerState;

extern const char *const jobq_state_names[];

typedef struct JobqWorkerSlot
{
	slock_t		mutex;			/* protects everything below */
	int			pid;			/* 0 when not running */
	Oid			dboid;			/* the database it is connected to */
	JobqWorkerKind kind;
	JobqWorkerState state;
	char		tube[BS_MAX_NAME + 1];
	char		func_name[JOB_MAX_FUNC_NAME + 1];
	uint64		job_id;			/* beanstalkd id of the current job */
	TimestampTz since;			/* when state last changed */
	uint64		succeeded;
	uint64		failed;
	char		last_error[JOBQ_ERRLEN];	/* cut at a character's end */
	TimestampTz last_error_at;
	/* whose error: a job's (its tube, and func_name if its body was read) or the process's own */
	bool		last_error_of_job;
	char		last_error_tube[BS_MAX_NAME + 1];
	char		last_error_func[JOB_MAX_FUNC_NAME + 1];
	/* the job in its handler (jobq_status, jobq_cancel); valid if has_job_uuid */
	bool		has_job_uuid;
	pg_uuid_t	job_uuid;
	uint64		job_attempt;	/* its run, from 1 */
	/* a jobq_cancel of that job (cancel.c): by whom */
	bool		cancel_requested;
	pg_uuid_t	cancel_uuid;
	char		cancelled_by[NAMEDATALEN];
} JobqWorkerSlot;

/*
 * A database block: the database the launcher assigned it (so that a
 * restarted launcher finds its running processes again), and its relay,
 * which committing backends of dboid wake.
 */
typedef struct JobqRelay
{
	char		database[NAMEDATALEN];	/* "" when the block is free */
	Oid			dboid;
	Latch	   *latch;			/* NULL while no relay runs */
} JobqRelay;

/*
 * A beanstalkd server marked down by some process (pool.c), so that the
 * others skip it too: keyed by a hash of its name (0: a free entry), until
 * when (a TimestampTz; 0: up).
 */
#define JOBQ_MAX_SERVER_MARKS	32

typedef struct JobqServerMark
{
	pg_atomic_uint64 key;
	pg_atomic_uint64 retry_at;
} JobqServerMark;

typedef struct JobqShared
{
	slock_t		mutex;			/* protects relays */
	JobqRelay	relays[JOBQ_MAX_DATABASES];
	pg_atomic_uint64 max_job_size;	/* last seen from the server; 0 unknown */
	JobqServerMark server_marks[JOBQ_MAX_SERVER_MARKS];
	/* jobq_wait sleeps on it; workers broadcast after a commit if waiters > 0 */
	ConditionVariable job_finished;
	pg_atomic_uint32 waiters;
	int			nslots;
	JobqWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} JobqShared;

extern JobqShared *jobq_shared;

extern void shmem_install_hooks(void);
extern void shmem_attach(void);
extern bool shmem_available(void);
extern void shmem_set_relay_latch(int db, Latch *latch);
extern void shmem_set_block_database(int db, const char *database);
extern void shmem_block_database(int db, char *database);
extern Latch *shmem_relay_latch(void);
extern TimestampTz shmem_server_retry_at(uint64 key);
extern void shmem_set_server_retry_at(uint64 key, TimestampTz retry_at);
extern void shmem_jobs_finished(void);
extern int	shmem_request_cancel(const pg_uuid_t *id, const char *by);

extern void slot_attach(int slot, JobqWorkerKind kind);
extern void slot_detach(int slot);
extern int	slot_pid(int slot);
extern void slot_read(int slot, JobqWorkerSlot *copy);
extern void slot_set_state(int slot, JobqWorkerState state, const char *tube,
						   const char *func_name, uint64 job_id);
extern void slot_set_job(int slot, const pg_uuid_t *id, uint64 attempt);
extern bool slot_take_cancel(int slot, const pg_uuid_t *id, char *by);
extern void slot_count(int slot, bool ok);
extern void slot_add_counts(int slot, uint64 succeeded, uint64 failed);
extern void slot_note_error(int slot, const char *error, const char *tube,
							const char *func_name);

#endif							/* JOBQ_SHMEM_H */
