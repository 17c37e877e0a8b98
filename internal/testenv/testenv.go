// Package testenv holds helpers for tests: a settable Clock, and checks for
// external reference programs the tests depend on.
//
// By default a test whose external program is missing is skipped, so the
// suite passes on a bare developer machine. Setting the environment variable
// MFAD_REQUIRE_TOOLS=1 (as CI should) turns every such skip into a failure,
// so a missing program cannot silently disable a test. The helpers only
// read the environment and are safe for concurrent use.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that turns skips into failures
// when set to "1".
const RequireEnv = "MFAD_REQUIRE_TOOLS"

// RequireTool returns the path of the program name as found by
// exec.LookPath. If it is not found the test is skipped with the message
// "<name> not installed (<hint>)", or fails with that message when
// MFAD_REQUIRE_TOOLS=1. hint says how to install it, for example
// "apt-get install oathtool".
func RequireTool(t testing.TB, name, hint string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not installed (%s)", name, hint)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
	return ""
}
