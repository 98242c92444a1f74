/*
 * unit.c
 *		Runs every unit test of jobq's pure code; exit status 1 if one failed.
 */
#include "unit.h"

int			unit_checks = 0;
int			unit_failures = 0;

static const struct
{
	const char *name;
	void		(*fn) (void);
}			tests[] =
{
	{"bs_reply", test_bs_reply},
	{"pack", test_pack},
	{"rendezvous", test_rendezvous},
	{"json_numbers", test_json_numbers},
};

int
main(void)
{
	for (int i = 0; i < lengthof(tests); i++)
	{
		int			before = unit_failures;
		int			checks = unit_checks;

		tests[i].fn();
		printf("unit %-14s %5d checks, %s\n", tests[i].name, unit_checks - checks,
			   unit_failures == before ? "ok" : "FAILED");
	}
	printf("unit: %d checks, %d failed\n", unit_checks, unit_failures);
	return unit_failures == 0 ? 0 : 1;
}
