/*
 * rendezvous.h
 *		Rendezvous (highest random weight) hashing: which server of a pool a
 *		job goes to, and where it goes when that one is down.
 *
 * Pure code (make unit tests it): no server, no state.
 */
#ifndef JOBQ_RENDEZVOUS_H
#define JOBQ_RENDEZVOUS_H

extern uint64 rendezvous_seed(const char *server);
extern void rendezvous_order(const uint64 *seeds, int n, const unsigned char *key16, int *order);

#endif							/* JOBQ_RENDEZVOUS_H */
