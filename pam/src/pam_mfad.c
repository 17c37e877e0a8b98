/*
 * pam_mfad.c: the PAM side of pam_mfad, an auth module that asks the mfad
 * daemon for a second factor. See pam/doc.go for the options, the return
 * codes and how to install it.
 *
 * The module keeps no state between calls and starts no threads; every call
 * to the daemon has a deadline (see mfad_client.c). Codes the user types are
 * wiped from memory after use and never logged.
 */
#define _GNU_SOURCE
#define PAM_SM_AUTH

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "mfad_client.h"

#define MFAD_EXPORT __attribute__((visibility("default")))

#define DEFAULT_SOCKET "/run/mfad/mfad.sock"
#define MAX_CODE 128		/* the daemon refuses longer codes */
#define MAX_SMS_SENDS 2		/* SMS requests per login that do not use up a try */
/* With the remember option, a remember-device token from the daemon is
 * kept with pam_set_data under REMEMBER_DATA (for later modules of the
 * stack) and in the PAM environment as REMEMBER_ENV (for the application,
 * which reads it with pam_getenv and stores it for the device). */
#define REMEMBER_DATA "mfad_remember_token"
#define REMEMBER_ENV "MFAD_REMEMBER_TOKEN"
/* DEVICE_TOKEN_ENV is the PAM environment variable an application sets
 * (pam_putenv) to present a stored remember-device token. */
#define DEVICE_TOKEN_ENV "MFAD_DEVICE_TOKEN"

struct opts {
	char socket[108];
	int timeout_ms;
	int u2f_timeout_ms;
	int tries;
	int failmode_open;
	int debug;
	int remember;
	char daemon_user[33];
};

/* One authentication in progress. */
struct auth {
	pam_handle_t *pamh;
	int flags;
	const struct opts *o;
	struct mfad_conn conn;
	/* The connection kept open between the calls of this authentication. */
	struct mfad_keep keep;
	const char *user;
	const char *service;
	const char *rhost;
	struct mfad_login login;
};

/* ---- options ---- */

static int parse_seconds(const char *s, int max, int *ms)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max)
		return -1;
	*ms = (int)v * 1000;
	return 0;
}

static int valid_user_option(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

/* parse_opts reads the module arguments. A misspelt or invalid option is an
 * error: the module refuses to run rather than guess. */
static int parse_opts(pam_handle_t *pamh, int argc, const char **argv, struct opts *o)
{
	memset(o, 0, sizeof *o);
	strcpy(o->socket, DEFAULT_SOCKET);
	strcpy(o->daemon_user, "mfad");
	o->timeout_ms = 10 * 1000;
	o->u2f_timeout_ms = 60 * 1000;
	o->tries = 3;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int bad = 0;
		if (strncmp(a, "socket=", 7) == 0) {
			const char *p = a + 7;
			if (p[0] != '/' || strlen(p) >= sizeof o->socket)
				bad = 1;
			else
				strcpy(o->socket, p);
		} else if (strncmp(a, "timeout=", 8) == 0) {
			bad = parse_seconds(a + 8, 600, &o->timeout_ms) < 0;
		} else if (strncmp(a, "u2f_timeout=", 12) == 0) {
			bad = parse_seconds(a + 12, 600, &o->u2f_timeout_ms) < 0;
		} else if (strncmp(a, "tries=", 6) == 0) {
			char *end;
			errno = 0;
			long v = strtol(a + 6, &end, 10);
			bad = errno != 0 || end == a + 6 || *end != '\0' || v < 1 || v > 10;
			if (!bad)
				o->tries = (int)v;
		} else if (strcmp(a, "failmode=secure") == 0) {
			o->failmode_open = 0;
		} else if (strcmp(a, "failmode=open") == 0) {
			o->failmode_open = 1;
		} else if (strncmp(a, "daemon_user=", 12) == 0) {
			if (!valid_user_option(a + 12))
				bad = 1;
			else
				strcpy(o->daemon_user, a + 12);
		} else if (strcmp(a, "debug") == 0) {
			o->debug = 1;
		} else if (strcmp(a, "remember") == 0) {
			o->remember = 1;
		} else {
			bad = 1;
		}
		if (bad) {
			pam_syslog(pamh, LOG_ERR, "invalid module option \"%.64s\"; refusing to run", a);
			return -1;
		}
	}
	return 0;
}

/* daemon_uid returns the uid of the daemon's user, or (uid_t)-1 when there
 * is no such user (then only a daemon running as root is trusted). */
static uid_t daemon_uid(const char *name)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || res == NULL)
		return (uid_t)-1;
	return pw.pw_uid;
}

/* ---- messages ---- */

static void say(struct auth *a, int style, const char *text)
{
	if ((a->flags & PAM_SILENT) || text[0] == '\0')
		return;
	if (style == PAM_ERROR_MSG)
		pam_error(a->pamh, "%s", text);
	else
		pam_info(a->pamh, "%s", text);
}

static void debug(struct auth *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void debug(struct auth *a, const char *fmt, ...)
{
	if (!a->o->debug)
		return;
	va_list ap;
	va_start(ap, fmt);
	pam_vsyslog(a->pamh, LOG_DEBUG, fmt, ap);
	va_end(ap);
}

static const char *or_none(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "-";
}

/* ---- calls to the daemon ---- */

/* call POSTs body to path with the given deadline. */
static int call(struct auth *a, const char *path, struct mfad_buf *body, int timeout_ms, struct mfad_http_response *r)
{
	struct mfad_conn c = a->conn;
	c.timeout_ms = timeout_ms;
	int e = mfad_roundtrip_keep(&c, &a->keep, path, body->data ? body->data : "{}", body->data ? body->len : 2, r);
	mfad_buf_wipe(body);
	return e;
}

/* transport_failure maps a failed round trip to a PAM code. Only the first
 * call of a login may fail open, and only when the daemon could not be
 * asked at all: once it has answered, or when it answers something
 * malformed or the socket is not the daemon's, the module fails closed. */
static int transport_failure(struct auth *a, int err, int first)
{
	if (first && mfad_unreachable(err) && a->o->failmode_open) {
		pam_syslog(a->pamh, LOG_WARNING,
			   "daemon unreachable at %s (%s); failmode=open lets user %s in WITHOUT a second factor "
			   "(rhost %s)",
			   a->o->socket, mfad_strerror(err), a->user, or_none(a->rhost));
		return PAM_SUCCESS;
	}
	pam_syslog(a->pamh, LOG_ERR, "asking the daemon at %s for user %s: %s", a->o->socket, a->user,
		   mfad_strerror(err));
	if (err == MFAD_E_UNTRUSTED)
		pam_syslog(a->pamh, LOG_ERR, "the socket's owner process runs neither as root nor as %s (daemon_user=)",
			   a->o->daemon_user);
	say(a, PAM_ERROR_MSG, "Second-factor verification is unavailable; try again later.");
	return PAM_AUTHINFO_UNAVAIL;
}

/* status_failure maps an error answer (4xx/5xx) to a PAM code. */
static int status_failure(struct auth *a, const char *what, const struct mfad_http_response *r)
{
	struct mfad_api_error e;
	if (mfad_parse_error(r->body, r->body_len, &e) < 0)
		strcpy(e.code, "?");
	pam_syslog(a->pamh, LOG_ERR, "daemon refused %s for user %s: %d %s: %s", what, a->user, r->status, e.code,
		   e.message);
	if (strcmp(e.code, "login_expired") == 0) {
		say(a, PAM_ERROR_MSG, "The login took too long; start again.");
		return PAM_AUTH_ERR;
	}
	if (r->status == 401 || r->status == 403 || r->status >= 500) {
		if (r->status == 403)
			pam_syslog(a->pamh, LOG_ERR,
				   "this process (uid %d) lacks the daemon's login role: run as root or add it to "
				   "server.login_groups",
				   (int)geteuid());
		say(a, PAM_ERROR_MSG, "Second-factor verification is unavailable; try again later.");
		return PAM_AUTHINFO_UNAVAIL;
	}
	return PAM_AUTH_ERR;
}

static int login_path(struct auth *a, const char *step, char *path, size_t n)
{
	int w = snprintf(path, n, "/v1/login/%s/%s", a->login.login_id, step);
	return w > 0 && (size_t)w < n ? 0 : -1;
}

static void wipe_remember(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	if (data != NULL) {
		explicit_bzero(data, strlen(data));
		free(data);
	}
}

/* keep_remember_token hands a remember-device token from the daemon to the
 * stack (pam_set_data) and the application (the PAM environment). */
static void keep_remember_token(struct auth *a, char *token)
{
	if (token[0] == '\0' || !a->o->remember)
		return;
	char env[sizeof REMEMBER_ENV + MFAD_TOKEN_MAX + 1];
	snprintf(env, sizeof env, "%s=%s", REMEMBER_ENV, token);
	char *t = strdup(token);
	explicit_bzero(token, strlen(token));
	if (t != NULL && pam_set_data(a->pamh, REMEMBER_DATA, t, wipe_remember) != PAM_SUCCESS)
		wipe_remember(a->pamh, t, 0);
	if (pam_putenv(a->pamh, env) == PAM_SUCCESS)
		debug(a, "kept a remember-device token for user %s", a->user);
	explicit_bzero(env, sizeof env);
}

/* show_messages passes the daemon's message lines to the user. */
static void show_messages(struct auth *a, const struct mfad_messages *m)
{
	for (int i = 0; i < m->n; i++)
		say(a, PAM_TEXT_INFO, m->line[i]);
}

/* start asks POST /v1/login. It returns a PAM code, or -1 to run the
 * challenge. */
static int start(struct auth *a, const char *tty)
{
	struct mfad_buf b;
	mfad_buf_init(&b, MFAD_MAX_REQUEST);
	int bad = mfad_buf_adds(&b, "{\"user\":") < 0 || mfad_json_add_string(&b, a->user, strlen(a->user)) < 0;
	const struct {
		const char *name, *key, *value;
	} fields[] = {
		{"PAM_SERVICE", ",\"service\":", a->service},
		{"PAM_RHOST", ",\"rhost\":", a->rhost},
		{"PAM_TTY", ",\"tty\":", tty},
		{DEVICE_TOKEN_ENV, ",\"device_token\":", pam_getenv(a->pamh, DEVICE_TOKEN_ENV)},
	};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		const char *v = fields[i].value;
		if (v == NULL || v[0] == '\0')
			continue;
		if (!mfad_valid_text(v, strlen(v), i == 3 ? MFAD_TOKEN_MAX : 256)) {
			pam_syslog(a->pamh, LOG_ERR, "refusing user %s: %s is too long or not printable text", a->user,
				   fields[i].name);
			mfad_buf_wipe(&b);
			return PAM_AUTH_ERR;
		}
		bad |= mfad_buf_adds(&b, fields[i].key) < 0 || mfad_json_add_string(&b, v, strlen(v)) < 0;
	}
	bad |= mfad_buf_adds(&b, "}") < 0;
	if (bad) {
		mfad_buf_wipe(&b);
		pam_syslog(a->pamh, LOG_ERR, "building the login request: out of memory");
		return PAM_BUF_ERR;
	}

	struct mfad_http_response r;
	int e = call(a, "/v1/login", &b, a->o->timeout_ms, &r);
	if (e != MFAD_OK)
		return transport_failure(a, e, 1);
	int rc = -1;
	if (r.status != 200) {
		rc = status_failure(a, "the login", &r);
	} else if (mfad_parse_login(r.body, r.body_len, &a->login) < 0) {
		rc = transport_failure(a, MFAD_E_PROTO, 0);
	} else {
		show_messages(a, &a->login.messages);
		switch (a->login.decision) {
		case MFAD_DECISION_ALLOW:
			debug(a, "daemon allows user %s without a second factor", a->user);
			rc = PAM_SUCCESS;
			break;
		case MFAD_DECISION_IGNORE:
			debug(a, "daemon ignores user %s", a->user);
			rc = PAM_IGNORE;
			break;
		case MFAD_DECISION_DENY:
			pam_syslog(a->pamh, LOG_NOTICE, "daemon denies user %s (rhost %s): %s", a->user,
				   or_none(a->rhost), a->login.reason);
			rc = PAM_AUTH_ERR;
			break;
		case MFAD_DECISION_CHALLENGE:
			if (a->login.methods == 0) {
				pam_syslog(a->pamh, LOG_ERR, "daemon offers user %s no method this module knows", a->user);
				rc = PAM_AUTH_ERR;
			}
			break;
		default:
			pam_syslog(a->pamh, LOG_ERR, "daemon answered an unknown decision for user %s", a->user);
			rc = PAM_AUTH_ERR;
		}
	}
	mfad_http_response_free(&r);
	return rc;
}

/* finish_ok tells the user what is worth knowing after a success. */
static int finish_ok(struct auth *a, struct mfad_verify *v)
{
	keep_remember_token(a, v->remember_token);
	show_messages(a, &v->messages);
	if (v->recovery_codes_left >= 0) {
		char msg[MFAD_TEXT_MAX + 64];
		if (v->message[0] != '\0')
			snprintf(msg, sizeof msg, "%s", v->message);
		else
			snprintf(msg, sizeof msg, "%d recovery code%s left.", v->recovery_codes_left,
				 v->recovery_codes_left == 1 ? "" : "s");
		say(a, PAM_TEXT_INFO, msg);
	}
	debug(a, "user %s passed the second factor", a->user);
	return PAM_SUCCESS;
}

static int locked(struct auth *a, const struct mfad_verify *v)
{
	say(a, PAM_ERROR_MSG, v->message[0] ? v->message : "Too many failed attempts; try again later.");
	pam_syslog(a->pamh, LOG_NOTICE, "user %s is locked out (rhost %s)", a->user, or_none(a->rhost));
	return PAM_MAXTRIES;
}

/* u2f runs the security-key step. It returns a PAM code, or -1 to fall back
 * to a code. */
static int u2f(struct auth *a)
{
	char path[128];
	if (login_path(a, "u2f", path, sizeof path) < 0)
		return PAM_AUTH_ERR;
	say(a, PAM_TEXT_INFO, "Touch your security key.");
	struct mfad_buf b;
	mfad_buf_init(&b, 16);
	if (mfad_buf_adds(&b, "{}") < 0)
		return PAM_BUF_ERR;
	struct mfad_http_response r;
	int e = call(a, path, &b, a->o->u2f_timeout_ms, &r);
	if (e != MFAD_OK)
		return transport_failure(a, e, 0);
	int rc = -1;
	struct mfad_verify v;
	if (r.status != 200) {
		struct mfad_api_error err;
		if (mfad_parse_error(r.body, r.body_len, &err) == 0 &&
		    (strcmp(err.code, "unavailable") == 0 || strcmp(err.code, "timeout") == 0 ||
		     strcmp(err.code, "conflict") == 0)) {
			/* No usable key right now: fall back to a code. */
			pam_syslog(a->pamh, LOG_NOTICE, "security key step for user %s: %s", a->user, err.message);
			say(a, PAM_ERROR_MSG, err.message);
		} else {
			rc = status_failure(a, "the security key step", &r);
		}
	} else if (mfad_parse_verify(r.body, r.body_len, &v) < 0) {
		rc = transport_failure(a, MFAD_E_PROTO, 0);
	} else if (v.result == MFAD_RESULT_OK) {
		rc = finish_ok(a, &v);
	} else if (v.result == MFAD_RESULT_LOCKED) {
		rc = locked(a, &v);
	} else if (v.result == MFAD_RESULT_FAIL) {
		say(a, PAM_ERROR_MSG, v.message);
	} else {
		pam_syslog(a->pamh, LOG_ERR, "daemon answered an unknown result for user %s", a->user);
		rc = PAM_AUTH_ERR;
	}
	mfad_http_response_free(&r);
	return rc;
}

/* sms asks the daemon to send a code by SMS. It returns a PAM code when the login
 * cannot go on, or -1 to prompt again. */
static int sms(struct auth *a)
{
	char path[128];
	if (login_path(a, "sms", path, sizeof path) < 0)
		return PAM_AUTH_ERR;
	struct mfad_buf b;
	mfad_buf_init(&b, 16);
	if (mfad_buf_adds(&b, "{}") < 0)
		return PAM_BUF_ERR;
	struct mfad_http_response r;
	int e = call(a, path, &b, a->o->timeout_ms, &r);
	if (e != MFAD_OK)
		return transport_failure(a, e, 0);
	int rc = -1;
	struct mfad_sms s;
	if (r.status == 200 && mfad_parse_sms(r.body, r.body_len, &s) == 0) {
		char msg[200];
		snprintf(msg, sizeof msg, "Code sent to %s.", s.sent_to);
		say(a, PAM_TEXT_INFO, msg);
		debug(a, "daemon sent a code by SMS to user %s", a->user);
	} else if (r.status == 200) {
		rc = transport_failure(a, MFAD_E_PROTO, 0);
	} else {
		struct mfad_api_error err;
		int parsed = mfad_parse_error(r.body, r.body_len, &err) == 0;
		if (parsed && strcmp(err.code, "login_expired") != 0 && r.status != 401 && r.status != 403) {
			pam_syslog(a->pamh, LOG_NOTICE, "sending a code by SMS to user %s: %d %s: %s", a->user, r.status,
				   err.code, err.message);
			say(a, PAM_ERROR_MSG, err.message[0] ? err.message : "No code could be sent by SMS.");
		} else {
			rc = status_failure(a, "the SMS", &r);
		}
	}
	mfad_http_response_free(&r);
	return rc;
}

/* trim returns s without surrounding ASCII white space, and its length. */
static char *trim(char *s, size_t *n)
{
	size_t l = strlen(s);
	while (l > 0 && isspace((unsigned char)s[l - 1]))
		l--;
	while (l > 0 && isspace((unsigned char)*s))
		s++, l--;
	*n = l;
	return s;
}

static void drop_answer(char **answer)
{
	if (*answer != NULL) {
		explicit_bzero(*answer, strlen(*answer));
		free(*answer);
		*answer = NULL;
	}
}

/* verify sends one code. It returns a PAM code, or -1 after a wrong code. */
static int verify(struct auth *a, const char *code, size_t n)
{
	char path[128];
	if (login_path(a, "verify", path, sizeof path) < 0)
		return PAM_AUTH_ERR;
	struct mfad_buf b;
	mfad_buf_init(&b, MFAD_MAX_REQUEST);
	const char *tail = a->o->remember && a->login.remember ? ",\"remember\":true}" : "}";
	if (mfad_buf_adds(&b, "{\"code\":") < 0 || mfad_json_add_string(&b, code, n) < 0 || mfad_buf_adds(&b, tail) < 0) {
		mfad_buf_wipe(&b);
		return PAM_BUF_ERR;
	}
	struct mfad_http_response r;
	int e = call(a, path, &b, a->o->timeout_ms, &r);
	if (e != MFAD_OK)
		return transport_failure(a, e, 0);
	int rc = -1;
	struct mfad_verify v;
	if (r.status != 200) {
		rc = status_failure(a, "the code", &r);
	} else if (mfad_parse_verify(r.body, r.body_len, &v) < 0) {
		rc = transport_failure(a, MFAD_E_PROTO, 0);
	} else if (v.result == MFAD_RESULT_OK) {
		rc = finish_ok(a, &v);
	} else if (v.result == MFAD_RESULT_LOCKED) {
		rc = locked(a, &v);
	} else if (v.result == MFAD_RESULT_FAIL) {
		say(a, PAM_ERROR_MSG, v.message[0] ? v.message : "code rejected");
		pam_syslog(a->pamh, LOG_NOTICE, "wrong code for user %s (rhost %s)", a->user, or_none(a->rhost));
	} else {
		pam_syslog(a->pamh, LOG_ERR, "daemon answered an unknown result for user %s", a->user);
		rc = PAM_AUTH_ERR;
	}
	mfad_http_response_free(&r);
	return rc;
}

/* code_prompt writes the prompt for a code when the daemon's prompt is for
 * another step (the security key), in the daemon's words: "Verification
 * code (authenticator app, SMS or recovery code; press Enter to get a code
 * by SMS): ". */
static void code_prompt(unsigned methods, char *buf, size_t n)
{
	const char *parts[3];
	int k = 0;
	if (methods & MFAD_METHOD_TOTP)
		parts[k++] = "authenticator app";
	if (methods & MFAD_METHOD_SMS)
		parts[k++] = "SMS";
	if (methods & MFAD_METHOD_RECOVERY)
		parts[k++] = "recovery code";
	if (k == 0) {
		snprintf(buf, n, "Verification code: ");
		return;
	}
	if (k == 1 && (methods & MFAD_METHOD_RECOVERY)) {
		snprintf(buf, n, "Recovery code: ");
		return;
	}
	char what[128] = "";
	for (int i = 0; i < k; i++) {
		const char *sep = i == 0 ? "" : i == k - 1 ? " or " : ", ";
		size_t l = strlen(what);
		snprintf(what + l, sizeof what - l, "%s%s", sep, parts[i]);
	}
	snprintf(buf, n, "Verification code (%s%s): ", what,
		 (methods & MFAD_METHOD_SMS) ? "; press Enter to get a code by SMS" : "");
}

/* challenge runs the prompts: at most o->tries codes are checked; asking
 * for an SMS (an empty answer or "sms") does not use up a try the
 * first MAX_SMS_SENDS times. */
static int challenge(struct auth *a)
{
	unsigned methods = a->login.methods;
	if ((methods & MFAD_METHOD_U2F) && a->login.default_method == MFAD_METHOD_U2F) {
		int rc = u2f(a);
		if (rc >= 0)
			return rc;
		methods &= ~(unsigned)MFAD_METHOD_U2F;
		if (methods == 0)
			return PAM_AUTH_ERR;
	} else {
		methods &= ~(unsigned)MFAD_METHOD_U2F;
		if (methods == 0) {
			pam_syslog(a->pamh, LOG_ERR, "daemon offers user %s only a security key, and not as the default",
				   a->user);
			return PAM_AUTH_ERR;
		}
	}
	char own[192];
	const char *prompt = a->login.prompt;
	if (prompt[0] == '\0' || a->login.default_method == MFAD_METHOD_U2F) {
		code_prompt(methods, own, sizeof own);
		prompt = own;
	}
	if ((methods & MFAD_METHOD_SMS) && strcasestr(prompt, "sms") == NULL)
		say(a, PAM_TEXT_INFO, "To get a code by SMS, press Enter.");

	int tries = 0, sends = 0;
	while (tries < a->o->tries) {
		char *answer = NULL;
		int pr = pam_prompt(a->pamh, PAM_PROMPT_ECHO_OFF, &answer, "%s", prompt);
		if (pr != PAM_SUCCESS) {
			drop_answer(&answer);
			debug(a, "conversation for user %s failed: %s", a->user, pam_strerror(a->pamh, pr));
			return PAM_CONV_ERR;
		}
		size_t n = 0;
		const char *code = answer != NULL ? trim(answer, &n) : "";
		int wants_sms = n == 0 || (n == 3 && strncasecmp(code, "sms", 3) == 0);
		if (wants_sms && (methods & MFAD_METHOD_SMS)) {
			drop_answer(&answer);
			if (sends >= MAX_SMS_SENDS) {
				tries++;
				say(a, PAM_ERROR_MSG, "No more SMS for this login; enter the code you received.");
				continue;
			}
			sends++;
			int rc = sms(a);
			if (rc >= 0)
				return rc;
			continue;
		}
		if (n == 0) {
			drop_answer(&answer);
			tries++;
			say(a, PAM_ERROR_MSG, "No code entered.");
			continue;
		}
		int rc;
		if (n > MAX_CODE || !mfad_valid_text(code, n, MAX_CODE)) {
			/* The daemon would refuse it as malformed; it is wrong. */
			say(a, PAM_ERROR_MSG, "code rejected");
			rc = -1;
		} else {
			rc = verify(a, code, n);
		}
		drop_answer(&answer);
		if (rc >= 0)
			return rc;
		tries++;
	}
	pam_syslog(a->pamh, LOG_NOTICE, "user %s used up all tries (%d) (rhost %s)", a->user, tries,
		   or_none(a->rhost));
	return PAM_MAXTRIES;
}

MFAD_EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct opts o;
	if (parse_opts(pamh, argc, argv, &o) < 0)
		return PAM_SERVICE_ERR;

	const char *user = NULL;
	int pr = pam_get_user(pamh, &user, NULL);
	if (pr != PAM_SUCCESS) {
		if (pr == PAM_CONV_AGAIN)
			return PAM_INCOMPLETE;
		pam_syslog(pamh, LOG_ERR, "getting the user name: %s", pam_strerror(pamh, pr));
		return pr;
	}
	if (user == NULL || user[0] == '\0' || !mfad_valid_text(user, strlen(user), 256)) {
		pam_syslog(pamh, LOG_NOTICE, "refusing a user name that is empty, too long or not printable text");
		return PAM_AUTH_ERR;
	}

	const void *item;
	struct auth *a = calloc(1, sizeof *a);
	if (a == NULL)
		return PAM_BUF_ERR;
	a->pamh = pamh;
	mfad_keep_init(&a->keep);
	a->flags = flags;
	a->o = &o;
	a->user = user;
	a->conn.socket_path = o.socket;
	a->conn.timeout_ms = o.timeout_ms;
	a->conn.trusted_uid = daemon_uid(o.daemon_user);
	if (pam_get_item(pamh, PAM_SERVICE, &item) == PAM_SUCCESS)
		a->service = item;
	if (pam_get_item(pamh, PAM_RHOST, &item) == PAM_SUCCESS)
		a->rhost = item;
	const char *tty = NULL;
	if (pam_get_item(pamh, PAM_TTY, &item) == PAM_SUCCESS)
		tty = item;
	debug(a, "asking %s about user %s (service %s, rhost %s, tty %s)", o.socket, user, or_none(a->service),
	      or_none(a->rhost), or_none(tty));

	int rc = start(a, tty);
	if (rc < 0)
		rc = challenge(a);
	debug(a, "user %s: %s", user, pam_strerror(pamh, rc));
	mfad_keep_close(&a->keep);
	explicit_bzero(a, sizeof *a);
	free(a);
	return rc;
}

MFAD_EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}
