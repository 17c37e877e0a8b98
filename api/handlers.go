package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

func caller(id *Identity) service.Caller { return service.Caller{UID: id.UID, Admin: id.Admin} }

// weakening is the caller of a request that may weaken an account: it
// carries the proof from the X-MFAD-Proof header.
func weakening(id *Identity, r *http.Request) service.Caller {
	c := caller(id)
	c.Proof = r.Header.Get(wire.ProofHeader)
	return c
}

func needLogin(id *Identity) error {
	if !id.Login {
		return forbidden("this route needs the login role (root or a member of server.login_groups)")
	}
	return nil
}

func needAdmin(id *Identity) error {
	if !id.Admin {
		return forbidden("this route needs the admin role (root or a member of server.admin_groups)")
	}
	return nil
}

// userParam returns the {user} path value if id may manage it.
func userParam(r *http.Request, id *Identity) (string, error) {
	u := r.PathValue("user")
	if err := service.ValidateUserName(u); err != nil {
		return "", err
	}
	if !id.mayManage(u) {
		return "", forbidden("you may only manage your own user")
	}
	return u, nil
}

// userRequest returns the {user} path value, which the caller must be
// allowed to manage, and the decoded JSON body (optional: an empty body is
// the zero T).
func userRequest[T any](r *http.Request, id *Identity, optional bool) (string, T, error) {
	var body T
	u, err := userParam(r, id)
	if err != nil {
		return "", body, err
	}
	return u, body, decode(r, &body, optional)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, id *Identity) error {
	now := s.now()
	st := wire.Status{
		Version:   s.opts.Version,
		StartedAt: s.started.UTC(),
		UptimeS:   int64(now.Sub(s.started) / time.Second),
		Caller:    wire.Caller{UID: id.UID, GID: id.GID, PID: id.PID, User: id.User, Roles: id.Roles()},
		Hardware:  wire.HardwareStatus{Simulated: s.opts.Simulated, U2FKeys: []wire.U2FKey{}},
	}
	if s.opts.U2FKeys != nil {
		keys, err := s.opts.U2FKeys()
		if keys != nil {
			st.Hardware.U2FKeys = keys
		}
		if err != nil {
			st.Hardware.U2FError = err.Error()
		}
	}
	st.Hardware.Modems = []wire.Modem{}
	if s.opts.Modems != nil {
		st.Hardware.Modems = s.opts.Modems()
	}
	if id.Admin && s.opts.Store != nil {
		lsm, vlog := s.opts.Store.Badger().Size()
		st.Store = &wire.StoreStatus{Dir: s.opts.StoreDir, LSMBytes: lsm, VlogBytes: vlog, Schema: store.SchemaVersion}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needAdmin(id); err != nil {
		return err
	}
	if s.opts.Metrics == nil {
		return &apiError{http.StatusNotFound, wire.CodeNotFound, "metrics are disabled"}
	}
	s.opts.Metrics.Handler().ServeHTTP(w, r)
	return nil
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request, id *Identity) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
	return nil
}

func methodsToWire(ms []policy.Method) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m)
	}
	return out
}

// prompt is the text a login stack shows for the default method.
func prompt(ms []policy.Method) string {
	if len(ms) > 0 && ms[0] == policy.MethodU2F {
		return "Touch your security key: "
	}
	return codePrompt(ms)
}

// codePrompt names the code methods of a login: "Verification code
// (authenticator app, SMS or recovery code): ".
func codePrompt(ms []policy.Method) string {
	names := map[policy.Method]string{policy.MethodTOTP: "authenticator app", policy.MethodSMS: "SMS", policy.MethodRecovery: "recovery code"}
	var parts []string
	sms := false
	for _, m := range ms {
		if n, ok := names[m]; ok {
			parts = append(parts, n)
			sms = sms || m == policy.MethodSMS
		}
	}
	if len(parts) == 1 && parts[0] == "recovery code" {
		return "Recovery code: "
	}
	what := ""
	switch len(parts) {
	case 0:
		return "Verification code: "
	case 1:
		what = parts[0]
	default:
		what = strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
	}
	if sms {
		what += "; press Enter to get a code by SMS"
	}
	return "Verification code (" + what + "): "
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needLogin(id); err != nil {
		return err
	}
	var req wire.LoginRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	l, err := s.opts.Service.StartLogin(r.Context(), caller(id), service.LoginRequest{
		User: req.User, Service: req.Service, RHost: req.RHost, TTY: req.TTY, DeviceToken: req.DeviceToken,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.LoginResponse{
		LoginID: l.ID, Decision: string(l.Decision), Methods: methodsToWire(l.Methods),
		Default: string(l.Default), Reason: l.Reason, ExpiresIn: int(l.Expires.Sub(s.now()) / time.Second),
		Prompt: prompt(l.Methods), Policy: l.Policy, Messages: l.Messages, Remember: l.Remember,
	})
	return nil
}

func verificationToWire(v *service.Verification) wire.VerifyResponse {
	out := wire.VerifyResponse{Result: string(v.Result), Method: string(v.Method)}
	switch v.Result {
	case service.ResultFail:
		if v.AttemptsLeft >= 0 {
			n := v.AttemptsLeft
			out.AttemptsLeft = &n
		}
		out.Reason = v.Reason
		out.Message = "code rejected"
		switch v.Reason {
		case service.ReasonNoTouch:
			out.Message = "the security key was not touched in time"
		case service.ReasonNoKey:
			out.Message = "no plugged security key is enrolled for this user"
		}
		if v.Reason == service.ReasonClockDrift {
			out.Message = "code rejected: your authenticator's clock looks out of sync (" +
				strconv.Itoa(v.DriftSteps) + " time steps); fix its time and try again"
		}
	case service.ResultLocked:
		n := int((v.RetryAfter + time.Second - 1) / time.Second)
		out.RetryAfter = &n
		out.Message = "too many failed attempts; try again later"
	case service.ResultOK:
		out.RememberToken, out.Messages = v.RememberToken, v.Messages
		if v.Method == policy.MethodRecovery {
			n := v.RecoveryRemaining
			out.RecoveryRemaining = &n
			out.RecoveryLow = v.RecoveryLow
			if v.RecoveryLow {
				out.Message = strconv.Itoa(n) + " recovery codes left; generate a new set soon"
			}
		}
	}
	return out
}

func (s *Server) loginVerify(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needLogin(id); err != nil {
		return err
	}
	var req wire.VerifyRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if req.User != "" || req.Service != "" || req.RHost != "" {
		return badRequest("user, service and rhost belong to POST /v1/login, not to the verification")
	}
	v, err := s.opts.Service.VerifyLogin(r.Context(), caller(id), r.PathValue("id"), req.Code, policy.Method(req.Method), req.Remember)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, verificationToWire(v))
	return nil
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needLogin(id); err != nil {
		return err
	}
	var req wire.VerifyRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	v, err := s.opts.Service.Verify(r.Context(), caller(id), service.VerifyRequest{
		User: req.User, Code: req.Code, Method: policy.Method(req.Method), Service: req.Service, RHost: req.RHost,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, verificationToWire(v))
	return nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func factorToWire(f service.FactorInfo) wire.Factor {
	return wire.Factor{
		ID: f.ID, Type: string(f.Type), Status: f.Status, Label: f.Label, Created: f.Created.UTC(),
		Confirmed: timePtr(f.Confirmed), LastUsed: timePtr(f.LastUsed), Phone: f.Phone,
	}
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, err := userParam(r, id)
	if err != nil {
		return err
	}
	info, err := s.opts.Service.User(u)
	if err != nil {
		return err
	}
	out := wire.User{User: info.Name, Created: info.Created.UTC(), Factors: []wire.Factor{}, Failures: info.Failures, LockedUntil: timePtr(info.LockedUntil)}
	for _, f := range info.Factors {
		out.Factors = append(out.Factors, factorToWire(f))
	}
	if info.Recovery != nil {
		out.Recovery = &wire.Recovery{Total: info.Recovery.Total, Remaining: info.Recovery.Remaining, Created: info.Recovery.Created.UTC()}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, err := userParam(r, id)
	if err != nil {
		return err
	}
	if err := s.opts.Service.DeleteUser(r.Context(), weakening(id, r), u); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) enrollTOTP(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, req, err := userRequest[wire.TOTPEnrollRequest](r, id, true)
	if err != nil {
		return err
	}
	e, err := s.opts.Service.EnrollTOTP(r.Context(), caller(id), u, req.Label)
	if err != nil {
		return err
	}
	png, err := otp.QRPNG(e.URI, 256)
	if err != nil {
		return fmt.Errorf("rendering qr code: %v", err)
	}
	writeJSON(w, http.StatusCreated, wire.TOTPEnrollResponse{
		FactorID: e.FactorID, Secret: e.Secret.Base32(), OTPAuthURI: e.URI, QRPNG: png,
		ExpiresIn: int(service.PendingTTL / time.Second),
	})
	return nil
}

func (s *Server) confirmTOTP(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, req, err := userRequest[wire.CodeRequest](r, id, false)
	if err != nil {
		return err
	}
	rc, err := s.opts.Service.ConfirmTOTP(r.Context(), caller(id), u, r.PathValue("id"), req.Code)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.ConfirmResponse{Result: "ok", RecoveryCodes: revealCodes(rc)})
	return nil
}

func (s *Server) recoveryCodes(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, err := userParam(r, id)
	if err != nil {
		return err
	}
	if err := decode(r, &struct{}{}, true); err != nil {
		return err
	}
	rc, err := s.opts.Service.GenerateRecoveryCodes(r.Context(), weakening(id, r), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wire.RecoveryCodesResponse{Codes: revealCodes(rc)})
	return nil
}

func (s *Server) enrollU2F(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, req, err := userRequest[wire.U2FEnrollRequest](r, id, true)
	if err != nil {
		return err
	}
	f, rc, err := s.opts.Service.EnrollU2F(r.Context(), caller(id), u, req.Label)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wire.U2FEnrollResponse{Factor: factorToWire(*f), RecoveryCodes: revealCodes(rc)})
	return nil
}

func (s *Server) loginU2F(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needLogin(id); err != nil {
		return err
	}
	if err := decode(r, &struct{}{}, true); err != nil {
		return err
	}
	v, err := s.opts.Service.VerifyLoginU2F(r.Context(), caller(id), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, verificationToWire(v))
	return nil
}

func (s *Server) deleteFactor(w http.ResponseWriter, r *http.Request, id *Identity) error {
	u, err := userParam(r, id)
	if err != nil {
		return err
	}
	if err := s.opts.Service.DeleteFactor(r.Context(), weakening(id, r), u, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, id *Identity) error {
	q := r.URL.Query()
	aq := store.AuditQuery{User: q.Get("user"), Action: q.Get("action")}
	if !id.Admin {
		// A self caller sees its own events only.
		if id.User == "" || (aq.User != "" && aq.User != id.User) {
			return forbidden("you may only read your own audit events")
		}
		aq.User = id.User
	}
	for name, dst := range map[string]*time.Time{"since": &aq.Since, "until": &aq.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return badRequest("%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
			}
			*dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			return badRequest("limit must be a number from 1 to 100000")
		}
		aq.Limit = n
	}
	events, err := s.opts.Service.Audit(aq)
	if err != nil {
		return err
	}
	out := wire.AuditResponse{Events: make([]wire.AuditEvent, len(events))}
	for i, e := range events {
		out.Events[i] = wire.AuditEvent{Time: e.Time.UTC(), User: e.User, Action: e.Action, Result: e.Result, Method: e.Method,
			CallerUID: e.CallerUID, Service: e.Service, RHost: e.RHost, Detail: e.Detail}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needAdmin(id); err != nil {
		return err
	}
	// Backups of a large store take longer than a normal request.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="mfad.backup"`)
	if err := s.opts.Store.Backup(w); err != nil {
		// Headers are gone; the client detects the truncated stream.
		s.log.Error("backup failed", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Server) restore(w http.ResponseWriter, r *http.Request, id *Identity) error {
	if err := needAdmin(id); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	if err := s.opts.Store.Restore(r.Body); err != nil {
		_ = s.opts.Service.Record(r.Context(), caller(id), "store.restore", "fail", "backup rejected; live data unchanged")
		return err
	}
	if err := s.opts.Service.Record(r.Context(), caller(id), "store.restore", "ok", ""); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.ConfirmResponse{Result: "ok"})
	return nil
}

// revealCodes turns a set of recovery codes into the strings shown once;
// nil stays nil.
func revealCodes(rc *service.RecoveryCodes) []string {
	if rc == nil {
		return nil
	}
	out := make([]string, len(rc.Codes))
	for i, c := range rc.Codes {
		out[i] = c.Reveal()
	}
	return out
}
