// Package client is a small Go client for mfad's /v1 socket API, used by the
// mfad CLI and usable by any Go login integration.
//
// A Client is safe for concurrent use and keeps connections alive. Every
// method honours its context. API errors are returned as *Error, carrying
// the HTTP status and the stable error code from package wire.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mfad/mfad/api/wire"
)

// DefaultSocket is where the daemon listens under systemd.
const DefaultSocket = "/run/mfad/mfad.sock"

// Client talks to one daemon over its Unix socket.
type Client struct {
	socket string
	hc     *http.Client
	proof  string
}

// WithProof returns a client that sends proof (from Reauth) in the
// X-MFAD-Proof header of every request, for actions that weaken an account.
// It shares the connections of c.
func (c *Client) WithProof(proof string) *Client {
	cp := *c
	cp.proof = proof
	return &cp
}

// New returns a client for the daemon listening on socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket returns the socket path the client uses.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Error is an error answered by the daemon.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Code) }

// IsCode reports whether err is an API error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.send(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send performs a request and turns non-2xx answers into *Error.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://mfad"+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.proof != "" {
		req.Header.Set(wire.ProofHeader, c.proof)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("talking to mfad at %s: %w", c.socket, unwrapURL(err))
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e wire.Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
		return nil, &Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: http.StatusText(resp.StatusCode)}
	}
	return nil, &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func esc(s string) string { return url.PathEscape(s) }

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (*wire.Status, error) {
	var out wire.Status
	return &out, c.do(ctx, "GET", "/v1/status", nil, &out)
}

// Login starts a login (login role).
func (c *Client) Login(ctx context.Context, req wire.LoginRequest) (*wire.LoginResponse, error) {
	var out wire.LoginResponse
	return &out, c.do(ctx, "POST", "/v1/login", req, &out)
}

// LoginVerify verifies a code for a login started with Login.
func (c *Client) LoginVerify(ctx context.Context, loginID, code, method string) (*wire.VerifyResponse, error) {
	var out wire.VerifyResponse
	return &out, c.do(ctx, "POST", "/v1/login/"+esc(loginID)+"/verify", wire.VerifyRequest{Code: code, Method: method}, &out)
}

// Verify checks a code for a user in one step (login role).
func (c *Client) Verify(ctx context.Context, req wire.VerifyRequest) (*wire.VerifyResponse, error) {
	var out wire.VerifyResponse
	return &out, c.do(ctx, "POST", "/v1/verify", req, &out)
}

// User returns a user's enrollment.
func (c *Client) User(ctx context.Context, user string) (*wire.User, error) {
	var out wire.User
	return &out, c.do(ctx, "GET", "/v1/users/"+esc(user), nil, &out)
}

// DeleteUser removes a user and all their factors (admin).
func (c *Client) DeleteUser(ctx context.Context, user string) error {
	return c.do(ctx, "DELETE", "/v1/users/"+esc(user), nil, nil)
}

// EnrollTOTP creates a pending TOTP factor.
func (c *Client) EnrollTOTP(ctx context.Context, user, label string) (*wire.TOTPEnrollResponse, error) {
	var out wire.TOTPEnrollResponse
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/totp", wire.TOTPEnrollRequest{Label: label}, &out)
}

// ConfirmTOTP activates a pending TOTP factor with its first code.
// The answer carries fresh recovery codes when this enabled the user's
// second factor and the user had none.
func (c *Client) ConfirmTOTP(ctx context.Context, user, factorID, code string) (*wire.ConfirmResponse, error) {
	var out wire.ConfirmResponse
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/totp/"+esc(factorID)+"/confirm", wire.CodeRequest{Code: code}, &out)
}

// GenerateRecoveryCodes replaces the user's recovery codes with a new set.
func (c *Client) GenerateRecoveryCodes(ctx context.Context, user string) (*wire.RecoveryCodesResponse, error) {
	var out wire.RecoveryCodesResponse
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/recovery-codes", struct{}{}, &out)
}

// EnrollU2F registers the security key the user touches now (waits up to
// the daemon's u2f.timeout).
func (c *Client) EnrollU2F(ctx context.Context, user, label string) (*wire.U2FEnrollResponse, error) {
	var out wire.U2FEnrollResponse
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/u2f", wire.U2FEnrollRequest{Label: label}, &out)
}

// LoginU2F runs the U2F step of a login started with Login.
func (c *Client) LoginU2F(ctx context.Context, loginID string) (*wire.VerifyResponse, error) {
	var out wire.VerifyResponse
	return &out, c.do(ctx, "POST", "/v1/login/"+esc(loginID)+"/u2f", struct{}{}, &out)
}

// DeleteFactor removes one factor.
func (c *Client) DeleteFactor(ctx context.Context, user, factorID string) error {
	return c.do(ctx, "DELETE", "/v1/users/"+esc(user)+"/factors/"+esc(factorID), nil, nil)
}

// LoginVerifyRequest verifies a code for a login with every option of
// wire.VerifyRequest (method, remember).
func (c *Client) LoginVerifyRequest(ctx context.Context, loginID string, req wire.VerifyRequest) (*wire.VerifyResponse, error) {
	var out wire.VerifyResponse
	return &out, c.do(ctx, "POST", "/v1/login/"+esc(loginID)+"/verify", req, &out)
}

// Reauth proves a second factor of user; on success the answer carries a
// proof for one weakening request within five minutes (see WithProof).
func (c *Client) Reauth(ctx context.Context, user, code string) (*wire.VerifyResponse, error) {
	var out wire.VerifyResponse
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/reauth", wire.CodeRequest{Code: code}, &out)
}

// SetPreferences sets the user's login preferences.
func (c *Client) SetPreferences(ctx context.Context, user string, p wire.Preferences) error {
	return c.do(ctx, "PUT", "/v1/users/"+esc(user)+"/preferences", p, nil)
}

// Devices lists the user's remember-device tokens.
func (c *Client) Devices(ctx context.Context, user string) (*wire.DevicesResponse, error) {
	var out wire.DevicesResponse
	return &out, c.do(ctx, "GET", "/v1/users/"+esc(user)+"/devices", nil, &out)
}

// RevokeDevices revokes one remember-device token, or all when id is "".
func (c *Client) RevokeDevices(ctx context.Context, user, id string) (*wire.RevokeResponse, error) {
	path := "/v1/users/" + esc(user) + "/devices"
	if id != "" {
		path += "/" + esc(id)
	}
	var out wire.RevokeResponse
	return &out, c.do(ctx, "DELETE", path, nil, &out)
}

// Unlock clears the user's failure record (admin).
func (c *Client) Unlock(ctx context.Context, user string) error {
	return c.do(ctx, "POST", "/v1/users/"+esc(user)+"/unlock", struct{}{}, nil)
}

// OpenRecoveryRequest opens a time-locked account recovery (admin).
func (c *Client) OpenRecoveryRequest(ctx context.Context, user, reason string) (*wire.RecoveryRequest, error) {
	var out wire.RecoveryRequest
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/recovery-requests", wire.RecoveryRequestOpen{Reason: reason}, &out)
}

// RecoveryRequest returns the user's latest account recovery request.
func (c *Client) RecoveryRequest(ctx context.Context, user string) (*wire.RecoveryRequest, error) {
	var out wire.RecoveryRequest
	return &out, c.do(ctx, "GET", "/v1/users/"+esc(user)+"/recovery-requests", nil, &out)
}

// CancelRecoveryRequest cancels the user's open request; code is the
// cancel code sent to the user's phones ("" for admins).
func (c *Client) CancelRecoveryRequest(ctx context.Context, user, code string) (*wire.RecoveryRequest, error) {
	var out wire.RecoveryRequest
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/recovery-requests/cancel", wire.CodeRequest{Code: code}, &out)
}

// GrantBypass turns the user's second factor off for d (admin).
func (c *Client) GrantBypass(ctx context.Context, user string, d time.Duration, reason string) (*wire.BypassResponse, error) {
	var out wire.BypassResponse
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/bypass", wire.BypassRequest{For: d.String(), Reason: reason}, &out)
}

// EndBypass ends the user's temporary bypass (admin).
func (c *Client) EndBypass(ctx context.Context, user string) error {
	return c.do(ctx, "DELETE", "/v1/users/"+esc(user)+"/bypass", nil, nil)
}

// AuditQuery filters Audit; zero fields match everything.
type AuditQuery struct {
	User, Action string
	Since, Until time.Time
	Limit        int
}

// Audit returns audit events, newest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (*wire.AuditResponse, error) {
	v := url.Values{}
	if q.User != "" {
		v.Set("user", q.User)
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339))
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	var out wire.AuditResponse
	path := "/v1/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	return &out, c.do(ctx, "GET", path, nil, &out)
}

// Backup streams an encrypted backup of the whole store into w (admin).
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	resp, err := c.send(ctx, "GET", "/v1/backup", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("receiving backup: %w", err)
	}
	return nil
}

// Restore replaces the store's content with a backup read from r (admin).
// The daemon validates the whole backup before touching live data.
func (c *Client) Restore(ctx context.Context, r io.Reader) error {
	resp, err := c.send(ctx, "POST", "/v1/restore", r, "application/octet-stream")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// LoginSMS sends a new SMS code for a login (phoneID "" = the first phone).
func (c *Client) LoginSMS(ctx context.Context, loginID, phoneID string) (*wire.SMSSentResponse, error) {
	var out wire.SMSSentResponse
	return &out, c.do(ctx, "POST", "/v1/login/"+esc(loginID)+"/sms", wire.SMSRequest{PhoneID: phoneID}, &out)
}

// EnrollPhone adds a pending phone to user; a code is sent to it.
func (c *Client) EnrollPhone(ctx context.Context, user, number, label string) (*wire.SMSSentResponse, error) {
	var out wire.SMSSentResponse
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/phones", wire.PhoneEnrollRequest{Number: number, Label: label}, &out)
}

// ConfirmPhone activates a pending phone with the code sent to it.
func (c *Client) ConfirmPhone(ctx context.Context, user, factorID, code string) (*wire.ConfirmResponse, error) {
	var out wire.ConfirmResponse
	return &out, c.do(ctx, "POST", "/v1/users/"+esc(user)+"/phones/"+esc(factorID)+"/confirm", wire.CodeRequest{Code: code}, &out)
}

// SMSTest sends an operator's test message now (admin).
func (c *Client) SMSTest(ctx context.Context, number, text string) (*wire.SMSTestResponse, error) {
	var out wire.SMSTestResponse
	return &out, c.do(ctx, "POST", "/v1/sms/test", wire.SMSTestRequest{Number: number, Text: text}, &out)
}
