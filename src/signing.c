/*
 * signing.c
 *		Optional HMAC-SHA256 signatures on job bodies.
 *
 * beanstalkd has no authentication: anyone who reaches its port can put a
 * body that names a registered handler.  With jobq.signing_key set, every
 * body jobq sends carries a signature, and with jobq.require_signature on,
 * workers run only bodies whose signature checks out.
 *
 * The signed form, for producers in any language: take the body B, compact
 * JSON text ending with '}', compute H = lowercase hex of HMAC-SHA256(key,
 * B), with the key's bytes as given in the setting; send B with its final
 * '}' replaced by ',"sig":"H"}'.  A verifier takes the body, requires that
 * it ends with ',"sig":"' + 64 hex digits + '"}', and checks the HMAC of the
 * text before that suffix followed by '}'.
 *
 * What it protects: a body cannot be forged or altered (func_name, tube,
 * kwargs, id) without the key.  What it does not: confidentiality (bodies
 * are plain text), replay of a signed body (the job id makes a replay a
 * duplicate for as long as jobq.done keeps it), or a compromised producer.
 *
 * The HMAC code is PostgreSQL's own (common/hmac.h); it needs a resource
 * owner, so callers are inside a transaction.
 */
#include "postgres.h"

#include "common/hmac.h"
#include "common/sha2.h"
#include "utils/guc.h"

#include "signing.h"

#define SIG_PREFIX		",\"sig\":\""
#define SIG_PREFIX_LEN	(sizeof(SIG_PREFIX) - 1)
#define SIG_HEX_LEN		(PG_SHA256_DIGEST_LENGTH * 2)
#define SIG_SUFFIX_LEN	(SIG_PREFIX_LEN + SIG_HEX_LEN + 2)	/* + "} */

static char *signing_key = NULL;
bool		jobq_require_signature = false;

static const char *
show_signing_key(void)
{
	return (signing_key != NULL && signing_key[0] != '\0') ? "********" : "";
}

void
signing_init_gucs(void)
{
	DefineCustomStringVariable("jobq.signing_key",
							   "Key of the HMAC-SHA256 signature added to every job body jobq sends.",
							   "Empty: bodies are not signed.  Never shown, not even to superusers.",
							   &signing_key,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, show_signing_key);
	DefineCustomBoolVariable("jobq.require_signature",
							 "Workers run only job bodies signed with jobq.signing_key.",
							 NULL,
							 &jobq_require_signature,
							 false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
}

bool
signing_enabled(void)
{
	return signing_key != NULL && signing_key[0] != '\0';
}

/* lowercase hex of HMAC-SHA256(key, a || b) */
static void
signature_hex(const char *a, size_t alen, const char *b, size_t blen, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

	if (ctx == NULL ||
		pg_hmac_init(ctx, (const uint8 *) signing_key, strlen(signing_key)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) a, alen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) b, blen) < 0 ||
		pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
	{
		const char *why = ctx ? pg_hmac_error(ctx) : "out of memory";

		pg_hmac_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a job signature: %s", why)));
	}
	pg_hmac_free(ctx);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
	{
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 0x0f];
	}
}

/*
 * The signed form of body (which ends with '}'), palloc'd; *len is its
 * length on input and output.
 */
char *
signing_sign(const char *body, size_t *len)
{
	size_t		n = *len;
	char	   *out;

	Assert(n > 0 && body[n - 1] == '}');
	out = palloc(n - 1 + SIG_SUFFIX_LEN + 1);
	memcpy(out, body, n - 1);
	memcpy(out + n - 1, SIG_PREFIX, SIG_PREFIX_LEN);
	signature_hex(body, n, "", 0, out + n - 1 + SIG_PREFIX_LEN);
	memcpy(out + n - 1 + SIG_PREFIX_LEN + SIG_HEX_LEN, "\"}", 3);
	*len = n - 1 + SIG_SUFFIX_LEN;
	return out;
}

/* Whether body carries a signature, and if so whether it checks out. */
SigStatus
signing_verify(const char *body, size_t len)
{
	const char *suffix;
	char		expected[SIG_HEX_LEN];
	int			diff = 0;

	if (len < SIG_SUFFIX_LEN + 1)
		return SIG_NONE;
	suffix = body + len - SIG_SUFFIX_LEN;
	if (memcmp(suffix, SIG_PREFIX, SIG_PREFIX_LEN) != 0 ||
		memcmp(body + len - 2, "\"}", 2) != 0)
		return SIG_NONE;
	for (int i = 0; i < SIG_HEX_LEN; i++)
	{
		char		c = suffix[SIG_PREFIX_LEN + i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return SIG_BAD;
	}
	if (!signing_enabled())
		return SIG_BAD;			/* signed, but we hold no key to check it */
	signature_hex(body, suffix - body, "}", 1, expected);
	/* constant time: the comparison says nothing about where it differs */
	for (int i = 0; i < SIG_HEX_LEN; i++)
		diff |= expected[i] ^ suffix[SIG_PREFIX_LEN + i];
	return diff == 0 ? SIG_VALID : SIG_BAD;
}
