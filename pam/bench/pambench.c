/*
 * pambench: measures the cost of one authentication through PAM.
 *
 *	pambench [-r RHOST] [-l LATENCY_FILE] SERVICE USERS_FILE
 *
 * For each line "USER BASE32SECRET" of USERS_FILE, in order, it runs
 * pam_start(SERVICE, USER), pam_authenticate and pam_end, with a
 * conversation that answers every prompt with USER's current TOTP code
 * (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), and times the three
 * calls together. Each user authenticates once, so the one-time codes are
 * fresh whatever the module's replay protection.
 *
 * -r sets PAM_RHOST. It prints one line of JSON:
 *	{"n":N,"ok":N,"fail":N,"wall_s":S,"mean_us":U,"p50_us":U,"p90_us":U,"p99_us":U,"max_us":U}
 * and with -l writes every authentication's time in microseconds, one per
 * line, to LATENCY_FILE (to merge runs of several processes).
 *
 * Build with `make -C pam pambench` (needs libpam0g-dev and libssl-dev).
 * The Go benchmark BenchmarkPAMModules (pam/bench_test.go) drives it.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <security/pam_appl.h>

#define MAX_USERS 100000

struct user {
	char name[64];
	unsigned char key[64];
	size_t keylen;
};

static int base32_decode(const char *s, unsigned char *out, size_t max, size_t *n)
{
	uint32_t buf = 0;
	int bits = 0;
	*n = 0;
	for (; *s && *s != '='; s++) {
		int v;
		if (*s >= 'A' && *s <= 'Z')
			v = *s - 'A';
		else if (*s >= 'a' && *s <= 'z')
			v = *s - 'a';
		else if (*s >= '2' && *s <= '7')
			v = *s - '2' + 26;
		else
			return -1;
		buf = (buf << 5) | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			if (*n == max)
				return -1;
			out[(*n)++] = (unsigned char)(buf >> (bits - 8));
			bits -= 8;
		}
	}
	return 0;
}

static void totp(const struct user *u, char code[7])
{
	uint64_t counter = (uint64_t)time(NULL) / 30;
	unsigned char msg[8], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	for (int i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)(counter & 0xff);
		counter >>= 8;
	}
	HMAC(EVP_sha1(), u->key, (int)u->keylen, msg, sizeof msg, mac, &maclen);
	int off = mac[maclen - 1] & 0x0f;
	uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
		       ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
	snprintf(code, 7, "%06u", bin % 1000000);
}

/* conv answers every prompt with the code in appdata. */
static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *appdata)
{
	struct pam_response *r = calloc((size_t)n, sizeof *r);
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			r[i].resp = strdup(appdata);
			if (r[i].resp == NULL) {
				for (int j = 0; j < i; j++)
					free(r[j].resp);
				free(r);
				return PAM_BUF_ERR;
			}
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *rhost = NULL, *latfile = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "r:l:")) != -1) {
		if (opt == 'r')
			rhost = optarg;
		else if (opt == 'l')
			latfile = optarg;
		else
			return 2;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: pambench [-r RHOST] [-l LATENCY_FILE] SERVICE USERS_FILE\n");
		return 2;
	}
	const char *service = argv[optind], *usersfile = argv[optind + 1];
	FILE *f = fopen(usersfile, "r");
	if (f == NULL) {
		perror(usersfile);
		return 2;
	}
	struct user *users = calloc(MAX_USERS, sizeof *users);
	double *lat = calloc(MAX_USERS, sizeof *lat);
	if (users == NULL || lat == NULL)
		return 2;
	size_t n = 0;
	char name[64], secret[256];
	while (n < MAX_USERS && fscanf(f, "%63s %255s", name, secret) == 2) {
		strcpy(users[n].name, name);
		if (base32_decode(secret, users[n].key, sizeof users[n].key, &users[n].keylen) < 0) {
			fprintf(stderr, "%s: bad secret for %s\n", usersfile, name);
			return 2;
		}
		n++;
	}
	fclose(f);

	size_t ok = 0, fail = 0;
	double start = now_us();
	for (size_t i = 0; i < n; i++) {
		char code[7];
		totp(&users[i], code);
		struct pam_conv c = {conv, code};
		pam_handle_t *pamh = NULL;
		double t0 = now_us();
		int r = pam_start(service, users[i].name, &c, &pamh);
		if (r == PAM_SUCCESS && rhost != NULL)
			r = pam_set_item(pamh, PAM_RHOST, rhost);
		if (r == PAM_SUCCESS)
			r = pam_authenticate(pamh, PAM_SILENT);
		if (r == PAM_SUCCESS)
			ok++;
		else
			fail++;
		if (r != PAM_SUCCESS && fail <= 3)
			fprintf(stderr, "%s: %s\n", users[i].name, pam_strerror(pamh, r));
		if (pamh != NULL)
			pam_end(pamh, r);
		lat[i] = now_us() - t0;
	}
	double wall = (now_us() - start) / 1e6;
	if (latfile != NULL) {
		FILE *lf = fopen(latfile, "w");
		if (lf == NULL) {
			perror(latfile);
			return 2;
		}
		for (size_t i = 0; i < n; i++)
			fprintf(lf, "%.1f\n", lat[i]);
		if (fclose(lf) != 0) {
			perror(latfile);
			return 2;
		}
	}
	qsort(lat, n, sizeof *lat, cmp);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += lat[i];
#define PCT(p) (n ? lat[(size_t)((double)(n - 1) * (p))] : 0)
	printf("{\"n\":%zu,\"ok\":%zu,\"fail\":%zu,\"wall_s\":%.6f,\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
	       "\"p99_us\":%.1f,\"max_us\":%.1f}\n",
	       n, ok, fail, wall, n ? sum / (double)n : 0, PCT(0.50), PCT(0.90), PCT(0.99), n ? lat[n - 1] : 0);
	free(users);
	free(lat);
	return fail ? 1 : 0;
}
