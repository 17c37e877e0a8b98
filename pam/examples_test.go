package pam

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPamDExamples runs the pam_mfad lines of packaging/pam.d/* exactly as
// written, with only the module's path and the socket replaced, so an
// option in an example that the module refuses fails here. For sshd, whose
// example runs no other auth module, that is the example's whole auth
// stack.
func TestPamDExamples(t *testing.T) {
	requireRoot(t)
	d := newDaemon(t, "")
	d.start()
	files, err := filepath.Glob(filepath.Join(srcDir, "..", "packaging", "pam.d", "*"))
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				fields := strings.Fields(l)
				if len(fields) < 3 || fields[0] != "auth" || !strings.Contains(l, "pam_mfad.so") {
					continue
				}
				if !strings.Contains(l, "socket=/run/mfad/mfad.sock") {
					t.Errorf("example does not name the default socket: %q", l)
				}
				l = strings.Replace(l, "socket=/run/mfad/mfad.sock", "socket="+d.socket, 1)
				lines = append(lines, strings.Replace(l, "pam_mfad.so", "@MODULE@", 1))
			}
			if len(lines) != 1 {
				t.Fatalf("want one pam_mfad auth line, found %d", len(lines))
			}
			svc := pamService(t, "example", lines...)
			user := "ex-" + filepath.Base(f)
			secret := d.enrollTOTP(t, user)
			pamtester(t, svc, user, []string{"rhost=192.0.2.7"}, totpCode(t, secret, 0)).expect(t, pamOK, 1)
		})
	}
}
