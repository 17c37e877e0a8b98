package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Policy is one policy "name" {} block: which logins it applies to and how
// they are decided. Policies are tried in file order and the first whose
// match {} fits the login wins; a login no policy matches gets
// DefaultPolicy.
type Policy struct {
	// Name is the block label: 1..64 letters, digits, '-', '_' or '.',
	// unique in the file. It appears in the audit log and in login answers.
	Name string
	// Match (match {}) selects the logins; an absent or empty match {}
	// matches every login, so such a policy must be the last one.
	Match PolicyMatch
	// Require (require) is "always" (every login needs a second factor),
	// "risky" (only logins that look new: see Decide in package policy),
	// "optional" (users who enrolled are asked, users who did not are let
	// in) or "never" (no second factor; audited). Default "always".
	Require string
	// Methods (methods) lists the methods this policy allows, in the order
	// they are offered: any of "u2f", "totp", "sms", "recovery". Default
	// all four, strongest first.
	Methods []string
	// Unenrolled (unenrolled) is what happens to a user without any usable
	// second factor when Require is "always" or "risky": "deny" (default),
	// "warn" (let in, with a message asking to enrol) or "deadline" (let in
	// with a warning until EnrollDeadline, denied after it).
	Unenrolled string
	// EnrollDeadline (enroll_deadline, RFC 3339 such as
	// "2027-01-31T00:00:00Z") ends the grace period of unenrolled =
	// "deadline"; required with it and not allowed otherwise.
	EnrollDeadline time.Time
	// RememberDevice (remember_device) is how long a remember-device token
	// issued after a successful login lets that device skip the second
	// factor, "0s" (default: no tokens) .. "2160h" (90 days).
	RememberDevice time.Duration
	// RememberBindRHost (remember_bind_rhost) binds remember-device tokens to
	// the remote address network (/24 for IPv4, /64 for IPv6) they were
	// issued to. Default true.
	RememberBindRHost bool
	// KnownFor (known_for) is how long a remote network (/24, /64) stays
	// "known" for a user after a successful second-factor login from it;
	// used by require = "risky". "1h" .. "8760h", default "720h" (30 days).
	KnownFor time.Duration
	// Lockout (lockout {}) overrides the global lockout {} settings for
	// logins under this policy; settings not given keep the global value.
	Lockout Lockout
}

// PolicyMatch is the match {} block of a policy. Every setting given must
// fit (AND); within a list any element may fit (OR). Unset settings match
// everything.
type PolicyMatch struct {
	// Service (service) lists PAM service names, e.g. ["sshd", "sudo"].
	Service []string
	// Group (group) lists groups; the user must be a member (primary or
	// supplementary, as the daemon's host resolves them).
	Group []string
	// User (user) lists user names.
	User []string
	// RHost (rhost) lists networks in CIDR notation (a bare address means
	// that one host); remote logins from one of them fit. Local logins
	// (no rhost) never fit a non-empty rhost list.
	RHost []netip.Prefix
	// Local (local): true fits only local logins (no rhost), false only
	// remote ones; unset fits both.
	Local *bool
}

// DefaultPolicy is the policy a login gets when no policy block matches it:
// every login needs a second factor, all methods, unenrolled users denied,
// no remember-device tokens.
func DefaultPolicy(l Lockout) Policy {
	return Policy{
		Name:              "default",
		Require:           "always",
		Methods:           []string{"u2f", "totp", "sms", "recovery"},
		Unenrolled:        "deny",
		RememberBindRHost: true,
		KnownFor:          720 * time.Hour,
		Lockout:           l,
	}
}

// Empty reports whether the match fits every login.
func (m PolicyMatch) Empty() bool {
	return len(m.Service) == 0 && len(m.Group) == 0 && len(m.User) == 0 && len(m.RHost) == 0 && m.Local == nil
}

type policyBlock struct {
	Name              string          `hcl:"name,label"`
	Match             []*matchBlock   `hcl:"match,block"`
	Lockout           []*lockoutBlock `hcl:"lockout,block"`
	Require           *hcl.Attribute  `hcl:"require,attr"`
	Methods           *hcl.Attribute  `hcl:"methods,attr"`
	Unenrolled        *hcl.Attribute  `hcl:"unenrolled,attr"`
	EnrollDeadline    *hcl.Attribute  `hcl:"enroll_deadline,attr"`
	RememberDevice    *hcl.Attribute  `hcl:"remember_device,attr"`
	RememberBindRHost *hcl.Attribute  `hcl:"remember_bind_rhost,attr"`
	KnownFor          *hcl.Attribute  `hcl:"known_for,attr"`
	DefRange          hcl.Range       `hcl:",def_range"`
	TypeRange         hcl.Range       `hcl:",type_range"`
}

type matchBlock struct {
	Service  *hcl.Attribute `hcl:"service,attr"`
	Group    *hcl.Attribute `hcl:"group,attr"`
	User     *hcl.Attribute `hcl:"user,attr"`
	RHost    *hcl.Attribute `hcl:"rhost,attr"`
	Local    *hcl.Attribute `hcl:"local,attr"`
	DefRange hcl.Range      `hcl:",def_range"`
}

func (b *matchBlock) defRange() hcl.Range { return b.DefRange }

// methodNames are the methods a policy may list, strongest first.
var methodNames = []string{"u2f", "totp", "sms", "recovery"}

// applyPolicies decodes the policy blocks in order, checking names, values
// and that no policy is unreachable behind a match-everything one.
func applyPolicies(c *checker, blocks []*policyBlock, global Lockout, hasModems bool) []Policy {
	var out []Policy
	seen := map[string]hcl.Range{}
	var catchAll *policyBlock
	for _, b := range blocks {
		name := "policy " + quote(b.Name)
		if !validPolicyName(b.Name) {
			c.errorf(b.DefRange, "Policy names are 1 to 64 letters, digits, '-', '_' or '.'.", "Invalid policy name %s", quote(b.Name))
		}
		if first, dup := seen[b.Name]; dup {
			c.errorf(b.DefRange, fmt.Sprintf("Policy names must be unique; the first %s is on line %d. Rename or merge one of them.", name, first.Start.Line),
				"Duplicate %s", name)
		}
		seen[b.Name] = b.DefRange
		if catchAll != nil {
			c.errorf(b.DefRange,
				fmt.Sprintf("Policies are tried in order and policy %s on line %d matches every login, so this one is never used. Move it above that policy or give that policy a match {} block.",
					quote(catchAll.Name), catchAll.DefRange.Start.Line),
				"Unreachable %s", name)
		}
		p := DefaultPolicy(global)
		p.Name = b.Name
		applyAll(c, name+" match", b.Match, func(m *matchBlock) { m.apply(c, &p.Match, name) })
		applyAll(c, name+" lockout", b.Lockout, func(l *lockoutBlock) { l.apply(c, &p.Lockout) })
		if s, ok := c.oneOf(b.Require, name+".require", []string{"always", "risky", "optional", "never"}, false, ""); ok {
			p.Require = s
		}
		if m, ok := c.methods(b.Methods, name+".methods"); ok {
			p.Methods = m
			if !hasModems && len(m) == 1 && m[0] == "sms" {
				c.warnf(b.Methods.Expr.Range(), "No modem block is configured, so no SMS can be sent and this policy can offer no method: its users cannot log in (mfad serve --sim adds a simulated modem). Add a modem block or another method.",
					"%s offers only SMS, and there is no modem", name)
			}
		}
		if s, ok := c.oneOf(b.Unenrolled, name+".unenrolled", []string{"deny", "warn", "deadline"}, false, ""); ok {
			p.Unenrolled = s
		}
		deadlineDetail := name + ".enroll_deadline must be an RFC 3339 time in quotes, such as \"2027-01-31T00:00:00Z\"."
		if s, ok := c.str(b.EnrollDeadline, name+".enroll_deadline", deadlineDetail); ok {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				c.errorf(b.EnrollDeadline.Expr.Range(), deadlineDetail, "Invalid time %s for %s.enroll_deadline", quote(s), name)
			} else {
				p.EnrollDeadline = t
			}
		}
		switch {
		case p.Unenrolled == "deadline" && b.EnrollDeadline == nil:
			r := b.DefRange
			if b.Unenrolled != nil {
				r = b.Unenrolled.Expr.Range()
			}
			c.errorf(r, "unenrolled = \"deadline\" lets unenrolled users in until enroll_deadline; add enroll_deadline = \"2027-01-31T00:00:00Z\" (RFC 3339).",
				"Missing %s.enroll_deadline", name)
		case p.Unenrolled != "deadline" && b.EnrollDeadline != nil:
			c.errorf(b.EnrollDeadline.Expr.Range(), "enroll_deadline only applies with unenrolled = \"deadline\"; remove it or set unenrolled = \"deadline\".",
				"Unused %s.enroll_deadline", name)
		}
		if d, ok := c.duration(b.RememberDevice, name+".remember_device", 0, 2160*time.Hour, 0); ok {
			p.RememberDevice = d
		}
		if v, ok := c.boolean(b.RememberBindRHost, name+".remember_bind_rhost"); ok {
			p.RememberBindRHost = v
		}
		if d, ok := c.duration(b.KnownFor, name+".known_for", time.Hour, 8760*time.Hour, 0); ok {
			p.KnownFor = d
		}
		if p.Match.Empty() && catchAll == nil {
			catchAll = b
		}
		out = append(out, p)
	}
	return out
}

func validPolicyName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func (b *matchBlock) apply(c *checker, m *PolicyMatch, policy string) {
	name := policy + ".match"
	if l, ok := c.strings(b.Service, name+".service", "PAM service names", validServiceName); ok {
		m.Service = l
	}
	if l, ok := c.strings(b.Group, name+".group", "group names", validGroupName); ok {
		m.Group = l
	}
	if l, ok := c.strings(b.User, name+".user", "user names", validUserName); ok {
		m.User = l
	}
	if ps, ok := c.prefixes(b.RHost, name+".rhost"); ok {
		m.RHost = ps
	}
	if v, ok := c.boolean(b.Local, name+".local"); ok {
		m.Local = &v
	}
	if m.Local != nil && *m.Local && len(m.RHost) > 0 {
		c.errorf(b.Local.Expr.Range(), "local = true matches only logins without a remote host, and rhost matches only remote ones, so together they match nothing. Remove one of them.",
			"Contradictory %s", name)
	}
}

func validServiceName(s string) bool {
	return s != "" && len(s) <= 64 && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' })
}

func validUserName(s string) bool {
	return s != "" && len(s) <= 64 && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == ':' })
}

// boolean decodes true or false.
func (c *checker) boolean(a *hcl.Attribute, name string) (bool, bool) {
	detail := name + " must be true or false, without quotes."
	v, ok := c.eval(a, name, detail)
	if !ok {
		return false, false
	}
	if v.Type() != cty.Bool {
		c.errorf(a.Expr.Range(), detail, "Invalid value %s for %s", show(v), name)
		return false, false
	}
	return v.True(), true
}

// list evaluates a list attribute and returns its string elements with the
// range of each, reporting non-strings.
func (c *checker) list(a *hcl.Attribute, name, detail string) ([]string, []hcl.Range, bool) {
	v, ok := c.eval(a, name, detail)
	if !ok {
		return nil, nil, false
	}
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		c.errorf(a.Expr.Range(), detail, "Invalid value %s for %s", show(v), name)
		return nil, nil, false
	}
	ranges := make([]hcl.Range, v.LengthInt())
	for i := range ranges {
		ranges[i] = a.Expr.Range()
	}
	if exprs, diags := hcl.ExprList(a.Expr); !diags.HasErrors() && len(exprs) == len(ranges) {
		for i, e := range exprs {
			ranges[i] = e.Range()
		}
	}
	out := make([]string, 0, len(ranges))
	valid := true
	for i, it := 0, v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		if ev.IsNull() || ev.Type() != cty.String {
			c.errorf(ranges[i], detail, "Invalid value %s in %s", show(ev), name)
			valid = false
			continue
		}
		out = append(out, ev.AsString())
	}
	return out, ranges, valid
}

// strings decodes a list of names that each satisfy valid.
func (c *checker) strings(a *hcl.Attribute, name, what string, valid func(string) bool) ([]string, bool) {
	detail := fmt.Sprintf("%s must be a list of %s in quotes, such as [\"a\", \"b\"].", name, what)
	l, ranges, ok := c.list(a, name, detail)
	if !ok {
		return nil, false
	}
	for i, s := range l {
		if !valid(s) {
			c.errorf(ranges[i], detail+" Names are not empty and contain no whitespace or control characters.", "Invalid name %s in %s", quote(s), name)
			ok = false
		}
	}
	return l, ok
}

// methods decodes a non-empty list of distinct method names.
func (c *checker) methods(a *hcl.Attribute, name string) ([]string, bool) {
	detail := fmt.Sprintf("%s must be a non-empty list of distinct methods from \"u2f\", \"totp\", \"sms\" and \"recovery\", in the order they are offered.", name)
	l, ranges, ok := c.list(a, name, detail)
	if !ok {
		return nil, false
	}
	if len(l) == 0 {
		c.errorf(a.Expr.Range(), detail+" To let logins in without a second factor, use require = \"never\".", "Empty %s", name)
		return nil, false
	}
	for i, s := range l {
		switch {
		case !slices.Contains(methodNames, s):
			c.errorf(ranges[i], detail, "Unknown method %s in %s", quote(s), name)
			ok = false
		case slices.Index(l, s) != i:
			c.errorf(ranges[i], detail, "Duplicate method %s in %s", quote(s), name)
			ok = false
		}
	}
	return l, ok
}

// prefixes decodes a list of CIDR networks or single addresses.
func (c *checker) prefixes(a *hcl.Attribute, name string) ([]netip.Prefix, bool) {
	detail := fmt.Sprintf("%s must be a list of networks in CIDR notation or single addresses, in quotes, such as [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"].", name)
	l, ranges, ok := c.list(a, name, detail)
	if !ok {
		return nil, false
	}
	out := make([]netip.Prefix, 0, len(l))
	for i, s := range l {
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
			if err == nil && p != p.Masked() {
				c.errorf(ranges[i], fmt.Sprintf("%s has host bits set; the network is %s. Write the network address.", quote(s), p.Masked()),
					"Invalid network %s in %s", quote(s), name)
				ok = false
				continue
			}
		} else {
			var addr netip.Addr
			addr, err = netip.ParseAddr(s)
			if err == nil {
				p = netip.PrefixFrom(addr, addr.BitLen())
			}
		}
		if err != nil {
			c.errorf(ranges[i], detail, "Invalid network %s in %s", quote(s), name)
			ok = false
			continue
		}
		out = append(out, p)
	}
	return out, ok
}
