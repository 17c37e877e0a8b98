package pam

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPamtesterRememberDevice follows a remember-device token through the
// PAM environment: with the remember option the module asks for a token
// and puts it in MFAD_REMEMBER_TOKEN, where pam_exec (standing in for an
// application that stores it) sees it; an application that presents it as
// MFAD_DEVICE_TOKEN skips the second factor.
func TestPamtesterRememberDevice(t *testing.T) {
	requireRoot(t)
	d := newDaemon(t, "policy \"remember\" {\n  require = \"always\"\n  remember_device = \"720h\"\n}\n")
	d.start()
	secret := d.enrollTOTP(t, "rita")

	show := filepath.Join(d.dir, "show-token")
	if err := os.WriteFile(show, []byte("#!/bin/sh\necho \"token=[$MFAD_REMEMBER_TOKEN]\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	exec := "auth optional pam_exec.so stdout " + show
	withRemember := pamService(t, "remember", "auth required @MODULE@ socket="+d.socket+" remember", exec)
	without := pamService(t, "noremember", "auth required @MODULE@ socket="+d.socket+" tries=1", exec)
	tokenRe := regexp.MustCompile(`token=\[([^\]]*)\]`)
	items := []string{"rhost=192.0.2.7"}

	// Without the option no token is asked for.
	r := pamtester(t, without, "rita", items, totpCode(t, secret, 0))
	r.expect(t, pamOK, 1)
	if m := tokenRe.FindStringSubmatch(r.stdout); m == nil || m[1] != "" {
		t.Fatalf("want no token:\n%v", r)
	}

	r = pamtester(t, withRemember, "rita", items, totpCode(t, secret, 1))
	r.expect(t, pamOK, 1)
	m := tokenRe.FindStringSubmatch(r.stdout)
	if m == nil || len(m[1]) < 16 {
		t.Fatalf("want a token:\n%v", r)
	}
	token := m[1]

	// The token lets the next login in without a prompt; a wrong one does
	// not.
	r = runPamtester(t, pamCall{service: without, user: "rita", items: items, env: []string{"MFAD_DEVICE_TOKEN=" + token}})
	r.expect(t, pamOK, 0)
	r = runPamtester(t, pamCall{service: without, user: "rita", items: items,
		env: []string{"MFAD_DEVICE_TOKEN=" + strings.Repeat("x", len(token))}, answers: []string{"000000"}})
	r.expect(t, pamMaxTries, 1)
	// A token that is not printable text is refused before the daemon is
	// asked.
	r = runPamtester(t, pamCall{service: without, user: "rita", items: items, env: []string{"MFAD_DEVICE_TOKEN=a\x01b"}})
	r.expect(t, pamAuthErr, 0)
}

// TestPamtesterPolicyAllow: a policy that lets unenrolled users in with a
// warning answers "allow" with a message, which the module shows.
func TestPamtesterPolicyAllow(t *testing.T) {
	requireRoot(t)
	d := newDaemon(t, "policy \"warn\" {\n  require = \"always\"\n  unenrolled = \"warn\"\n}\n")
	d.start()
	svc := pamService(t, "allow", "auth required @MODULE@ socket="+d.socket)
	r := pamtester(t, svc, "uma", []string{"rhost=192.0.2.7"})
	r.expect(t, pamOK, 0)
	if !strings.Contains(r.stdout, "Your account has no second factor.") {
		t.Errorf("want the daemon's message:\n%v", r)
	}
	// PAM_SILENT keeps it quiet.
	r = runPamtester(t, pamCall{service: svc, user: "uma", items: []string{"rhost=192.0.2.7"}, op: "authenticate(PAM_SILENT)"})
	r.expect(t, pamOK, 0)
	if strings.Contains(r.stdout, "second factor") {
		t.Errorf("PAM_SILENT: the module still talked:\n%v", r)
	}
}
