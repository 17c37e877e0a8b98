// Package wire defines the JSON bodies of mfad's /v1 socket API. The server
// (package api) and the Go client (package client) share these types; the
// OpenAPI document api/openapi.yaml describes the same shapes for other
// languages.
//
// Compatibility: fields are only ever added under /v1, never renamed or
// removed; clients must ignore fields they do not know.
package wire

import "time"

// Error is the one error shape of the API: {"error":{"code":"...","message":"..."}}.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody carries a stable machine-readable code and a message safe to show.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Stable error codes.
const (
	CodeBadRequest       = "bad_request"
	CodeInvalidJSON      = "invalid_json"
	CodeTooLarge         = "request_too_large"
	CodeUnauthorized     = "unauthorized" // caller could not be identified
	CodeForbidden        = "forbidden"    // caller's role may not do this
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeLoginExpired     = "login_expired"
	CodeCodeRejected     = "code_rejected"
	CodeConflict         = "conflict"
	CodeTimeout          = "timeout"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
	// CodeRateLimited: a self caller sent more requests than its share.
	CodeRateLimited = "rate_limited"
	// CodeReauthRequired: a self caller must prove a second factor first
	// (POST /v1/users/{user}/reauth) and pass the proof in the
	// X-MFAD-Proof header.
	CodeReauthRequired = "reauth_required"
)

// ProofHeader carries a proof from POST /v1/users/{user}/reauth on requests
// that weaken an account (removing a factor, replacing recovery codes,
// removing the user).
const ProofHeader = "X-MFAD-Proof"

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	User    string `json:"user"`
	Service string `json:"service,omitempty"`
	RHost   string `json:"rhost,omitempty"`
	TTY     string `json:"tty,omitempty"`
	// DeviceToken is a remember-device token from an earlier verification.
	DeviceToken string `json:"device_token,omitempty"`
}

// LoginResponse answers POST /v1/login.
type LoginResponse struct {
	LoginID   string   `json:"login_id"`
	Decision  string   `json:"decision"` // allow | challenge | deny
	Methods   []string `json:"methods"`
	Default   string   `json:"default,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	ExpiresIn int      `json:"expires_in_s"`
	Prompt    string   `json:"prompt,omitempty"`
	// Policy names the policy that decided the login.
	Policy string `json:"policy,omitempty"`
	// Messages are lines to show the user (enrolment reminders and such).
	Messages []string `json:"messages,omitempty"`
	// Remember is true when the verification may ask for a remember-device
	// token ("remember": true).
	Remember bool `json:"remember,omitempty"`
}

// VerifyRequest is the body of POST /v1/login/{id}/verify and, with User set,
// POST /v1/verify.
type VerifyRequest struct {
	User    string `json:"user,omitempty"`
	Code    string `json:"code"`
	Method  string `json:"method,omitempty"`
	Service string `json:"service,omitempty"`
	RHost   string `json:"rhost,omitempty"`
	// Remember asks for a remember-device token on success (login
	// verification only; honoured when the login's policy issues them).
	Remember bool `json:"remember,omitempty"`
}

// VerifyResponse answers a verification.
type VerifyResponse struct {
	Result            string `json:"result"` // ok | fail | locked
	Method            string `json:"method,omitempty"`
	AttemptsLeft      *int   `json:"attempts_left,omitempty"`
	RetryAfter        *int   `json:"retry_after_s,omitempty"`
	Reason            string `json:"reason,omitempty"` // invalid | clock_drift | no_touch | no_key
	Message           string `json:"message,omitempty"`
	RecoveryRemaining *int   `json:"recovery_codes_left,omitempty"`
	RecoveryLow       bool   `json:"recovery_codes_low,omitempty"`
	// RememberToken is a new remember-device token: the login stack keeps
	// it and sends it as device_token next time.
	RememberToken string `json:"remember_token,omitempty"`
	// Messages are lines to show the user after a success.
	Messages []string `json:"messages,omitempty"`
	// Proof answers POST /v1/users/{user}/reauth on success: pass it in the
	// X-MFAD-Proof header of one weakening request within ProofExpiresIn.
	Proof          string `json:"proof,omitempty"`
	ProofExpiresIn int    `json:"proof_expires_in_s,omitempty"`
}

// User answers GET /v1/users/{user}.
type User struct {
	User        string     `json:"user"`
	Created     time.Time  `json:"created"`
	Factors     []Factor   `json:"factors"`
	Recovery    *Recovery  `json:"recovery_codes,omitempty"`
	Failures    int        `json:"failures"`
	LockedUntil *time.Time `json:"locked_until,omitempty"`
}

// Factor describes one enrolled factor, never its secret.
type Factor struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	Status    string     `json:"status"` // pending | active
	Label     string     `json:"label,omitempty"`
	Created   time.Time  `json:"created"`
	Confirmed *time.Time `json:"confirmed,omitempty"`
	LastUsed  *time.Time `json:"last_used,omitempty"`
	// Phone is the masked number of an sms factor ("+44•••••0123").
	Phone string `json:"phone,omitempty"`
}

// Recovery describes a user's recovery-code set.
type Recovery struct {
	Total     int       `json:"total"`
	Remaining int       `json:"remaining"`
	Created   time.Time `json:"created"`
}

// TOTPEnrollRequest is the body of POST /v1/users/{user}/totp.
type TOTPEnrollRequest struct {
	Label string `json:"label,omitempty"`
}

// TOTPEnrollResponse answers POST /v1/users/{user}/totp. The secret is shown
// once; the factor stays pending until confirmed.
type TOTPEnrollResponse struct {
	FactorID   string `json:"factor_id"`
	Secret     string `json:"secret"` // base32
	OTPAuthURI string `json:"otpauth_uri"`
	QRPNG      []byte `json:"qr_png"` // base64 in JSON
	ExpiresIn  int    `json:"expires_in_s"`
}

// CodeRequest is the body of .../confirm.
type CodeRequest struct {
	Code string `json:"code"`
}

// ConfirmResponse answers a confirmation.
type ConfirmResponse struct {
	Result string `json:"result"` // ok
	// RecoveryCodes are generated when this confirmation enabled the
	// user's second factor and the user had none; shown once.
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

// U2FEnrollResponse answers POST /v1/users/{user}/u2f: the new factor and,
// when the user had none, a fresh set of recovery codes (shown once).
type U2FEnrollResponse struct {
	Factor
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

// Preferences is the body of PUT /v1/users/{user}/preferences.
type Preferences struct {
	// DefaultMethod is offered first when usable; "" means the strongest.
	DefaultMethod string `json:"default_method"`
}

// Device is a remember-device token (never the token itself).
type Device struct {
	ID       string     `json:"id"`
	Network  string     `json:"network,omitempty"`
	Service  string     `json:"service,omitempty"`
	RHost    string     `json:"rhost,omitempty"`
	Policy   string     `json:"policy"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// DevicesResponse answers GET /v1/users/{user}/devices.
type DevicesResponse struct {
	Devices []Device `json:"devices"`
}

// RevokeResponse answers DELETE .../devices[/{id}].
type RevokeResponse struct {
	Revoked int `json:"revoked"`
}

// RecoveryRequestOpen is the body of POST /v1/users/{user}/recovery-requests.
type RecoveryRequestOpen struct {
	Reason string `json:"reason"`
}

// RecoveryRequest describes an account recovery request.
type RecoveryRequest struct {
	ID          string     `json:"id"`
	User        string     `json:"user"`
	Reason      string     `json:"reason"`
	Action      string     `json:"action"` // bypass | reset
	Status      string     `json:"status"` // pending | cancelled | effective | done
	Opened      time.Time  `json:"opened"`
	EffectiveAt time.Time  `json:"effective_at"`
	Closed      *time.Time `json:"closed,omitempty"`
	ClosedHow   string     `json:"closed_how,omitempty"`
	Notified    *int       `json:"phones_notified,omitempty"`
}

// BypassRequest is the body of POST /v1/users/{user}/bypass.
type BypassRequest struct {
	// For is a Go duration such as "48h".
	For    string `json:"for"`
	Reason string `json:"reason"`
}

// BypassResponse answers POST /v1/users/{user}/bypass.
type BypassResponse struct {
	Until time.Time `json:"until"`
}

// RecoveryCodesResponse answers POST /v1/users/{user}/recovery-codes.
type RecoveryCodesResponse struct {
	Codes []string `json:"codes"`
}

// Status answers GET /v1/status.
type Status struct {
	Version   string         `json:"version"`
	StartedAt time.Time      `json:"started_at"`
	UptimeS   int64          `json:"uptime_s"`
	Caller    Caller         `json:"caller"`
	Store     *StoreStatus   `json:"store,omitempty"`
	Hardware  HardwareStatus `json:"hardware"`
}

// Caller is who the daemon thinks is asking.
type Caller struct {
	UID   int      `json:"uid"`
	GID   int      `json:"gid"`
	PID   int      `json:"pid"`
	User  string   `json:"user,omitempty"`
	Roles []string `json:"roles"`
}

// StoreStatus describes the database (admin callers only).
type StoreStatus struct {
	Dir       string `json:"dir,omitempty"`
	LSMBytes  int64  `json:"lsm_bytes"`
	VlogBytes int64  `json:"vlog_bytes"`
	Schema    int    `json:"schema"`
}

// HardwareStatus lists attached hardware.
type HardwareStatus struct {
	Simulated bool     `json:"simulated"`
	U2FKeys   []U2FKey `json:"u2f_keys"`
	// Modems lists the configured modems and their state.
	Modems []Modem `json:"modems"`
	// U2FError says why keys could not be listed (e.g. permissions).
	U2FError string `json:"u2f_error,omitempty"`
}

// Modem is the state of one GSM modem (never a phone number or PIN).
type Modem struct {
	Name          string    `json:"name"`
	Device        string    `json:"device"`
	Mode          string    `json:"mode"`
	State         string    `json:"state"` // starting | initialising | registering | ready | down | closed
	Since         time.Time `json:"since"`
	Error         string    `json:"error,omitempty"`
	SIM           string    `json:"sim,omitempty"`
	Registration  string    `json:"registration,omitempty"`
	SignalDBm     int       `json:"signal_dbm,omitempty"`
	Operator      string    `json:"operator,omitempty"`
	Manufacturer  string    `json:"manufacturer,omitempty"`
	Model         string    `json:"model,omitempty"`
	Revision      string    `json:"revision,omitempty"`
	StatusReports bool      `json:"status_reports"`
	Sent          uint64    `json:"sent"`
	Failed        uint64    `json:"failed"`
	Unknown       uint64    `json:"unknown"`
	Delivered     uint64    `json:"delivered"`
}

// SMSRequest is the body of POST /v1/login/{id}/sms.
type SMSRequest struct {
	// PhoneID picks one of the user's phones; "" means the first.
	PhoneID string `json:"phone_id,omitempty"`
}

// SMSSentResponse answers POST /v1/login/{id}/sms and phone enrolment.
type SMSSentResponse struct {
	FactorID  string `json:"factor_id,omitempty"`
	SentTo    string `json:"sent_to"` // masked
	ExpiresIn int    `json:"expires_in_s"`
}

// PhoneEnrollRequest is the body of POST /v1/users/{user}/phones.
type PhoneEnrollRequest struct {
	Number string `json:"number"`
	Label  string `json:"label,omitempty"`
}

// SMSTestRequest is the body of POST /v1/sms/test.
type SMSTestRequest struct {
	Number string `json:"number"`
	Text   string `json:"text,omitempty"`
}

// SMSTestResponse answers POST /v1/sms/test.
type SMSTestResponse struct {
	Outcome  string `json:"outcome"` // sent | failed | unknown
	Modem    string `json:"modem,omitempty"`
	Parts    int    `json:"parts"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

// U2FKey is a plugged security key.
type U2FKey struct {
	Path string `json:"path"`
	Name string `json:"name"`
}

// U2FEnrollRequest is the body of POST /v1/users/{user}/u2f.
type U2FEnrollRequest struct {
	Label string `json:"label,omitempty"`
}

// AuditEvent is one audit log entry.
type AuditEvent struct {
	Time      time.Time `json:"time"`
	User      string    `json:"user,omitempty"`
	Action    string    `json:"action"`
	Result    string    `json:"result"`
	Method    string    `json:"method,omitempty"`
	CallerUID int       `json:"caller_uid"`
	Service   string    `json:"service,omitempty"`
	RHost     string    `json:"rhost,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// AuditResponse answers GET /v1/audit.
type AuditResponse struct {
	Events []AuditEvent `json:"events"`
}
