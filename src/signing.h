/*
 * signing.h
 *		Optional HMAC-SHA256 signatures on job bodies (see signing.c for the
 *		signed form).
 */
#ifndef JOBQ_SIGNING_H
#define JOBQ_SIGNING_H

#include "postgres.h"

typedef enum SigStatus
{
	SIG_NONE,					/* the body carries no signature */
	SIG_VALID,
	SIG_BAD						/* a signature that does not check out */
} SigStatus;

extern bool jobq_require_signature;

extern void signing_init_gucs(void);
extern bool signing_enabled(void);
extern char *signing_sign(const char *body, size_t *len);
extern SigStatus signing_verify(const char *body, size_t len);

#endif							/* JOBQ_SIGNING_H */
