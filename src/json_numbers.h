/*
 * json_numbers.h
 *		Numbers of JSON text too big for a double (see json_numbers.c).
 */
#ifndef JOBQ_JSON_NUMBERS_H
#define JOBQ_JSON_NUMBERS_H

extern char *json_without_huge_numbers(const char *text, size_t len, size_t *outlen);

#endif							/* JOBQ_JSON_NUMBERS_H */
