/*
 * rendezvous.c
 *		Rendezvous hashing of job ids over a pool's servers (see pool.c).
 *
 * Each server scores a job: a hash of the first 8 bytes of its uuid (random
 * already) mixed with a hash of the server's name, as jobq.servers spells
 * it; the highest score wins.  Jobs spread evenly, and adding or removing a
 * server moves only the jobs that it wins or won.
 */
#ifndef FRONTEND
#include "postgres.h"
#else
#include "postgres_fe.h"
#endif

#include "common/hashfn.h"

#include "rendezvous.h"

/* a 64-bit finalizer (MurmurHash3's fmix64): every input bit moves every output bit */
static uint64
mix64(uint64 h)
{
	h ^= h >> 33;
	h *= UINT64CONST(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64CONST(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}

/* a server's part of every score */
uint64
rendezvous_seed(const char *server)
{
	return hash_bytes_extended((const unsigned char *) server, strlen(server), 0);
}

/* the servers 0..n-1 in the order a job of key16 (its uuid) tries them: highest score first */
void
rendezvous_order(const uint64 *seeds, int n, const unsigned char *key16, int *order)
{
	uint64		key;
	uint64		score[64];

	Assert(n <= lengthof(score));
	memcpy(&key, key16, sizeof(key));
	for (int i = 0; i < n; i++)
	{
		int			j = i;

		score[i] = mix64(key ^ seeds[i]);
		while (j > 0 && score[order[j - 1]] < score[i])
		{
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
}
