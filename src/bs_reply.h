/*
 * bs_reply.h
 *		beanstalkd's replies, parsed into typed results: reply lines
 *		("RESERVED <id> <bytes>"), and the YAML documents of stats,
 *		stats-job, stats-tube and list-tubes.
 *
 * Pure code: no I/O, no server, no ereport.  It compiles in the backend and
 * as frontend code for the unit tests (make unit).  A document that is not
 * what beanstalkd sends is refused as a whole (false), never half read;
 * beanstalk.c turns that into a protocol violation.
 */
#ifndef JOBQ_BS_REPLY_H
#define JOBQ_BS_REPLY_H

/* limits of the protocol */
#define BS_MAX_NAME			200		/* tube name, bytes */
#define BS_MAX_SERVER		256		/* "host:port" as jobq.servers gives it */
#define BS_MAX_UINT32		UINT64CONST(4294967295)
#define BS_MAX_SERVERS		16		/* in jobq.servers */

/* a "key: value" line of a stats document; both point into the document */
typedef struct BsStatsPair
{
	const char *key;
	const char *value;
} BsStatsPair;

/* "stats": the server's counters and facts, in the server's order */
typedef struct BsStats
{
	int			n;
	BsStatsPair *pairs;			/* palloc'd */
} BsStats;

/* "stats-job <id>" */
typedef struct BsJobStats
{
	uint64		id;
	char		tube[BS_MAX_NAME + 1];
	char		state[16];		/* ready, delayed, reserved, buried */
	uint64		pri;
	uint64		age;			/* seconds since the put */
	uint64		delay;
	uint64		ttr;
	int64		time_left;		/* beanstalkd says -1 in the instant a ttr ends */
	uint64		reserves;
	uint64		timeouts;
	uint64		releases;
	uint64		buries;
	uint64		kicks;
} BsJobStats;

/* "stats-tube <name>" */
typedef struct BsTubeStats
{
	char		name[BS_MAX_NAME + 1];
	uint64		urgent;
	uint64		ready;
	uint64		reserved;
	uint64		delayed;
	uint64		buried;
	uint64		total;
	uint64		using;
	uint64		watching;
	uint64		waiting;
	uint64		pause;			/* seconds */
	int64		pause_time_left;	/* -1 is possible, as for time-left */
} BsTubeStats;

/* "list-tubes": the names that are valid tube names */
typedef struct BsTubeList
{
	int			n;
	char	  **names;			/* point into the document */
} BsTubeList;

extern bool bs_parse_u64(const char *s, const char **endp, uint64 *out);
extern bool bs_reply_u64(const char *line, const char *word, uint64 *out);
extern bool bs_reply_u64_u64(const char *line, const char *word, uint64 *a, uint64 *b);
extern bool bs_tube_name_ok(const char *tube);

/* each parses doc (len bytes, NUL-terminated) in place */
extern bool bs_parse_stats(char *doc, size_t len, BsStats *out);
extern const char *bs_stats_get(const BsStats *stats, const char *key);
extern bool bs_parse_job_stats(char *doc, size_t len, BsJobStats *out);
extern bool bs_parse_tube_stats(char *doc, size_t len, BsTubeStats *out);
extern bool bs_parse_tube_list(char *doc, size_t len, BsTubeList *out);

#endif							/* JOBQ_BS_REPLY_H */
