/*
 * registry.h
 *		The rule a registration of jobq.handlers must follow, which
 *		jobq_register checks as the caller and the worker again before every
 *		job (see registry.c).
 */
#ifndef JOBQ_REGISTRY_H
#define JOBQ_REGISTRY_H

#include "postgres.h"

/* what breaks the rule, if anything */
typedef enum RegistryBreach
{
	REGISTRY_RULE_HOLDS,
	REGISTRY_REGISTRANT_NOT_SUPERUSER,	/* a library/symbol handler */
	REGISTRY_REGISTRANT_NOT_MEMBER,		/* of run_as */
	REGISTRY_OWNER_NOT_MEMBER,	/* the function's owner, of run_as */
	REGISTRY_NO_EXECUTE			/* run_as may not execute the function */
} RegistryBreach;

extern RegistryBreach registry_rule_breach(Oid fn, Oid run_as, Oid registrant);

#endif							/* JOBQ_REGISTRY_H */
