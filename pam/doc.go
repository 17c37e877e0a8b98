// Package pam holds pam_mfad.so, the PAM module that puts mfad's second
// factor into sshd, login, su, sudo and display managers, and the tests
// that run it in real PAM stacks. It has no Go API: the module is C, so no
// Go runtime is ever loaded into the processes that use it (they fork
// after loading modules, which a Go runtime does not survive).
//
// # Building and installing
//
//	make -C pam                       # pam/pam_mfad.so
//	sudo make -C pam install          # into $(pkg-config --variable=libdir pam)/security
//
// The module needs libc, libpam and json-c (Debian: libpam0g-dev and
// libjson-c-dev to build; libjson-c5 at run time). On Debian amd64 it is
// installed as /usr/lib/x86_64-linux-gnu/security/pam_mfad.so (the same
// directory as /lib/x86_64-linux-gnu/security on merged-/usr systems). It is
// compiled with -Wall -Wextra -Werror -O2 -D_FORTIFY_SOURCE=2
// -fstack-protector-strong -fPIC, linked with full RELRO, and exports only
// pam_sm_authenticate and pam_sm_setcred.
//
// A stack uses it after the password (or public key) step:
//
//	auth required pam_mfad.so socket=/run/mfad/mfad.sock failmode=secure
//
// packaging/pam.d/ has commented examples for sshd, sudo and login.
//
// # What it does
//
// pam_sm_authenticate sends POST /v1/login with the user (PAM_USER), the
// service (PAM_SERVICE), the remote host (PAM_RHOST) and the terminal
// (PAM_TTY). The daemon's message lines (enrolment reminders and such) are
// shown as PAM_TEXT_INFO. On "allow" the module succeeds; on "challenge" it
// runs the daemon's methods through the PAM conversation:
//
//   - U2F (offered by the daemon only for local logins, when it is the
//     default): "Touch your security key." as an info message, then
//     POST /v1/login/{id}/u2f, which waits for the touch. If no key answers,
//     it falls back to a code.
//   - Codes: the daemon's prompt (echo off); each answer is sent to
//     POST /v1/login/{id}/verify. The daemon tells TOTP and recovery codes
//     apart by their shape. After a recovery code the user is told how many
//     are left.
//   - SMS, when the daemon offers it: an empty answer or "sms" asks
//     POST /v1/login/{id}/sms, the user sees "Code sent to +44••••••3456."
//     and is prompted again. The first two such requests of a login do not
//     use up a try; later ones do, and send nothing.
//
// At most tries= codes are checked per call (default 3); "locked" stops at
// once. The daemon's messages are shown as PAM_ERROR_MSG or PAM_TEXT_INFO
// (not with PAM_SILENT), with control characters replaced.
//
// Remember-device tokens go through the PAM environment, because only the
// application knows the device. An application that stored a token sets
// MFAD_DEVICE_TOKEN (pam_putenv) before pam_authenticate; the module sends
// it as "device_token", and a policy with remember_device lets the login in.
// With the remember option, when the login's policy issues tokens, the
// module asks for one ("remember": true) with the code and puts it in
// MFAD_REMEMBER_TOKEN (pam_getenv) and in pam_set_data under
// "mfad_remember_token" for later modules. Do not set remember for sshd:
// sshd copies the PAM environment into the user's shell environment, and
// has nowhere to keep a token for the client.
//
// # Options
//
//	socket=PATH        the daemon's socket (default /run/mfad/mfad.sock)
//	timeout=SECONDS    deadline of each request, 1..600 (default 10)
//	u2f_timeout=SEC    deadline of the security-key step, which waits for a
//	                   touch; keep it above the daemon's u2f.timeout (default 60)
//	tries=N            codes checked per authentication, 1..10 (default 3)
//	failmode=secure    when the daemon cannot be reached: refuse (default)
//	failmode=open      when the daemon cannot be reached: let the user in,
//	                   logged at LOG_WARNING on every such login
//	daemon_user=NAME   the daemon must run as root or as this user (default
//	                   mfad); checked with SO_PEERCRED before anything is sent
//	remember           ask for remember-device tokens (see above)
//	debug              log each step at LOG_DEBUG (never a code)
//
// An unknown or invalid option makes the module return PAM_SERVICE_ERR and
// log why, rather than run with a configuration nobody wrote.
//
// "Cannot be reached" means the first request of a login could not be
// completed: no socket, connection refused, the deadline passed, or the
// connection dropped. It does not include a daemon that answers with an
// error, an answer that is malformed, a socket served by a process of
// another user, or any failure after the daemon has answered the login:
// those always fail closed.
//
// # Return codes
//
//	PAM_SUCCESS           decision "allow"; a code or key accepted; or the
//	                      daemon unreachable with failmode=open
//	PAM_AUTH_ERR          decision "deny" (PAM_PERM_DENIED is not among the
//	                      codes pam_sm_authenticate(3) may return, and stacks
//	                      treat both as a failed authentication); an unknown
//	                      decision or result; a login that expired; a
//	                      request the daemon refused as malformed; an invalid
//	                      user name
//	PAM_MAXTRIES          tries= wrong codes, or the daemon answered "locked"
//	                      (the user is locked out, so more prompts would only
//	                      count more failures; sshd disconnects on it)
//	PAM_AUTHINFO_UNAVAIL  the daemon unreachable with failmode=secure, a
//	                      malformed answer, an untrusted socket owner, a 5xx
//	                      answer, or a caller without the daemon's login role
//	PAM_IGNORE            decision "ignore" (the daemon does not send it yet)
//	PAM_CONV_ERR          the conversation failed (e.g. the client went away)
//	PAM_SERVICE_ERR       an invalid module option
//
// pam_sm_setcred returns PAM_SUCCESS.
//
// # Safety inside login programs
//
// The module starts no threads and keeps no global state: everything lives
// on the stack or in PAM's own data for one call. Each request uses a new
// connection (SOCK_CLOEXEC, MSG_NOSIGNAL so a dying daemon cannot raise
// SIGPIPE in the host), and every connect, write and read waits in poll()
// for the time left before the request's deadline. Responses are limited to
// 64 KiB, parsed as HTTP/1.1 (Content-Length or chunked; ambiguous framing
// is refused) and as JSON by json-c with a depth limit and UTF-8
// validation. Request bodies are written with a small JSON string encoder
// that refuses invalid UTF-8. Codes are wiped from memory after use and
// never logged; logs carry the user, service and remote host.
//
// # Tests
//
// The tests build the module with make, the mfad binary with go build, and
// a sanitizer-instrumented driver of the socket, HTTP and JSON code
// (src/harness.c), then run:
//
//   - pamtester (Debian package pamtester) against PAM service files in
//     /etc/pam.d/mfad-test-* that use the module: TOTP (codes from
//     oathtool), wrong, replayed and recovery codes, lockout, an unknown
//     user, PAM_SILENT, the security key of `mfad serve --sim`, SMS codes
//     through the daemon's modem driver and a simulated modem (package
//     sim), remember-device tokens (seen by pam_exec), a policy that
//     allows, a hung, stopped or foreign daemon under both failmodes,
//     invalid options, and the mfad lines of packaging/pam.d/*;
//   - a real OpenSSH sshd on a loopback port, started through a symlink so
//     that it uses the PAM service /etc/pam.d/mfad-test-sshd-* (the shipped
//     packaging/pam.d/sshd), with AuthenticationMethods
//     publickey,keyboard-interactive, driven by a Go SSH client: TOTP,
//     wrong codes, a recovery code (its "codes left" notice seen in an
//     interactive shell on a pseudo-terminal) and a command run;
//   - table tests and fuzzers for the HTTP and JSON parsers and the JSON
//     encoder, checked against Go's net/http and encoding/json, round trips
//     against hung, dripping, endless and vanishing peers, and a
//     LeakSanitizer run;
//   - with the module's own log captured on /dev/log when the machine has
//     no syslog daemon: what it logs, and that no code is ever logged.
//
// They need root (PAM service files live in /etc/pam.d) and the Debian
// packages pamtester, openssh-server, oathtool, libpam0g-dev and
// libjson-c-dev; without them they skip, or fail with MFAD_REQUIRE_TOOLS=1.
//
//	sudo MFAD_REQUIRE_TOOLS=1 go test -race ./pam/
//	go test -run '^$' -fuzz FuzzHTTPResponse -fuzztime 1m -fuzzminimizetime 10s ./pam/
//
// See bench_test.go for the PAM benchmark against pam_google_authenticator
// and pam_oath.
package pam
