package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "mfad")
	path := filepath.Join(dir, "master.key")
	seed := bytes.Repeat([]byte{0xab}, MasterKeySize)

	key, err := CreateKey(path, bytes.NewReader(seed))
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if !bytes.Equal(key, seed) {
		t.Errorf("key = %x, want %x", key, seed)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %#o, want 0600", perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory mode = %#o, want 0700", perm)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(seed) + "\n"; string(content) != want {
		t.Errorf("key file holds %q, want %q", content, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file", len(entries))
	}
	loaded, err := LoadKey(path)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	if !bytes.Equal(loaded, key) {
		t.Errorf("LoadKey = %x, want %x", loaded, key)
	}
}

func TestCreateKeyNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	first, err := CreateKey(path, nil)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	_, err = CreateKey(path, nil)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateKey error = %v, want fs.ErrExist", err)
	}
	loaded, err := LoadKey(path)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	if !bytes.Equal(loaded, first) {
		t.Error("second CreateKey changed the key file")
	}
}

func TestLoadKey(t *testing.T) {
	valid := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr error
	}{
		{"with newline", valid + "\n", 0o600, nil},
		{"without newline", valid, 0o600, nil},
		{"upper case", strings.ToUpper(valid), 0o400, nil},
		{"world readable", valid + "\n", 0o644, ErrInsecureKeyFile},
		{"group readable", valid + "\n", 0o640, ErrInsecureKeyFile},
		{"other executable", valid + "\n", 0o601, ErrInsecureKeyFile},
		{"empty", "", 0o600, ErrBadKeyFile},
		{"too short", valid[:62] + "\n", 0o600, ErrBadKeyFile},
		{"too long", valid + "00\n", 0o600, ErrBadKeyFile},
		{"two newlines", valid + "\n\n", 0o600, ErrBadKeyFile},
		{"crlf", valid + "\r\n", 0o600, ErrBadKeyFile},
		{"not hex", "zz" + valid[2:], 0o600, ErrBadKeyFile},
		{"raw bytes", string(bytes.Repeat([]byte{0x42}, 32)), 0o600, ErrBadKeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			key, err := LoadKey(path)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadKey: %v", err)
				}
				want, _ := hex.DecodeString(strings.TrimSpace(tt.content))
				if !bytes.Equal(key, want) {
					t.Errorf("key = %x, want %x", key, want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadKey error = %v, want %v", err, tt.wantErr)
			}
			if key != nil {
				t.Error("LoadKey returned a key with an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the path", msg)
			}
			if len(tt.content) >= 8 && strings.Contains(msg, strings.TrimSpace(tt.content)[:8]) {
				t.Errorf("error %q quotes the file content", msg)
			}
		})
	}
}

func TestLoadKeyNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKey(dir); !errors.Is(err, ErrInsecureKeyFile) {
		t.Errorf("LoadKey(directory) error = %v, want ErrInsecureKeyFile", err)
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKey(missing) error = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "master.key")

	if _, created, err := LoadOrCreateKey(path, false, nil); !errors.Is(err, fs.ErrNotExist) || created {
		t.Fatalf("LoadOrCreateKey(create=false) = created %v, err %v; want fs.ErrNotExist", created, err)
	}
	key, created, err := LoadOrCreateKey(path, true, nil)
	if err != nil || !created || len(key) != MasterKeySize {
		t.Fatalf("LoadOrCreateKey(create=true) = %d-byte key, created %v, err %v", len(key), created, err)
	}
	again, created, err := LoadOrCreateKey(path, true, nil)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Fatalf("second LoadOrCreateKey = created %v, err %v, same key %v", created, err, bytes.Equal(again, key))
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(path, true, nil); !errors.Is(err, ErrInsecureKeyFile) {
		t.Errorf("LoadOrCreateKey(0644 file) error = %v, want ErrInsecureKeyFile", err)
	}
}

func TestDeriveKey(t *testing.T) {
	// RFC 5869 test case 3 (no salt, empty info): the first 32 bytes of OKM.
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	want := "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	if got := hex.EncodeToString(DeriveKey(ikm, "")); got != want {
		t.Errorf("DeriveKey(RFC 5869 case 3) = %s, want %s", got, want)
	}

	master := testMasterKey(1)
	tests := []struct {
		name      string
		a, b      []byte
		wantEqual bool
	}{
		{"deterministic", DeriveKey(master, "x"), DeriveKey(master, "x"), true},
		{"labels differ", DeriveKey(master, "mfad badger v1"), DeriveKey(master, "mfad backup v1"), false},
		{"masters differ", DeriveKey(master, "x"), DeriveKey(testMasterKey(2), "x"), false},
		{"not the master", DeriveKey(master, ""), master, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.a) != 32 {
				t.Fatalf("derived key has %d bytes, want 32", len(tt.a))
			}
			if got := bytes.Equal(tt.a, tt.b); got != tt.wantEqual {
				t.Errorf("equal = %v, want %v", got, tt.wantEqual)
			}
		})
	}
}
