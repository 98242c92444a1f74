/*
 * databases.h
 *		jobq.database, the databases jobq serves (see databases.c).
 */
#ifndef JOBQ_DATABASES_H
#define JOBQ_DATABASES_H

#include "postgres.h"

#include "nodes/pg_list.h"

extern char *jobq_database;		/* NULL unless jobq is preloaded */

extern void databases_init_gucs(void);
extern List *databases_list(const char *value);
extern bool databases_serve(const char *database);

#endif							/* JOBQ_DATABASES_H */
