/*
 * test_rendezvous.c
 *		Rendezvous hashing (src/rendezvous.c): deterministic, even, and
 *		removing a server moves only its own jobs.
 */
#include "unit.h"

#include "rendezvous.h"

#define NJOBS 10000

/* a pseudo-random uuid per n (xorshift), the same in every run */
static void
key_of(int n, unsigned char *key)
{
	uint64		x = (uint64) n * UINT64CONST(0x9E3779B97F4A7C15) + 1;

	for (int i = 0; i < 16; i += 8)
	{
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(key + i, &x, 8);
	}
}

void
test_rendezvous(void)
{
	const char *names[] = {"127.0.0.1:11300", "127.0.0.1:11301", "10.0.0.2:11300"};
	uint64		seeds[3];
	uint64		seeds2[2];
	int			count[3] = {0};
	int			moved_wrongly = 0;
	int			not_permutation = 0;
	int			order[3];
	int			order2[2];
	int			again[3];

	for (int i = 0; i < 3; i++)
		seeds[i] = rendezvous_seed(names[i]);
	CHECK(seeds[0] != seeds[1] && seeds[0] == rendezvous_seed("127.0.0.1:11300"));
	/* the pool without server 1 */
	seeds2[0] = seeds[0];
	seeds2[1] = seeds[2];
	for (int n = 0; n < NJOBS; n++)
	{
		unsigned char key[16];
		int			seen = 0;

		key_of(n, key);
		rendezvous_order(seeds, 3, key, order);
		rendezvous_order(seeds, 3, key, again);
		CHECK(memcmp(order, again, sizeof(order)) == 0);
		for (int i = 0; i < 3; i++)
			seen |= 1 << order[i];
		not_permutation += seen != 7;
		count[order[0]]++;
		rendezvous_order(seeds2, 2, key, order2);
		/* a job not on server 1 stays where it was; one on it goes to its second choice */
		if (order[0] != 1 && seeds2[order2[0]] != seeds[order[0]])
			moved_wrongly++;
		if (order[0] == 1 && seeds2[order2[0]] != seeds[order[1]])
			moved_wrongly++;
	}
	CHECK(not_permutation == 0);
	CHECK(moved_wrongly == 0);
	for (int i = 0; i < 3; i++)
		CHECK(count[i] > NJOBS * 25 / 100 && count[i] < NJOBS * 42 / 100);
	/* one server: always it */
	{
		unsigned char key[16];

		key_of(1, key);
		rendezvous_order(seeds, 1, key, order);
		CHECK(order[0] == 0);
	}
}
