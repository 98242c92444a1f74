/*
 * job_cancel.c
 *		A worker's side of jobq_cancel for the job in its handler: the
 *		signal that interrupts the handler, and whether it struck.
 *
 * jobq_cancel (src/cancel.c) asks in the worker's shared-memory slot, under
 * its spinlock and only while the slot names the job as running, then sends
 * SIGUSR2.  The handler below turns the signal into a query cancel, as
 * pg_cancel_backend's SIGINT would, but only while a handler runs (armed)
 * and only if the request is still there: slot_set_job drops a request
 * for any job but the one it names, so a signal that comes late, when the
 * worker has gone on to another job, interrupts nothing.  A request made
 * before the worker armed is seen by job_cancel_arm itself.  The handler's
 * subtransaction rolls back with the cancel's error; job_run.c then finds
 * the request with slot_take_cancel and records the job as cancelled
 * instead of failed.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/latch.h"

#include "shmem.h"
#include "worker.h"

static volatile sig_atomic_t armed = false;
static volatile sig_atomic_t struck = false;
static volatile JobqWorkerSlot *armed_slot = NULL;

/* read without the spinlock: a bool, and a signal handler may not wait */
static void
strike_if_requested(void)
{
	if (armed && armed_slot != NULL && armed_slot->cancel_requested)
	{
		struck = true;
		QueryCancelPending = true;
		InterruptPending = true;
	}
}

static void
job_cancel_signal(SIGNAL_ARGS)
{
	int			save_errno = errno;

	strike_if_requested();
	SetLatch(MyLatch);
	errno = save_errno;
}

void
job_cancel_init(int slot)
{
	armed_slot = &jobq_shared->slots[slot];
	pqsignal(SIGUSR2, job_cancel_signal);
}

/* The job's handler starts: a cancel request for it interrupts it from now. */
void
job_cancel_arm(void)
{
	struck = false;
	armed = true;
	pg_memory_barrier();
	strike_if_requested();
}

/* The handler has returned: a request from now on interrupts nothing. */
void
job_cancel_disarm(void)
{
	armed = false;
	pg_memory_barrier();
}

/* whether a cancel request interrupted the last armed handler */
bool
job_cancel_struck(void)
{
	return struck;
}
