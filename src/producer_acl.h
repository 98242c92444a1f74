/*
 * producer_acl.h
 *		Who may enqueue jobs for a registered handler (see producer_acl.c).
 */
#ifndef JOBQ_PRODUCER_ACL_H
#define JOBQ_PRODUCER_ACL_H

#include "postgres.h"

extern bool acl_may_produce(Oid role, const char *tube, const char *func_name);
extern void acl_check_producer(Oid role, const char *tube, const char *func_name);

#endif							/* JOBQ_PRODUCER_ACL_H */
