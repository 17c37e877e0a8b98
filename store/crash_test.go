package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashChildEnv names the database directory when the test binary runs as the
// child process of TestCrashKeepsAcknowledgedWrites.
const crashChildEnv = "MFAD_STORE_CRASH_CHILD_DIR"

// TestCrashKeepsAcknowledgedWrites re-executes the test binary as a child that
// commits in a loop from several goroutines and prints every key whose Update
// returned nil; the parent kills it with SIGKILL after ~300 ms and checks that
// every acknowledged key survived.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledgedWrites$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var (
		mu    sync.Mutex
		acked []string
	)
	firstAck := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		r := bufio.NewReader(stdout)
		var once sync.Once
		for {
			line, err := r.ReadString('\n')
			if key, ok := strings.CutPrefix(line, "ack "); ok && strings.HasSuffix(key, "\n") {
				mu.Lock()
				acked = append(acked, strings.TrimSuffix(key, "\n"))
				mu.Unlock()
				once.Do(func() { close(firstAck) })
			}
			if err != nil { // a partial last line is not an acknowledgement
				return
			}
		}
	}()

	select {
	case <-firstAck:
	case <-readDone:
		cmd.Wait()
		t.Fatalf("child exited without acknowledging a write; stderr:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child acknowledged nothing within 30s; stderr:\n%s", stderr.String())
	}
	time.Sleep(300 * time.Millisecond) // let the child run; the kill time is the point of the test
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-readDone
	var exitErr *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exitErr) {
		t.Fatalf("child ended with %v, want to be killed; stderr:\n%s", err, stderr.String())
	}

	db := openTestDB(t, dir)
	mu.Lock()
	defer mu.Unlock()
	missing := 0
	for _, k := range acked {
		if got, found := get(t, db, []byte(k)); !found || got != k {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged key %q lost (found %v, value %q)", k, found, got)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged keys lost", missing, len(acked))
	}
	t.Logf("%d acknowledged writes survived SIGKILL", len(acked))
}

// crashChild commits forever (until killed) and acknowledges on stdout.
func crashChild(dir string) {
	// A safety net in case the parent vanished without killing us.
	time.AfterFunc(2*time.Minute, func() { os.Exit(3) })
	db, err := Open(Options{Dir: dir, MasterKey: testMasterKey(1)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := io.Writer(os.Stdout)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				key := string(Key("crash", fmt.Sprint(g), fmt.Sprint(i)))
				err := db.Update(context.Background(), func(tx *Txn) error {
					return tx.Put([]byte(key), key)
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "update:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s\n", key)
				mu.Unlock()
			}
		}()
	}
	select {}
}
