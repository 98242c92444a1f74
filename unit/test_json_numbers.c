/*
 * test_json_numbers.c
 *		Numbers too big for a double, read as 0 for jansson (src/json_numbers.c).
 */
#include "unit.h"

#include "json_numbers.h"

/* the copy json_without_huge_numbers makes of text, or NULL */
static char *
scan(const char *text)
{
	size_t		len = 0;
	char	   *out = json_without_huge_numbers(text, strlen(text), &len);

	if (out != NULL && strlen(out) != len)
		return pstrdup("<length mismatch>");
	return out;
}

static bool
scans_to(const char *text, const char *expected)
{
	char	   *out = scan(text);

	return out != NULL && strcmp(out, expected) == 0;
}

void
test_json_numbers(void)
{
	CHECK(scan("{\"n\": 1, \"m\": 2.5e10, \"s\": \"x\"}") == NULL);
	CHECK(scans_to("{\"n\": 1e400}", "{\"n\": 0}"));
	CHECK(scans_to("[-2.5e999, 1, 1E+400]", "[0, 1, 0]"));
	CHECK(scans_to("{\"a\": {\"b\": [1e400, {\"c\": -1e309}]}}", "{\"a\": {\"b\": [0, {\"c\": 0}]}}"));
	/* inside strings, escaped quotes included, nothing changes */
	CHECK(scan("{\"s\": \"1e400\"}") == NULL);
	CHECK(scan("{\"s\": \"a\\\"1e400\"}") == NULL);
	CHECK(scans_to("{\"s\": \"a\\\\\", \"n\": 1e400}", "{\"s\": \"a\\\\\", \"n\": 0}"));
	/* not a number: left for jansson to refuse (the x stays) */
	CHECK(scans_to("{\"n\": 1e400x}", "{\"n\": 0x}"));
	CHECK(scan("{\"n\": 1e4e00}") == NULL);
	/* the largest double is not too big */
	CHECK(scan("[1.7976931348623157e308]") == NULL);
	/* an unterminated string is copied to its end */
	CHECK(scan("[\"1e400") == NULL);
	CHECK(scan("") == NULL);
}
