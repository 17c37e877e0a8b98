/*
 * mfad_client.h: a minimal, bounded client for mfad's socket API.
 *
 * This half of pam_mfad knows nothing about PAM: it connects to the daemon's
 * Unix socket, sends one HTTP/1.1 request per connection with a deadline on
 * every step, reads a bounded response, and decodes the JSON bodies of the
 * login routes into fixed-size structs. It keeps no global state and starts
 * no threads, so it is safe inside processes that fork (sshd, login, su,
 * sudo, display managers).
 */
#ifndef MFAD_CLIENT_H
#define MFAD_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

/* Largest response accepted, headers included. The daemon's answers on the
 * login routes are a few hundred bytes. */
#define MFAD_MAX_RESPONSE (64 * 1024)
/* Largest request body built (a code is at most 128 bytes, names 256). */
#define MFAD_MAX_REQUEST (16 * 1024)
/* JSON nesting accepted in a response. */
#define MFAD_JSON_DEPTH 8

/* Outcomes of a round trip. */
enum mfad_err {
	MFAD_OK = 0,
	MFAD_E_CONNECT,	/* no daemon listening: socket missing or refused */
	MFAD_E_PERM,	/* the socket exists but this process may not use it */
	MFAD_E_UNTRUSTED,	/* the socket is served by a process of the wrong user */
	MFAD_E_TIMEOUT,	/* a deadline passed before the answer was complete */
	MFAD_E_IO,	/* reading or writing failed, or the peer hung up early */
	MFAD_E_PROTO,	/* the answer is not well-formed HTTP */
	MFAD_E_TOOBIG,	/* the answer exceeds MFAD_MAX_RESPONSE */
	MFAD_E_NOMEM,
	MFAD_E_INVAL,	/* the request cannot be built (bad socket path, ...) */
};

/* mfad_strerror describes e in a few words (never NULL). */
const char *mfad_strerror(int e);

/* mfad_unreachable reports whether e means the daemon could not be asked at
 * all (connection failure, timeout, hang-up), as opposed to a daemon that
 * answered something unusable. Only the former may fail open. */
int mfad_unreachable(int e);

/* A growable byte buffer with a hard cap. */
struct mfad_buf {
	char *data;
	size_t len, cap, max;
};

void mfad_buf_init(struct mfad_buf *b, size_t max);
/* mfad_buf_add appends n bytes; -1 when out of memory or over max. */
int mfad_buf_add(struct mfad_buf *b, const void *p, size_t n);
int mfad_buf_adds(struct mfad_buf *b, const char *s);
/* mfad_buf_wipe overwrites the contents with zeros and frees them. */
void mfad_buf_wipe(struct mfad_buf *b);

/* mfad_json_add_string appends s (n bytes) as a JSON string literal, quotes
 * included. It refuses (-1) text that is not valid UTF-8, so the daemon sees
 * exactly the bytes the login stack passed. */
int mfad_json_add_string(struct mfad_buf *b, const char *s, size_t n);

/* A parsed HTTP response. body is NUL-terminated and owned by the struct. */
struct mfad_http_response {
	int status;
	char *body;
	size_t body_len;
	/* reusable: the connection can carry another request (HTTP/1.1, no
	 * "Connection: close", a body framed by Content-Length or absent, and
	 * nothing after it). */
	int reusable;
};

void mfad_http_response_free(struct mfad_http_response *r);

/* Results of mfad_http_parse. */
enum {
	MFAD_PARSE_OK = 0,
	MFAD_PARSE_MORE = 1,	/* incomplete: read more */
	MFAD_PARSE_ERR = -1,	/* malformed */
};

/* mfad_http_parse parses a raw HTTP/1.1 response held in data[0:len].
 * With eof set, the peer has closed the connection, which ends a body that
 * has neither a Content-Length nor chunked framing. Bodies may be framed by
 * Content-Length or chunked transfer coding; anything ambiguous (both, a
 * repeated Content-Length, another transfer coding, a 1xx status) is
 * malformed. On MFAD_PARSE_OK, out holds a copy of the decoded body. */
int mfad_http_parse(const char *data, size_t len, int eof, struct mfad_http_response *out);

/* Where and how to reach the daemon. */
struct mfad_conn {
	const char *socket_path;
	int timeout_ms;		/* deadline for the whole round trip */
	/* The daemon must run as root or as trusted_uid (pass (uid_t)-1 to
	 * trust root only). Checked with SO_PEERCRED before anything is sent. */
	uid_t trusted_uid;
};

/* mfad_roundtrip POSTs body (JSON, body_len bytes) to path on a new
 * connection and reads the whole answer. The request buffer, which may hold
 * a code, is wiped before returning. */
int mfad_roundtrip(const struct mfad_conn *c, const char *path, const char *body, size_t body_len,
		   struct mfad_http_response *out);

/* A connection kept open between the round trips of one authentication,
 * so that the daemon does not accept, identify and set up a new one for
 * each request. fd is -1 when none is open. */
struct mfad_keep {
	int fd;
};

void mfad_keep_init(struct mfad_keep *k);
void mfad_keep_close(struct mfad_keep *k);

/* mfad_roundtrip_keep is mfad_roundtrip over k's connection when it is
 * still open (the daemon closes idle ones), otherwise over a new one, which
 * k then keeps if the answer allows. A request sent on a kept connection
 * that the daemon closed before answering anything is sent once more on a
 * new connection: the daemon answers every request it read, so an empty
 * close means the request was never read. */
int mfad_roundtrip_keep(const struct mfad_conn *c, struct mfad_keep *k, const char *path, const char *body,
			size_t body_len, struct mfad_http_response *out);

/* Login decisions. */
enum mfad_decision {
	MFAD_DECISION_UNKNOWN = 0,
	MFAD_DECISION_ALLOW,
	MFAD_DECISION_CHALLENGE,
	MFAD_DECISION_DENY,
	MFAD_DECISION_IGNORE,
};

/* Method bits. */
enum {
	MFAD_METHOD_U2F = 1 << 0,
	MFAD_METHOD_TOTP = 1 << 1,
	MFAD_METHOD_SMS = 1 << 2,
	MFAD_METHOD_RECOVERY = 1 << 3,
};

#define MFAD_TEXT_MAX 512	/* longest text from the daemon shown to a user */
#define MFAD_MESSAGES_MAX 8	/* most message lines kept from one answer */
#define MFAD_ID_MAX 64		/* longest login id */
#define MFAD_TOKEN_MAX 1024	/* longest remember-device token */

/* Lines the daemon asks to show the user (enrolment reminders and such). */
struct mfad_messages {
	int n;
	char line[MFAD_MESSAGES_MAX][MFAD_TEXT_MAX + 1];
};

/* The answer to POST /v1/login. Texts are sanitized: control characters are
 * replaced, so they are safe to pass to a terminal. */
struct mfad_login {
	char login_id[MFAD_ID_MAX + 1];
	enum mfad_decision decision;
	unsigned methods;	/* MFAD_METHOD_* bits */
	unsigned default_method;	/* one MFAD_METHOD_* bit, or 0 */
	char prompt[MFAD_TEXT_MAX + 1];
	char reason[MFAD_TEXT_MAX + 1];
	int expires_in_s;	/* -1 when absent */
	/* remember is set when the verification may ask for a remember-device
	 * token. */
	int remember;
	struct mfad_messages messages;
};

/* Verification results. */
enum mfad_result {
	MFAD_RESULT_UNKNOWN = 0,
	MFAD_RESULT_OK,
	MFAD_RESULT_FAIL,
	MFAD_RESULT_LOCKED,
};

/* The answer to POST /v1/login/{id}/verify and .../u2f. Absent numbers are
 * -1. */
struct mfad_verify {
	enum mfad_result result;
	unsigned method;
	int attempts_left;
	int retry_after_s;
	int recovery_codes_left;
	int recovery_codes_low;
	char reason[64];
	char message[MFAD_TEXT_MAX + 1];
	/* remember_token is a new remember-device token (printable ASCII), or
	 * empty. */
	char remember_token[MFAD_TOKEN_MAX + 1];
	struct mfad_messages messages;
};

/* The answer to POST /v1/login/{id}/sms. */
struct mfad_sms {
	char sent_to[128];
	int expires_in_s;
};

/* The error body of a 4xx/5xx answer. */
struct mfad_api_error {
	char code[64];
	char message[MFAD_TEXT_MAX + 1];
};

/* The decoders return 0 on success and -1 when the body is not a JSON
 * object of the expected shape (required fields missing or mistyped). */
int mfad_parse_login(const char *body, size_t len, struct mfad_login *out);
int mfad_parse_verify(const char *body, size_t len, struct mfad_verify *out);
int mfad_parse_sms(const char *body, size_t len, struct mfad_sms *out);
int mfad_parse_error(const char *body, size_t len, struct mfad_api_error *out);

/* mfad_method_bit maps "u2f", "totp", "sms", "recovery" to its bit (0 if
 * unknown). */
unsigned mfad_method_bit(const char *name);

/* mfad_valid_login_id reports whether id is safe to put in a URL path:
 * 1..MFAD_ID_MAX characters of [A-Za-z0-9_-]. */
int mfad_valid_login_id(const char *id);

/* mfad_valid_text reports whether s (n bytes) is valid UTF-8 without control
 * characters, at most max bytes: what the daemon accepts for user names and
 * login context. */
int mfad_valid_text(const char *s, size_t n, size_t max);

#endif
