/*
 * harness.c: drives mfad_client.c for the Go tests and fuzzers in pam/.
 * Built with AddressSanitizer and UndefinedBehaviorSanitizer, so a memory
 * error in the parsers aborts the process and fails the test.
 *
 * It reads requests from stdin, each a one-byte kind, a 4-byte big-endian
 * length and that many bytes, and answers each with one line of JSON in
 * which byte strings are hex-encoded:
 *
 *	h  raw HTTP response     {"rc":0|1|-1,"status":N,"reusable":0|1,"body":"hex"} (parsed as after EOF;
 *	                          also checks that parsing the bytes as they arrive agrees)
 *	l  login body            {"rc":0|-1,"decision":N,"methods":N,"default":N,"login_id":"hex",...}
 *	v  verify body           {"rc":..,"result":N,...}
 *	s  sms body              {"rc":..,"sent_to":"hex","expires_in_s":N}
 *	e  error body            {"rc":..,"code":"hex","message":"hex"}
 *	j  text to escape        {"rc":0|-1,"json":"hex"}
 *	t  text to check         {"valid":0|1}
 *	r  round trip: socket NUL timeout_ms NUL trusted_uid NUL path NUL body
 *	                         {"rc":mfad_err,"status":N,"body":"hex"}
 *	k  round trips over one kept connection: socket NUL timeout_ms NUL
 *	   trusted_uid NUL count NUL path NUL body
 *	                         {"rc":[status, or -mfad_err, per trip],"kept":0|1}
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfad_client.h"

static void put_hex(const char *key, const char *s, size_t n)
{
	printf(",\"%s\":\"", key);
	for (size_t i = 0; i < n; i++)
		printf("%02x", (unsigned char)s[i]);
	printf("\"");
}

static void put_str(const char *key, const char *s)
{
	put_hex(key, s, strlen(s));
}

static void put_messages(const struct mfad_messages *m)
{
	printf(",\"messages\":[");
	for (int i = 0; i < m->n; i++) {
		printf("%s\"", i ? "," : "");
		for (const char *p = m->line[i]; *p; p++)
			printf("%02x", (unsigned char)*p);
		printf("\"");
	}
	printf("]");
}

/* check_incremental parses every prefix of data as if more could follow and
 * aborts when an answer contradicts the one for the whole input. */
static void check_incremental(const char *data, size_t len, int full_rc, const struct mfad_http_response *full)
{
	if (len > 4096)
		return;
	for (size_t k = 0; k < len; k++) {
		struct mfad_http_response r;
		int rc = mfad_http_parse(data, k, 0, &r);
		if (rc == MFAD_PARSE_OK) {
			/* A complete response stays complete and the same. */
			if (full_rc != MFAD_PARSE_OK || r.status != full->status || r.body_len != full->body_len ||
			    memcmp(r.body, full->body, r.body_len) != 0) {
				fprintf(stderr, "prefix %zu parsed differently from the whole input\n", k);
				abort();
			}
			mfad_http_response_free(&r);
		}
	}
}

static void do_http(const char *data, size_t len)
{
	struct mfad_http_response r;
	int rc = mfad_http_parse(data, len, 1, &r);
	struct mfad_http_response more;
	int rc_more = mfad_http_parse(data, len, 0, &more);
	int reusable = 0;
	/* Without EOF the answer may only be "more" where EOF says error/ok. */
	if (rc_more == MFAD_PARSE_OK) {
		if (rc != MFAD_PARSE_OK || more.status != r.status || more.body_len != r.body_len) {
			fprintf(stderr, "eof changed a complete parse\n");
			abort();
		}
		reusable = more.reusable;
		mfad_http_response_free(&more);
	} else if (rc_more == MFAD_PARSE_ERR && rc != MFAD_PARSE_ERR) {
		fprintf(stderr, "eof turned an error into success\n");
		abort();
	}
	if (rc == MFAD_PARSE_OK && (r.body == NULL || r.body[r.body_len] != '\0' || r.body_len > len)) {
		fprintf(stderr, "body not terminated or too long\n");
		abort();
	}
	check_incremental(data, len, rc_more, rc_more == MFAD_PARSE_OK ? &r : NULL);
	printf("{\"rc\":%d,\"status\":%d,\"reusable\":%d", rc, rc == MFAD_PARSE_OK ? r.status : 0, reusable);
	if (rc == MFAD_PARSE_OK)
		put_hex("body", r.body, r.body_len);
	printf("}\n");
	if (rc == MFAD_PARSE_OK)
		mfad_http_response_free(&r);
}

static void do_login(const char *data, size_t len)
{
	struct mfad_login l;
	int rc = mfad_parse_login(data, len, &l);
	printf("{\"rc\":%d,\"decision\":%d,\"methods\":%u,\"default\":%u,\"expires_in_s\":%d,\"remember\":%d", rc,
	       l.decision, l.methods, l.default_method, l.expires_in_s, l.remember);
	put_str("login_id", l.login_id);
	put_str("prompt", l.prompt);
	put_str("reason", l.reason);
	put_messages(&l.messages);
	printf("}\n");
}

static void do_verify(const char *data, size_t len)
{
	struct mfad_verify v;
	int rc = mfad_parse_verify(data, len, &v);
	printf("{\"rc\":%d,\"result\":%d,\"method\":%u,\"attempts_left\":%d,\"retry_after_s\":%d,"
	       "\"recovery_codes_left\":%d,\"recovery_codes_low\":%d",
	       rc, v.result, v.method, v.attempts_left, v.retry_after_s, v.recovery_codes_left, v.recovery_codes_low);
	put_str("reason", v.reason);
	put_str("message", v.message);
	put_str("remember_token", v.remember_token);
	put_messages(&v.messages);
	printf("}\n");
}

static void do_sms(const char *data, size_t len)
{
	struct mfad_sms s;
	int rc = mfad_parse_sms(data, len, &s);
	printf("{\"rc\":%d,\"expires_in_s\":%d", rc, s.expires_in_s);
	put_str("sent_to", s.sent_to);
	printf("}\n");
}

static void do_error(const char *data, size_t len)
{
	struct mfad_api_error e;
	int rc = mfad_parse_error(data, len, &e);
	printf("{\"rc\":%d", rc);
	put_str("code", e.code);
	put_str("message", e.message);
	printf("}\n");
}

static void do_escape(const char *data, size_t len)
{
	struct mfad_buf b;
	mfad_buf_init(&b, 8 * len + 16);
	int rc = mfad_json_add_string(&b, data, len);
	printf("{\"rc\":%d", rc);
	if (rc == 0)
		put_hex("json", b.data, b.len);
	printf("}\n");
	mfad_buf_wipe(&b);
}

/* next_field returns the NUL-terminated field at *p and moves past it. */
static const char *next_field(const char **p, const char *end)
{
	const char *s = *p;
	const char *z = memchr(s, '\0', (size_t)(end - s));
	if (z == NULL)
		return NULL;
	*p = z + 1;
	return s;
}

static void do_roundtrip(const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	const char *sock = next_field(&p, end), *timeout = next_field(&p, end), *uid = next_field(&p, end),
		   *path = next_field(&p, end);
	if (sock == NULL || timeout == NULL || uid == NULL || path == NULL) {
		printf("{\"rc\":-1}\n");
		return;
	}
	struct mfad_conn c = {.socket_path = sock, .timeout_ms = atoi(timeout), .trusted_uid = (uid_t)atol(uid)};
	struct mfad_http_response r;
	int rc = mfad_roundtrip(&c, path, p, (size_t)(end - p), &r);
	printf("{\"rc\":%d,\"status\":%d", rc, rc == MFAD_OK ? r.status : 0);
	if (rc == MFAD_OK)
		put_hex("body", r.body, r.body_len);
	printf("}\n");
	mfad_http_response_free(&r);
}

/* do_keep runs count round trips of path and body over one kept
 * connection: socket NUL timeout_ms NUL trusted_uid NUL count NUL path NUL
 * body. */
static void do_keep(const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	const char *sock = next_field(&p, end), *timeout = next_field(&p, end), *uid = next_field(&p, end),
		   *count = next_field(&p, end), *path = next_field(&p, end);
	if (sock == NULL || timeout == NULL || uid == NULL || count == NULL || path == NULL) {
		printf("{\"rc\":[-1]}\n");
		return;
	}
	struct mfad_conn c = {.socket_path = sock, .timeout_ms = atoi(timeout), .trusted_uid = (uid_t)atol(uid)};
	struct mfad_keep k;
	mfad_keep_init(&k);
	int n = atoi(count);
	printf("{\"rc\":[");
	for (int i = 0; i < n; i++) {
		struct mfad_http_response r;
		int rc = mfad_roundtrip_keep(&c, &k, path, p, (size_t)(end - p), &r);
		printf("%s%d", i ? "," : "", rc == MFAD_OK ? r.status : -rc);
		mfad_http_response_free(&r);
	}
	printf("],\"kept\":%d}\n", k.fd >= 0);
	mfad_keep_close(&k);
}

int main(void)
{
	for (;;) {
		unsigned char hdr[5];
		if (fread(hdr, 1, sizeof hdr, stdin) != sizeof hdr)
			return 0;
		size_t len = (size_t)hdr[1] << 24 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 8 | hdr[4];
		if (len > 4 * MFAD_MAX_RESPONSE)
			return 2;
		/* An exact-size heap block, so reading past it is caught. */
		char *data = malloc(len ? len : 1);
		if (data == NULL || fread(data, 1, len, stdin) != len)
			return 2;
		switch (hdr[0]) {
		case 'h':
			do_http(data, len);
			break;
		case 'l':
			do_login(data, len);
			break;
		case 'v':
			do_verify(data, len);
			break;
		case 's':
			do_sms(data, len);
			break;
		case 'e':
			do_error(data, len);
			break;
		case 'j':
			do_escape(data, len);
			break;
		case 't':
			printf("{\"valid\":%d}\n", mfad_valid_text(data, len, 256));
			break;
		case 'r':
			do_roundtrip(data, len);
			break;
		case 'k':
			do_keep(data, len);
			break;
		default:
			return 2;
		}
		fflush(stdout);
		free(data);
	}
}
