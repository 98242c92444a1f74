/*
 * settings.h
 *		Where jobq.* settings may come from (see settings.c): the check hook
 *		of every jobq.* setting that a database or role could set.
 */
#ifndef JOBQ_SETTINGS_H
#define JOBQ_SETTINGS_H

#include "postgres.h"

#include "utils/guc.h"

extern bool jobq_background_process;
extern bool jobq_setting_source_ok(GucSource source);
extern bool jobq_check_int_setting(int *newval, void **extra, GucSource source);

#endif							/* JOBQ_SETTINGS_H */
