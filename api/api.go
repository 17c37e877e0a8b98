// Package api serves mfad's HTTP/1.1 + JSON API under /v1 on a Unix socket.
//
// Every connection is identified by the kernel (SO_PEERCRED) and mapped to
// roles by an Authorizer: "login" callers run login flows for any user,
// "admin" callers do everything, and any other local user manages only its
// own enrollment ("self"). The routes and their bodies are described by the
// OpenAPI document served at /v1/openapi.yaml (api/openapi.yaml); a test
// fails when a route is missing from it.
//
// Errors always have the shape {"error":{"code":"...","message":"..."}}
// with a stable code (see package wire). Internal causes go to the log, never
// to the caller. Request bodies are bounded, and each request gets read and
// write deadlines. The login path (POST /v1/login, POST /v1/login/{id}/verify,
// POST /v1/verify) answers an unknown user exactly like a wrong code.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/metrics"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

// OpenAPI is the API contract, served at GET /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Limits are the reloadable per-request limits.
type Limits struct {
	MaxRequestBytes int64
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
}

// maxRestoreBytes bounds a restore upload.
const maxRestoreBytes = 8 << 30

// Options configure a Server.
type Options struct {
	Service    *service.Service
	Store      *store.DB
	Authorizer *Authorizer
	Log        *slog.Logger
	Limits     Limits
	Version    string
	// StoreDir is reported to admins in /v1/status.
	StoreDir string
	// Simulated is true when the daemon drives simulated hardware.
	Simulated bool
	// U2FKeys lists the plugged security keys for /v1/status; nil when
	// there is no U2F hardware.
	U2FKeys func() ([]wire.U2FKey, error)
	// Modems lists the modems for /v1/status; nil when there are none.
	Modems func() []wire.Modem
	// Metrics records request latencies and serves GET /metrics; nil
	// disables both.
	Metrics *metrics.Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the socket API. Create it with New.
type Server struct {
	opts    Options
	log     *slog.Logger
	limits  atomic.Pointer[Limits]
	started time.Time
	http    *http.Server
	mux     *http.ServeMux
	fair    fairness
}

// route is one API endpoint. The table of routes is the single source both
// for the mux and for the OpenAPI completeness test.
type route struct {
	method, path string
	handler      func(*Server, http.ResponseWriter, *http.Request, *Identity) error
}

func routes() []route {
	return []route{
		{"GET", "/v1/status", (*Server).status},
		{"GET", "/v1/openapi.yaml", (*Server).openapi},
		{"POST", "/v1/login", (*Server).login},
		{"POST", "/v1/login/{id}/verify", (*Server).loginVerify},
		{"POST", "/v1/login/{id}/u2f", (*Server).loginU2F},
		{"POST", "/v1/login/{id}/sms", (*Server).loginSMS},
		{"POST", "/v1/users/{user}/phones", (*Server).enrollPhone},
		{"POST", "/v1/users/{user}/phones/{id}/confirm", (*Server).confirmPhone},
		{"POST", "/v1/sms/test", (*Server).smsTest},
		{"POST", "/v1/verify", (*Server).verify},
		{"GET", "/v1/users/{user}", (*Server).getUser},
		{"DELETE", "/v1/users/{user}", (*Server).deleteUser},
		{"POST", "/v1/users/{user}/totp", (*Server).enrollTOTP},
		{"POST", "/v1/users/{user}/totp/{id}/confirm", (*Server).confirmTOTP},
		{"POST", "/v1/users/{user}/recovery-codes", (*Server).recoveryCodes},
		{"POST", "/v1/users/{user}/u2f", (*Server).enrollU2F},
		{"DELETE", "/v1/users/{user}/factors/{id}", (*Server).deleteFactor},
		{"POST", "/v1/users/{user}/reauth", (*Server).reauth},
		{"PUT", "/v1/users/{user}/preferences", (*Server).preferences},
		{"GET", "/v1/users/{user}/devices", (*Server).devices},
		{"DELETE", "/v1/users/{user}/devices", (*Server).revokeDevices},
		{"DELETE", "/v1/users/{user}/devices/{id}", (*Server).revokeDevices},
		{"POST", "/v1/users/{user}/unlock", (*Server).unlock},
		{"POST", "/v1/users/{user}/recovery-requests", (*Server).openRecoveryRequest},
		{"GET", "/v1/users/{user}/recovery-requests", (*Server).getRecoveryRequest},
		{"POST", "/v1/users/{user}/recovery-requests/cancel", (*Server).cancelRecoveryRequest},
		{"POST", "/v1/users/{user}/bypass", (*Server).grantBypass},
		{"DELETE", "/v1/users/{user}/bypass", (*Server).endBypass},
		{"GET", "/v1/audit", (*Server).audit},
		{"GET", "/v1/backup", (*Server).backup},
		{"POST", "/v1/restore", (*Server).restore},
		{"GET", "/metrics", (*Server).metrics},
	}
}

// New returns a Server. Call Serve with a listener.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Log.With("component", "api"), mux: http.NewServeMux()}
	s.started = s.now()
	s.limits.Store(&opts.Limits)
	for _, r := range routes() {
		r := r
		s.mux.HandleFunc(r.method+" "+r.path, func(w http.ResponseWriter, req *http.Request) {
			s.serve(w, req, r)
		})
	}
	s.http = &http.Server{
		Handler:           s,
		ConnContext:       opts.Authorizer.connContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// SetLimits replaces the per-request limits (config reload).
func (s *Server) SetLimits(l Limits) { s.limits.Store(&l) }

// Handler returns the API's HTTP handler (without connection identities;
// for tests that inject an identity with WithIdentity).
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP routes a request. Unknown routes and methods get the API's
// error shape instead of the mux's plain-text answers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // sets the path values
		return
	}
	// The mux answers 404 or 405 (with an Allow header); keep its status.
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	if probe.status == http.StatusMethodNotAllowed {
		writeError(w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, "method "+r.Method+" is not allowed here; allowed: "+probe.header.Get("Allow"))
		return
	}
	writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such route: "+r.Method+" "+r.URL.Path)
}

// statusProbe captures the status the mux would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }

// WithIdentity returns ctx carrying id, as the server does for each
// connection.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// Serve accepts connections on l until Shutdown. It returns nil after a
// graceful shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// serve is the common wrapper of every route: identity, deadlines, body
// limit, error mapping and the access log.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt route) {
	start := time.Now()
	id := identityFrom(r.Context())
	lim := s.limits.Load()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(start.Add(lim.ReadTimeout))
	_ = rc.SetWriteDeadline(start.Add(lim.WriteTimeout))
	if rt.path != "/v1/restore" {
		r.Body = http.MaxBytesReader(w, r.Body, lim.MaxRequestBytes)
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxRestoreBytes)
	}
	var err error
	switch {
	case id == nil:
		err = &apiError{status: http.StatusUnauthorized, code: wire.CodeUnauthorized, msg: "caller could not be identified (SO_PEERCRED)"}
	case !id.Login && !id.Admin:
		// A self caller waits for its own turn, at most until its deadline.
		ctx, cancel := context.WithDeadline(r.Context(), start.Add(lim.WriteTimeout))
		release, ferr := s.fair.acquire(ctx, id.UID)
		cancel()
		if ferr != nil {
			err = throttled
			break
		}
		err = rt.handler(s, w, r, id)
		release()
	default:
		err = rt.handler(s, w, r, id)
	}
	status := http.StatusOK
	if err != nil {
		status = s.writeErr(w, r, err)
	}
	elapsed := time.Since(start)
	s.opts.Metrics.Request(rt.path, status, elapsed)
	level, msg := slog.LevelDebug, "request"
	if status == http.StatusForbidden || status == http.StatusUnauthorized {
		level, msg = slog.LevelWarn, "request refused"
	}
	// The access log is off at the default level: build its attributes only
	// when it is written, not on every request of the hot path.
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []any{"method", r.Method, "path", rt.path, "status", status, "duration", elapsed}
	if id != nil {
		attrs = append(attrs, "uid", id.UID, "gid", id.GID, "pid", id.PID)
	}
	s.log.Log(r.Context(), level, msg, attrs...)
}

// apiError is an error with a status and a message safe for the caller.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func forbidden(msg string) error {
	return &apiError{status: http.StatusForbidden, code: wire.CodeForbidden, msg: msg}
}

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: wire.CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// writeErr maps err to the error shape and returns the status written.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) int {
	var ae *apiError
	var ce *service.CodeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = &apiError{http.StatusRequestEntityTooLarge, wire.CodeTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &ce):
		ae = &apiError{http.StatusUnprocessableEntity, wire.CodeCodeRejected, ce.Error()}
	case errors.Is(err, service.ErrInvalidInput):
		ae = &apiError{http.StatusBadRequest, wire.CodeBadRequest, err.Error()}
	case errors.Is(err, service.ErrLoginExpired):
		ae = &apiError{http.StatusNotFound, wire.CodeLoginExpired, "login is unknown, expired or already finished; start a new login"}
	case errors.Is(err, service.ErrNotFound):
		ae = &apiError{http.StatusNotFound, wire.CodeNotFound, "not found"}
	case errors.Is(err, service.ErrU2FUnavailable):
		ae = &apiError{http.StatusServiceUnavailable, wire.CodeUnavailable, "this daemon drives no U2F hardware"}
	case errors.Is(err, service.ErrU2FDevice):
		s.log.Warn("security key failed", "err", err)
		ae = &apiError{http.StatusServiceUnavailable, wire.CodeUnavailable, "the security key stopped answering (pulled out?); plug it in and try again"}
	case errors.Is(err, service.ErrU2FUntrusted):
		ae = &apiError{http.StatusUnprocessableEntity, wire.CodeCodeRejected, "this security key's maker is not on the attestation allow-list (u2f.attestation_ca_file)"}
	case errors.Is(err, service.ErrU2FNoKey):
		ae = &apiError{http.StatusConflict, wire.CodeConflict, "no security key is plugged in"}
	case errors.Is(err, service.ErrU2FTimeout):
		ae = &apiError{http.StatusRequestTimeout, wire.CodeTimeout, "the security key was not touched in time"}
	case errors.Is(err, service.ErrSMSUnavailable):
		ae = &apiError{http.StatusServiceUnavailable, wire.CodeUnavailable, "no modem is ready to send text messages; use another method"}
	case errors.Is(err, service.ErrSMSLimited):
		ae = &apiError{http.StatusTooManyRequests, wire.CodeRateLimited, strings.TrimPrefix(err.Error(), service.ErrSMSLimited.Error()+": ")}
	case errors.Is(err, service.ErrReauthRequired):
		ae = &apiError{http.StatusForbidden, wire.CodeReauthRequired,
			"this change weakens the account: prove a second factor first (POST /v1/users/{user}/reauth) and send the proof in the " + wire.ProofHeader + " header"}
	case errors.Is(err, service.ErrConflict):
		ae = &apiError{http.StatusConflict, wire.CodeConflict, err.Error()}
	case errors.Is(err, store.ErrBadBackup):
		ae = &apiError{http.StatusBadRequest, wire.CodeBadRequest, "backup rejected: " + err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		ae = &apiError{http.StatusServiceUnavailable, wire.CodeUnavailable, "request cancelled or timed out"}
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{http.StatusInternalServerError, wire.CodeInternal, "internal error; see the daemon's log"}
	}
	writeError(w, ae.status, ae.code, ae.msg)
	return ae.status
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.Error{Error: wire.ErrorBody{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads exactly one JSON object into v, refusing unknown fields and
// trailing data. An empty body decodes as {} when allowEmpty.
func decode(r *http.Request, v any, allowEmpty bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	return DecodeBody(body, v, allowEmpty)
}

// DecodeBody is the request-body decoder (exported for fuzzing and reuse).
func DecodeBody(body []byte, v any, allowEmpty bool) error {
	if len(body) == 0 {
		if allowEmpty {
			return nil
		}
		return &apiError{http.StatusBadRequest, wire.CodeInvalidJSON, "request body is empty; a JSON object is required"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{http.StatusBadRequest, wire.CodeInvalidJSON, "invalid JSON body: " + jsonProblem(err)}
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return &apiError{http.StatusBadRequest, wire.CodeInvalidJSON, "invalid JSON body: trailing data after the object"}
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type.String())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}
