/*
 * unit.h
 *		A tiny test harness for jobq's pure code (make unit), in the way of
 *		beanstalkd's testutil: each check that fails prints where and what.
 */
#ifndef JOBQ_UNIT_H
#define JOBQ_UNIT_H

#include "postgres_fe.h"

#include "lib/stringinfo.h"

extern int	unit_checks;
extern int	unit_failures;

#define CHECK(cond) \
	do { \
		unit_checks++; \
		if (!(cond)) \
		{ \
			unit_failures++; \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		} \
	} while (0)

extern void test_bs_reply(void);
extern void test_pack(void);
extern void test_rendezvous(void);
extern void test_json_numbers(void);

#endif							/* JOBQ_UNIT_H */
