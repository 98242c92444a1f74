/*
 * databases.c
 *		jobq.database: the databases whose relay and workers the launcher
 *		starts, which producers (outbox.c) and the processes themselves
 *		(process.c) also consult.  Defined only when jobq is preloaded.
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/varlena.h"

#include "databases.h"
#include "shmem.h"

char	   *jobq_database = NULL;

/* the databases of a jobq.database value, or NULL (with GUC_check_errdetail) */
List *
databases_list(const char *value)
{
	char	   *raw = pstrdup(value);
	List	   *names = NIL;
	ListCell   *lc;

	if (!SplitGUCList(raw, ',', &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return NULL;
	}
	if (list_length(names) > JOBQ_MAX_DATABASES)
	{
		GUC_check_errdetail("jobq serves at most %d databases.", JOBQ_MAX_DATABASES);
		return NULL;
	}
	foreach(lc, names)
	{
		const char *name = lfirst(lc);

		if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		{
			GUC_check_errdetail("\"%s\" is not a database name.", name);
			return NULL;
		}
		for (ListCell *other = list_head(names); other != lc; other = lnext(names, other))
			if (strcmp(lfirst(other), name) == 0)
			{
				GUC_check_errdetail("Database \"%s\" is listed twice.", name);
				return NULL;
			}
	}
	return names;
}

static bool
check_database(char **newval, void **extra, GucSource source)
{
	return databases_list(*newval) != NULL;
}

/* Whether jobq.database lists database (jobq_put warns when it does not). */
bool
databases_serve(const char *database)
{
	List	   *names = databases_list(jobq_database);
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp(lfirst(lc), database) == 0)
			return true;
	return false;
}

void
databases_init_gucs(void)
{
	DefineCustomStringVariable("jobq.database",
							   "Databases in which jobq's relay and workers run, a comma-separated list.",
							   "Each database listed gets a relay and jobq.workers workers.",
							   &jobq_database,
							   "postgres",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   check_database, NULL, NULL);
}
