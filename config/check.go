package config

import (
	"fmt"
	"math/big"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// checker turns attribute expressions into typed values and collects a
// diagnostic for every problem. Each method returns ok=false, and leaves the
// destination alone, when the attribute is absent or invalid, so callers keep
// the default in that case.
type checker struct {
	diags hcl.Diagnostics
}

func (c *checker) errorf(subject hcl.Range, detail, summaryFormat string, args ...any) {
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf(summaryFormat, args...),
		Detail:   detail,
		Subject:  subject.Ptr(),
	})
}

// warnf records a warning: the file is valid but probably not what the
// operator meant.
func (c *checker) warnf(subject hcl.Range, detail, summaryFormat string, args ...any) {
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  fmt.Sprintf(summaryFormat, args...),
		Detail:   detail,
		Subject:  subject.Ptr(),
	})
}

// eval evaluates a constant expression. It reports HCL's own diagnostics
// (variables and functions are not available) and null or unknown values.
func (c *checker) eval(a *hcl.Attribute, name, detail string) (cty.Value, bool) {
	if a == nil {
		return cty.NilVal, false
	}
	v, diags := a.Expr.Value(nil)
	c.diags = append(c.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	if v.IsNull() || !v.IsWhollyKnown() {
		c.errorf(a.Expr.Range(), detail+" To use the default, remove the line.", "Invalid value null for %s", name)
		return cty.NilVal, false
	}
	return v, true
}

// str decodes a string attribute; detail explains the allowed values.
func (c *checker) str(a *hcl.Attribute, name, detail string) (string, bool) {
	v, ok := c.eval(a, name, detail)
	if !ok {
		return "", false
	}
	if v.Type() != cty.String {
		c.errorf(a.Expr.Range(), detail, "Invalid value %s for %s", show(v), name)
		return "", false
	}
	return v.AsString(), true
}

// integer decodes a whole number in [lo, hi]; rule completes "<name> must be".
func (c *checker) integer(a *hcl.Attribute, name string, lo, hi int64, rule string) (int64, bool) {
	detail := fmt.Sprintf("%s must be %s, written without quotes.", name, rule)
	v, ok := c.eval(a, name, detail)
	if !ok {
		return 0, false
	}
	if v.Type() != cty.Number {
		c.errorf(a.Expr.Range(), detail, "Invalid value %s for %s", show(v), name)
		return 0, false
	}
	f := v.AsBigFloat()
	if !f.IsInt() {
		c.errorf(a.Expr.Range(), detail, "Invalid value %s for %s", show(v), name)
		return 0, false
	}
	if f.Cmp(new(big.Float).SetInt64(lo)) < 0 || f.Cmp(new(big.Float).SetInt64(hi)) > 0 {
		c.errorf(a.Expr.Range(), detail, "Out of range value %s for %s", show(v), name)
		return 0, false
	}
	n, _ := f.Int64()
	return n, true
}

// duration decodes a Go duration string in [lo, hi]; when step is not zero
// the duration must also be a multiple of it.
func (c *checker) duration(a *hcl.Attribute, name string, lo, hi, step time.Duration) (time.Duration, bool) {
	detail := fmt.Sprintf("Use a Go duration such as \"30s\" or \"10m\", in quotes; %s must be between %s and %s.",
		name, fmtDuration(lo), fmtDuration(hi))
	if step != 0 {
		detail = fmt.Sprintf("Use a Go duration such as \"30s\", in quotes; %s must be between %s and %s in steps of %s.",
			name, fmtDuration(lo), fmtDuration(hi), fmtDuration(step))
	}
	s, ok := c.str(a, name, detail)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.errorf(a.Expr.Range(), detail, "Invalid duration %s for %s", quote(s), name)
		return 0, false
	}
	if d < lo || d > hi {
		c.errorf(a.Expr.Range(), detail, "Out of range duration %s for %s", quote(s), name)
		return 0, false
	}
	if step != 0 && d%step != 0 {
		c.errorf(a.Expr.Range(), detail, "Invalid duration %s for %s", quote(s), name)
		return 0, false
	}
	return d, true
}

// oneOf decodes a string that must be one of allowed (compared
// case-insensitively when fold is set) and returns the allowed spelling.
func (c *checker) oneOf(a *hcl.Attribute, name string, allowed []string, fold bool, hint string) (string, bool) {
	quoted := make([]string, len(allowed))
	for i, s := range allowed {
		quoted[i] = strconv.Quote(s)
	}
	list := strings.Join(quoted, ", ")
	if n := len(quoted); n > 1 {
		list = strings.Join(quoted[:n-1], ", ") + " or " + quoted[n-1]
	}
	detail := fmt.Sprintf("%s must be %s.", name, list)
	if len(allowed) == 1 {
		detail = fmt.Sprintf("%s must be %s, the only supported value.", name, list)
	}
	if hint != "" {
		detail += " " + hint
	}
	s, ok := c.str(a, name, detail)
	if !ok {
		return "", false
	}
	for _, want := range allowed {
		if s == want || (fold && strings.EqualFold(s, want)) {
			return want, true
		}
	}
	c.errorf(a.Expr.Range(), detail, "Invalid value %s for %s", quote(s), name)
	return "", false
}

// path decodes a file system path and resolves it against base when it is
// relative. An explicit "" is accepted only when allowEmpty is set and is
// returned unchanged.
func (c *checker) path(a *hcl.Attribute, name, base string, allowEmpty bool) (string, bool) {
	detail := fmt.Sprintf("%s must be a non-empty path in quotes; a relative path is resolved against the directory of the configuration file.", name)
	if allowEmpty {
		detail = fmt.Sprintf("%s must be a path in quotes, or \"\" for the default; a relative path is resolved against the directory of the configuration file.", name)
	}
	s, ok := c.str(a, name, detail)
	if !ok {
		return "", false
	}
	if s == "" && allowEmpty {
		return "", true
	}
	if s == "" || strings.ContainsRune(s, 0) {
		c.errorf(a.Expr.Range(), detail, "Invalid path %s for %s", quote(s), name)
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(base, s)
	}
	return filepath.Clean(s), true
}

// groups decodes a list of group names, pointing at the offending element
// when one is invalid.
func (c *checker) groups(a *hcl.Attribute, name string) ([]string, bool) {
	detail := fmt.Sprintf("%s must be a list of group names in quotes, such as [\"wheel\", \"ops\"], or [] for none.", name)
	l, ranges, ok := c.list(a, name, detail)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l))
	for i, g := range l {
		if !validGroupName(g) {
			c.errorf(ranges[i], "Group names are not empty and contain no whitespace, ':' or control characters.",
				"Invalid group name %s in %s", quote(g), name)
			ok = false
			continue
		}
		out = append(out, g)
	}
	return out, ok
}

func validGroupName(s string) bool {
	if s == "" || len(s) > 256 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// show renders a value for a diagnostic summary, shortened so that a
// pasted blob cannot flood the output.
func show(v cty.Value) string {
	switch {
	case v.IsNull():
		return "null"
	case !v.IsKnown():
		return "(unknown)"
	case v.Type() == cty.String:
		return quote(v.AsString())
	case v.Type() == cty.Number:
		f := v.AsBigFloat()
		switch exp := f.MantExp(nil); {
		case f.IsInf():
			return f.String()
		case f.IsInt() && exp <= 64:
			return f.Text('f', 0)
		case exp > 4096:
			return "(a huge number)" // exact formatting would be slow
		case exp < -4096:
			return "(a tiny number)"
		default:
			return shorten(f.Text('g', -1))
		}
	case v.Type() == cty.Bool:
		return strconv.FormatBool(v.True())
	case v.Type().IsTupleType() || v.Type().IsListType() || v.Type().IsSetType():
		return "[...]"
	case v.Type().IsObjectType() || v.Type().IsMapType():
		return "{...}"
	default:
		return "(" + v.Type().FriendlyName() + ")"
	}
}

func quote(s string) string { return strconv.Quote(shorten(s)) }

func shorten(s string) string {
	const limit = 40
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit]) + "..."
}

// fmtDuration prints d like the file would spell it: "2m", "24h", "1m30s".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
