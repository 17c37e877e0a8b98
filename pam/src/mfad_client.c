/*
 * mfad_client.c: the socket, HTTP and JSON half of pam_mfad (see
 * mfad_client.h). Every read and write waits in poll() with the time left
 * before one deadline; responses are bounded; JSON is parsed with json-c.
 */
#define _GNU_SOURCE
#include "mfad_client.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

const char *mfad_strerror(int e)
{
	switch (e) {
	case MFAD_OK:
		return "ok";
	case MFAD_E_CONNECT:
		return "cannot connect to the daemon's socket";
	case MFAD_E_PERM:
		return "permission denied on the daemon's socket";
	case MFAD_E_UNTRUSTED:
		return "the socket is served by an untrusted user";
	case MFAD_E_TIMEOUT:
		return "timed out waiting for the daemon";
	case MFAD_E_IO:
		return "connection to the daemon failed";
	case MFAD_E_PROTO:
		return "malformed answer from the daemon";
	case MFAD_E_TOOBIG:
		return "answer from the daemon is too large";
	case MFAD_E_NOMEM:
		return "out of memory";
	case MFAD_E_INVAL:
		return "invalid request";
	}
	return "unknown error";
}

int mfad_unreachable(int e)
{
	return e == MFAD_E_CONNECT || e == MFAD_E_TIMEOUT || e == MFAD_E_IO;
}

/* ---- buffers ---- */

void mfad_buf_init(struct mfad_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

int mfad_buf_add(struct mfad_buf *b, const void *p, size_t n)
{
	if (n > b->max - b->len)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		/* Grow by copying, so an old block holding secrets is wiped. */
		char *d = malloc(cap);
		if (d == NULL)
			return -1;
		if (b->data != NULL) {
			memcpy(d, b->data, b->len);
			explicit_bzero(b->data, b->cap);
			free(b->data);
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int mfad_buf_adds(struct mfad_buf *b, const char *s)
{
	return mfad_buf_add(b, s, strlen(s));
}

void mfad_buf_wipe(struct mfad_buf *b)
{
	if (b->data != NULL) {
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/* ---- UTF-8 ---- */

/* utf8_next decodes the sequence at s[0:n] (n >= 1). It returns its length
 * and stores the code point, or returns 0 when the sequence is invalid
 * (truncated, overlong, a surrogate, or beyond U+10FFFF). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0];
	size_t k;
	uint32_t min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		k = 2;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		k = 3;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		k = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return k;
}

/* is_control matches Go's unicode.IsControl: C0, DEL and C1. */
static int is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

int mfad_valid_text(const char *s, size_t n, size_t max)
{
	if (n > max)
		return 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_next((const unsigned char *)s + i, n - i, &cp);
		if (k == 0 || is_control(cp))
			return 0;
		i += k;
	}
	return 1;
}

int mfad_json_add_string(struct mfad_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (mfad_buf_add(b, "\"", 1) < 0)
		return -1;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			uint32_t cp;
			size_t k = utf8_next((const unsigned char *)s + i, n - i, &cp);
			if (k == 0 || mfad_buf_add(b, s + i, k) < 0)
				return -1;
			i += k;
			continue;
		}
		int r;
		if (c == '"') {
			r = mfad_buf_add(b, "\\\"", 2);
		} else if (c == '\\') {
			r = mfad_buf_add(b, "\\\\", 2);
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			r = mfad_buf_add(b, e, sizeof e);
		} else {
			r = mfad_buf_add(b, &s[i], 1);
		}
		if (r < 0)
			return -1;
		i++;
	}
	return mfad_buf_add(b, "\"", 1);
}

/* copy_text copies s[0:n] into dst (size dstsz >= 1) as display text:
 * control characters and invalid bytes become '?', and the copy is cut at a
 * character boundary when it does not fit. */
static void copy_text(char *dst, size_t dstsz, const char *s, size_t n)
{
	size_t out = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_next((const unsigned char *)s + i, n - i, &cp);
		if (k == 0 || is_control(cp)) {
			if (out + 1 > dstsz - 1)
				break;
			dst[out++] = '?';
			i += k ? k : 1;
			continue;
		}
		if (out + k > dstsz - 1)
			break;
		memcpy(dst + out, s + i, k);
		out += k;
		i += k;
	}
	dst[out] = '\0';
}

/* ---- HTTP ---- */

void mfad_http_response_free(struct mfad_http_response *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

/* find_crlf returns the offset of the first "\r\n" in s[from:len], or -1.
 * A bare CR or LF, or a NUL, before it makes the line malformed (-2). */
static long find_crlf(const char *s, size_t from, size_t len)
{
	for (size_t i = from; i < len; i++) {
		if (s[i] == '\r') {
			if (i + 1 == len)
				return -1;
			return s[i + 1] == '\n' ? (long)i : -2;
		}
		if (s[i] == '\n' || s[i] == '\0')
			return -2;
	}
	return -1;
}

static int is_tchar(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return 1;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field_name_len returns the length of the field name of the header line
 * h[0:n], or 0 when the line is malformed: the name must be a token
 * followed by ':' (which refuses obs-fold continuation lines), and the value
 * may hold no control character but HTAB. */
static size_t field_name_len(const char *h, size_t n)
{
	size_t nl = 0;
	while (nl < n && is_tchar((unsigned char)h[nl]))
		nl++;
	if (nl == 0 || nl == n || h[nl] != ':')
		return 0;
	for (size_t i = nl + 1; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return nl;
}

static int header_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* parse_chunked decodes a chunked body at s[pos:len] into out. */
static int parse_chunked(const char *s, size_t pos, size_t len, char *out, size_t *outlen)
{
	size_t o = 0;
	for (;;) {
		size_t size = 0, digits = 0;
		while (pos < len) {
			char c = s[pos];
			int v;
			if (c >= '0' && c <= '9')
				v = c - '0';
			else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
				v = (c | 0x20) - 'a' + 10;
			else
				break;
			if (++digits > 6)
				return MFAD_PARSE_ERR; /* over MFAD_MAX_RESPONSE anyway */
			size = size * 16 + (size_t)v;
			pos++;
		}
		if (pos == len)
			return MFAD_PARSE_MORE;
		if (digits == 0)
			return MFAD_PARSE_ERR;
		/* Chunk extensions are ignored up to the end of the line. */
		long eol = find_crlf(s, pos, len);
		if (eol == -2)
			return MFAD_PARSE_ERR;
		if (eol == -1)
			return MFAD_PARSE_MORE;
		if ((size_t)eol != pos && s[pos] != ';')
			return MFAD_PARSE_ERR;
		pos = (size_t)eol + 2;
		if (size == 0)
			break;
		if (len - pos < size + 2)
			return MFAD_PARSE_MORE;
		if (s[pos + size] != '\r' || s[pos + size + 1] != '\n')
			return MFAD_PARSE_ERR;
		memcpy(out + o, s + pos, size);
		o += size;
		pos += size + 2;
	}
	/* Trailer fields, then the empty line. */
	for (;;) {
		long eol = find_crlf(s, pos, len);
		if (eol == -2)
			return MFAD_PARSE_ERR;
		if (eol == -1)
			return MFAD_PARSE_MORE;
		if ((size_t)eol == pos)
			break;
		if (field_name_len(s + pos, (size_t)eol - pos) == 0)
			return MFAD_PARSE_ERR;
		pos = (size_t)eol + 2;
	}
	*outlen = o;
	return MFAD_PARSE_OK;
}

int mfad_http_parse(const char *data, size_t len, int eof, struct mfad_http_response *out)
{
	int incomplete = eof ? MFAD_PARSE_ERR : MFAD_PARSE_MORE;
	out->status = 0;
	out->body = NULL;
	out->body_len = 0;
	out->reusable = 0;
	if (len > MFAD_MAX_RESPONSE)
		return MFAD_PARSE_ERR;

	/* Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF. */
	long eol = find_crlf(data, 0, len);
	if (eol == -2)
		return MFAD_PARSE_ERR;
	if (eol == -1)
		return incomplete;
	const char *l = data;
	if (eol < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
		return MFAD_PARSE_ERR;
	int status = 0;
	for (int i = 9; i < 12; i++) {
		if (l[i] < '0' || l[i] > '9')
			return MFAD_PARSE_ERR;
		status = status * 10 + (l[i] - '0');
	}
	if ((eol > 12 && l[12] != ' ') || status < 200 || status > 599)
		return MFAD_PARSE_ERR;

	/* Header fields. */
	long content_length = -1;
	int chunked = 0, te_seen = 0, conn_close = 0;
	size_t pos = (size_t)eol + 2;
	for (;;) {
		eol = find_crlf(data, pos, len);
		if (eol == -2)
			return MFAD_PARSE_ERR;
		if (eol == -1)
			return incomplete;
		size_t n = (size_t)eol - pos;
		const char *h = data + pos;
		pos = (size_t)eol + 2;
		if (n == 0)
			break;
		size_t nl = field_name_len(h, n);
		if (nl == 0)
			return MFAD_PARSE_ERR;
		const char *v = h + nl + 1;
		size_t vl = n - nl - 1;
		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		if (header_is(h, nl, "content-length")) {
			if (content_length >= 0 || vl == 0 || vl > 7)
				return MFAD_PARSE_ERR;
			long cl = 0;
			for (size_t i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					return MFAD_PARSE_ERR;
				cl = cl * 10 + (v[i] - '0');
			}
			if (cl > MFAD_MAX_RESPONSE)
				return MFAD_PARSE_ERR;
			content_length = cl;
		} else if (header_is(h, nl, "connection")) {
			/* A token list; only "close" matters. */
			for (size_t i = 0; i + 5 <= vl; i++)
				if (strncasecmp(v + i, "close", 5) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
				    (i + 5 == vl || v[i + 5] == ',' || v[i + 5] == ' '))
					conn_close = 1;
		} else if (header_is(h, nl, "transfer-encoding")) {
			if (te_seen || vl != 7 || strncasecmp(v, "chunked", 7) != 0)
				return MFAD_PARSE_ERR;
			te_seen = chunked = 1;
		}
	}
	/* Both framings, or chunked in an HTTP/1.0 answer (where it has no
	 * meaning), leave the body's end ambiguous. */
	if (chunked && (content_length >= 0 || l[7] == '0'))
		return MFAD_PARSE_ERR;

	size_t avail = len - pos;
	char *body = malloc(avail + 1);
	if (body == NULL)
		return MFAD_PARSE_ERR;
	size_t blen = 0;
	int reusable = l[7] == '1' && !conn_close;
	if (status == 204 || status == 304) {
		blen = 0;
		reusable = reusable && avail == 0;
	} else if (chunked) {
		reusable = 0; /* the daemon frames its small answers by length */
		int r = parse_chunked(data, pos, len, body, &blen);
		if (r != MFAD_PARSE_OK) {
			free(body);
			return r == MFAD_PARSE_MORE ? incomplete : r;
		}
	} else if (content_length >= 0) {
		if (avail < (size_t)content_length) {
			free(body);
			return incomplete;
		}
		blen = (size_t)content_length;
		memcpy(body, data + pos, blen);
		reusable = reusable && avail == blen;
	} else {
		/* No framing: the body ends when the daemon closes. */
		if (!eof) {
			free(body);
			return MFAD_PARSE_MORE;
		}
		blen = avail;
		memcpy(body, data + pos, blen);
		reusable = 0;
	}
	body[blen] = '\0';
	out->status = status;
	out->body = body;
	out->body_len = blen;
	out->reusable = reusable;
	return MFAD_PARSE_OK;
}

/* ---- the round trip ---- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(long long deadline)
{
	long long r = deadline - now_ms();
	if (r <= 0)
		return 0;
	return r > INT_MAX ? INT_MAX : (int)r;
}

/* wait_fd polls fd for events until the deadline: 1 ready, 0 timed out,
 * -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int connect_socket(const struct mfad_conn *c, long long deadline, int *fdp)
{
	struct sockaddr_un sa;
	size_t plen = strlen(c->socket_path);
	if (plen == 0 || plen >= sizeof sa.sun_path)
		return MFAD_E_INVAL;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, c->socket_path, plen);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errno == ENOMEM || errno == ENOBUFS ? MFAD_E_NOMEM : MFAD_E_IO;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN) {
			/* The listen backlog is full: retry until the deadline. */
			int ms = remaining_ms(deadline);
			if (ms == 0) {
				close(fd);
				return MFAD_E_TIMEOUT;
			}
			(void)poll(NULL, 0, ms < 10 ? ms : 10);
			continue;
		}
		if (e == EINPROGRESS) {
			int w = wait_fd(fd, POLLOUT, deadline);
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (w == 0) {
				close(fd);
				return MFAD_E_TIMEOUT;
			}
			if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
				close(fd);
				return MFAD_E_CONNECT;
			}
			break;
		}
		close(fd);
		return e == EACCES || e == EPERM ? MFAD_E_PERM : MFAD_E_CONNECT;
	}

	struct ucred cred;
	socklen_t cl = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cl != sizeof cred) {
		close(fd);
		return MFAD_E_IO;
	}
	if (cred.uid != 0 && (c->trusted_uid == (uid_t)-1 || cred.uid != c->trusted_uid)) {
		close(fd);
		return MFAD_E_UNTRUSTED;
	}
	*fdp = fd;
	return MFAD_OK;
}

static int valid_path(const char *p)
{
	if (p[0] != '/')
		return 0;
	for (; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return 0;
	return 1;
}

void mfad_keep_init(struct mfad_keep *k)
{
	k->fd = -1;
}

void mfad_keep_close(struct mfad_keep *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
}

/* still_open reports whether a kept connection can carry a request: the
 * daemon has neither closed it (readable: EOF) nor sent anything unasked. */
static int still_open(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r == 0;
}

/* exchange sends req on fd and reads one answer. *nothing is set when the
 * daemon closed the connection without sending a byte. *reusable tells
 * whether fd can carry another request. */
static int exchange(int fd, const struct mfad_buf *req, long long deadline, struct mfad_http_response *out,
		    int *nothing, int *reusable)
{
	*nothing = 0;
	*reusable = 0;
	/* If the daemon hangs up early it may still have answered (an error),
	 * so a failed send falls through to reading. */
	size_t sent = 0;
	while (sent < req->len) {
		int w = wait_fd(fd, POLLOUT, deadline);
		if (w == 0)
			return MFAD_E_TIMEOUT;
		if (w < 0)
			break;
		ssize_t n = send(fd, req->data + sent, req->len - sent, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		sent += (size_t)n;
	}

	char *rbuf = malloc(MFAD_MAX_RESPONSE);
	if (rbuf == NULL)
		return MFAD_E_NOMEM;
	size_t rlen = 0;
	int err = MFAD_E_IO;
	for (;;) {
		if (rlen > 0) {
			int p = mfad_http_parse(rbuf, rlen, 0, out);
			if (p == MFAD_PARSE_OK) {
				*reusable = out->reusable;
				err = MFAD_OK;
				break;
			}
			if (p == MFAD_PARSE_ERR) {
				err = MFAD_E_PROTO;
				break;
			}
		}
		if (rlen == MFAD_MAX_RESPONSE) {
			err = MFAD_E_TOOBIG;
			break;
		}
		int w = wait_fd(fd, POLLIN, deadline);
		if (w == 0) {
			err = MFAD_E_TIMEOUT;
			break;
		}
		if (w < 0) {
			err = MFAD_E_IO;
			break;
		}
		ssize_t n = recv(fd, rbuf + rlen, MFAD_MAX_RESPONSE - rlen, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* A peer that hangs up without reading our request resets
			 * the connection after its answer: treat that as the end. */
			if (errno != ECONNRESET || rlen == 0) {
				*nothing = rlen == 0;
				err = MFAD_E_IO;
				break;
			}
			n = 0;
		}
		if (n == 0) {
			if (rlen == 0) {
				*nothing = 1;
				err = MFAD_E_IO;
			} else {
				int p = mfad_http_parse(rbuf, rlen, 1, out);
				err = p == MFAD_PARSE_OK ? MFAD_OK : MFAD_E_PROTO;
			}
			break;
		}
		rlen += (size_t)n;
	}
	explicit_bzero(rbuf, rlen);
	free(rbuf);
	return err;
}

int mfad_roundtrip(const struct mfad_conn *c, const char *path, const char *body, size_t body_len,
		   struct mfad_http_response *out)
{
	return mfad_roundtrip_keep(c, NULL, path, body, body_len, out);
}

int mfad_roundtrip_keep(const struct mfad_conn *c, struct mfad_keep *k, const char *path, const char *body,
			size_t body_len, struct mfad_http_response *out)
{
	out->status = 0;
	out->body = NULL;
	out->body_len = 0;
	out->reusable = 0;
	if (!valid_path(path) || strlen(path) > 512 || body_len > MFAD_MAX_REQUEST || c->timeout_ms <= 0)
		return MFAD_E_INVAL;
	long long deadline = now_ms() + c->timeout_ms;

	struct mfad_buf req;
	mfad_buf_init(&req, MFAD_MAX_REQUEST + 1024);
	char head[1024];
	int hn = snprintf(head, sizeof head,
			  "POST %s HTTP/1.1\r\nHost: mfad\r\n"
			  "Content-Type: application/json\r\nAccept: application/json\r\n"
			  "%sContent-Length: %zu\r\n\r\n",
			  path, k == NULL ? "Connection: close\r\n" : "", body_len);
	if (hn < 0 || (size_t)hn >= sizeof head || mfad_buf_add(&req, head, (size_t)hn) < 0 ||
	    mfad_buf_add(&req, body, body_len) < 0) {
		mfad_buf_wipe(&req);
		return MFAD_E_NOMEM;
	}

	int fd = -1, reused = 0, err;
	if (k != NULL && k->fd >= 0) {
		if (still_open(k->fd)) {
			fd = k->fd;
			reused = 1;
		} else {
			close(k->fd);
		}
		k->fd = -1;
	}
	for (;;) {
		if (fd < 0 && (err = connect_socket(c, deadline, &fd)) != MFAD_OK)
			break;
		int nothing, reusable;
		err = exchange(fd, &req, deadline, out, &nothing, &reusable);
		if (err != MFAD_OK && reused && nothing) {
			/* The daemon closed the kept connection before reading
			 * the request: send it on a new one. */
			close(fd);
			fd = -1;
			reused = 0;
			continue;
		}
		if (err == MFAD_OK && k != NULL && reusable)
			k->fd = fd;
		else
			close(fd);
		break;
	}
	mfad_buf_wipe(&req);
	return err;
}

/* ---- JSON bodies ---- */

static struct json_object *parse_object(const char *body, size_t len)
{
	if (len == 0 || len > MFAD_MAX_RESPONSE || memchr(body, '\0', len) != NULL)
		return NULL;
	while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r' || body[len - 1] == ' ' ||
			   body[len - 1] == '\t'))
		len--;
	if (len == 0)
		return NULL;
	struct json_tokener *tok = json_tokener_new_ex(MFAD_JSON_DEPTH);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *obj = json_tokener_parse_ex(tok, body, (int)len);
	if (obj != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
			    json_tokener_get_parse_end(tok) != len || !json_object_is_type(obj, json_type_object))) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/* get_string returns the string member key of obj and its length, or NULL
 * when it is absent or not a string. */
static const char *get_string(struct json_object *obj, const char *key, size_t *n)
{
	struct json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	int l = json_object_get_string_len(v);
	if (l < 0)
		return NULL;
	*n = (size_t)l;
	return json_object_get_string(v);
}

/* get_count returns the non-negative integer member key of obj (clamped to
 * INT_MAX), or -1 when it is absent or not an integer. */
static int get_count(struct json_object *obj, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	int64_t n = json_object_get_int64(v);
	if (n < 0)
		return 0;
	return n > INT_MAX ? INT_MAX : (int)n;
}

/* get_messages copies the array of strings key of obj into m. */
static void get_messages(struct json_object *obj, const char *key, struct mfad_messages *m)
{
	struct json_object *a;
	m->n = 0;
	if (!json_object_object_get_ex(obj, key, &a) || !json_object_is_type(a, json_type_array))
		return;
	size_t count = json_object_array_length(a);
	for (size_t i = 0; i < count && m->n < MFAD_MESSAGES_MAX; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);
		if (v == NULL || !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) <= 0)
			continue;
		copy_text(m->line[m->n], sizeof m->line[m->n], json_object_get_string(v),
			  (size_t)json_object_get_string_len(v));
		m->n++;
	}
}

/* get_token copies the string member key of obj into dst (size
 * MFAD_TOKEN_MAX + 1) when it is 1..MFAD_TOKEN_MAX printable ASCII
 * characters without spaces; otherwise dst is left empty. */
static void get_token(struct json_object *obj, const char *key, char *dst)
{
	size_t n;
	const char *s = get_string(obj, key, &n);
	dst[0] = '\0';
	if (s == NULL || n == 0 || n > MFAD_TOKEN_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static int get_bool(struct json_object *obj, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

static int str_is(const char *s, size_t n, const char *want)
{
	return s != NULL && strlen(want) == n && memcmp(s, want, n) == 0;
}

unsigned mfad_method_bit(const char *name)
{
	if (strcmp(name, "u2f") == 0)
		return MFAD_METHOD_U2F;
	if (strcmp(name, "totp") == 0)
		return MFAD_METHOD_TOTP;
	if (strcmp(name, "sms") == 0)
		return MFAD_METHOD_SMS;
	if (strcmp(name, "recovery") == 0)
		return MFAD_METHOD_RECOVERY;
	return 0;
}

static unsigned method_bit_n(const char *s, size_t n)
{
	char name[16];
	if (s == NULL || n >= sizeof name || memchr(s, '\0', n) != NULL)
		return 0;
	memcpy(name, s, n);
	name[n] = '\0';
	return mfad_method_bit(name);
}

int mfad_valid_login_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > MFAD_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
		      c == '_'))
			return 0;
	}
	return 1;
}

int mfad_parse_login(const char *body, size_t len, struct mfad_login *out)
{
	memset(out, 0, sizeof *out);
	out->expires_in_s = -1;
	struct json_object *obj = parse_object(body, len);
	if (obj == NULL)
		return -1;
	int rc = -1;
	size_t n;
	const char *s = get_string(obj, "decision", &n);
	if (s == NULL)
		goto done;
	if (str_is(s, n, "allow"))
		out->decision = MFAD_DECISION_ALLOW;
	else if (str_is(s, n, "challenge"))
		out->decision = MFAD_DECISION_CHALLENGE;
	else if (str_is(s, n, "deny"))
		out->decision = MFAD_DECISION_DENY;
	else if (str_is(s, n, "ignore"))
		out->decision = MFAD_DECISION_IGNORE;
	else
		out->decision = MFAD_DECISION_UNKNOWN;

	s = get_string(obj, "login_id", &n);
	if (s != NULL) {
		if (n > MFAD_ID_MAX || memchr(s, '\0', n) != NULL)
			goto done;
		memcpy(out->login_id, s, n);
		out->login_id[n] = '\0';
		if (n > 0 && !mfad_valid_login_id(out->login_id))
			goto done;
	}
	if (out->decision == MFAD_DECISION_CHALLENGE && out->login_id[0] == '\0')
		goto done;

	struct json_object *ms;
	if (json_object_object_get_ex(obj, "methods", &ms) && json_object_is_type(ms, json_type_array)) {
		size_t count = json_object_array_length(ms);
		for (size_t i = 0; i < count && i < 16; i++) {
			struct json_object *m = json_object_array_get_idx(ms, i);
			if (m != NULL && json_object_is_type(m, json_type_string))
				out->methods |= method_bit_n(json_object_get_string(m),
							     (size_t)json_object_get_string_len(m));
		}
	}
	s = get_string(obj, "default", &n);
	out->default_method = method_bit_n(s, n) & out->methods;
	if ((s = get_string(obj, "prompt", &n)) != NULL)
		copy_text(out->prompt, sizeof out->prompt, s, n);
	if ((s = get_string(obj, "reason", &n)) != NULL)
		copy_text(out->reason, sizeof out->reason, s, n);
	out->expires_in_s = get_count(obj, "expires_in_s");
	out->remember = get_bool(obj, "remember");
	get_messages(obj, "messages", &out->messages);
	rc = 0;
done:
	json_object_put(obj);
	return rc;
}

int mfad_parse_verify(const char *body, size_t len, struct mfad_verify *out)
{
	memset(out, 0, sizeof *out);
	out->attempts_left = out->retry_after_s = out->recovery_codes_left = -1;
	struct json_object *obj = parse_object(body, len);
	if (obj == NULL)
		return -1;
	int rc = -1;
	size_t n;
	const char *s = get_string(obj, "result", &n);
	if (s == NULL)
		goto done;
	if (str_is(s, n, "ok"))
		out->result = MFAD_RESULT_OK;
	else if (str_is(s, n, "fail"))
		out->result = MFAD_RESULT_FAIL;
	else if (str_is(s, n, "locked"))
		out->result = MFAD_RESULT_LOCKED;
	else
		out->result = MFAD_RESULT_UNKNOWN;
	s = get_string(obj, "method", &n);
	out->method = method_bit_n(s, n);
	out->attempts_left = get_count(obj, "attempts_left");
	out->retry_after_s = get_count(obj, "retry_after_s");
	out->recovery_codes_left = get_count(obj, "recovery_codes_left");
	out->recovery_codes_low = get_bool(obj, "recovery_codes_low");
	if ((s = get_string(obj, "reason", &n)) != NULL)
		copy_text(out->reason, sizeof out->reason, s, n);
	if ((s = get_string(obj, "message", &n)) != NULL)
		copy_text(out->message, sizeof out->message, s, n);
	get_token(obj, "remember_token", out->remember_token);
	get_messages(obj, "messages", &out->messages);
	rc = 0;
done:
	json_object_put(obj);
	return rc;
}

int mfad_parse_sms(const char *body, size_t len, struct mfad_sms *out)
{
	memset(out, 0, sizeof *out);
	out->expires_in_s = -1;
	struct json_object *obj = parse_object(body, len);
	if (obj == NULL)
		return -1;
	int rc = -1;
	size_t n;
	const char *s = get_string(obj, "sent_to", &n);
	if (s != NULL) {
		copy_text(out->sent_to, sizeof out->sent_to, s, n);
		out->expires_in_s = get_count(obj, "expires_in_s");
		rc = 0;
	}
	json_object_put(obj);
	return rc;
}

int mfad_parse_error(const char *body, size_t len, struct mfad_api_error *out)
{
	memset(out, 0, sizeof *out);
	struct json_object *obj = parse_object(body, len);
	if (obj == NULL)
		return -1;
	int rc = -1;
	struct json_object *e;
	size_t n;
	const char *s;
	if (json_object_object_get_ex(obj, "error", &e) && json_object_is_type(e, json_type_object) &&
	    (s = get_string(e, "code", &n)) != NULL) {
		copy_text(out->code, sizeof out->code, s, n);
		if ((s = get_string(e, "message", &n)) != NULL)
			copy_text(out->message, sizeof out->message, s, n);
		rc = 0;
	}
	json_object_put(obj);
	return rc;
}
