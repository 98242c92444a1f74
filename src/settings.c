/*
 * settings.c
 *		Where jobq's settings may come from, in the relay and the workers.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "settings.h"

/* set by the relay and the job workers before they connect to their database */
bool		jobq_background_process = false;

/*
 * Whether a jobq.* setting may come from this source.  The relay and the
 * workers of every database share the beanstalkd servers (and the marks of
 * servers found down, pool.c), so what they do must not depend on what a
 * database's owner attached to the database or a role (ALTER DATABASE ...
 * SET jobq.io_timeout = 1 would make them time out, and every database's
 * workers would then skip the server): in those processes, jobq.* settings
 * from pg_db_role_setting are refused, with a WARNING in the server log,
 * and the server's configuration stays in force.  A handler's own SET is
 * undone after its job (job_run.c) and stays allowed.
 */
bool
jobq_setting_source_ok(GucSource source)
{
	if (!jobq_background_process)
		return true;
	switch (source)
	{
		case PGC_S_GLOBAL:
		case PGC_S_DATABASE:
		case PGC_S_USER:
		case PGC_S_DATABASE_USER:
			GUC_check_errcode(ERRCODE_CANT_CHANGE_RUNTIME_PARAM);
			GUC_check_errdetail("jobq's relay and workers take jobq.* settings from the server's configuration only.");
			GUC_check_errhint("Set it in postgresql.conf or with ALTER SYSTEM, as a superuser.");
			return false;
		default:
			return true;
	}
}

/* the check hook of jobq's integer settings */
bool
jobq_check_int_setting(int *newval, void **extra, GucSource source)
{
	return jobq_setting_source_ok(source);
}
