package store

import (
	"crypto/hkdf"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// MasterKeySize is the size in bytes of the master key.
const MasterKeySize = 32

var (
	// ErrInsecureKeyFile is returned by LoadKey for a key file that is not a
	// regular file or is accessible by group or others.
	ErrInsecureKeyFile = errors.New("insecure key file")
	// ErrBadKeyFile is returned by LoadKey for a key file that does not hold
	// exactly 64 hex characters (optionally followed by a newline).
	ErrBadKeyFile = errors.New("malformed key file")
)

// DeriveKey derives a 32-byte key for label from master with HKDF-SHA256
// (no salt, label as info). Different labels give independent keys.
func DeriveKey(master []byte, label string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, label, 32)
	if err != nil {
		// hkdf.Key fails only for output lengths above 255*32 bytes.
		panic("store: hkdf: " + err.Error())
	}
	return k
}

// LoadKey reads a master key file: 64 hex characters, optionally followed by a
// newline. It refuses (ErrInsecureKeyFile) a file whose mode grants any access
// to group or others and (ErrBadKeyFile) a file of the wrong format. A missing
// file yields an error matching fs.ErrNotExist. Errors name the path, never the
// content.
func LoadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecureKeyFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, want no group or other access (chmod 600)",
			ErrInsecureKeyFile, path, perm)
	}
	buf := make([]byte, 2*MasterKeySize+2) // one byte more than the longest valid file
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading key file %s: %w", path, err)
	}
	text := buf[:n]
	if len(text) == 2*MasterKeySize+1 && text[len(text)-1] == '\n' {
		text = text[:len(text)-1]
	}
	key := make([]byte, MasterKeySize)
	if len(text) != 2*MasterKeySize {
		return nil, fmt.Errorf("%w: %s must hold %d hex characters", ErrBadKeyFile, path, 2*MasterKeySize)
	}
	if _, err := hex.Decode(key, text); err != nil {
		// The hex error quotes the offending byte: do not wrap it.
		return nil, fmt.Errorf("%w: %s must hold %d hex characters", ErrBadKeyFile, path, 2*MasterKeySize)
	}
	return key, nil
}

// CreateKey generates a new master key from rand (crypto/rand when nil) and
// writes it to path with mode 0600, creating the parent directory with mode
// 0700 if it is missing. It never overwrites: an existing path yields an error
// matching fs.ErrExist. The key is written to a temporary file in the same
// directory, synced, and linked into place, so path never holds a partial key.
func CreateKey(path string, rand io.Reader) ([]byte, error) {
	key := make([]byte, MasterKeySize)
	if _, err := io.ReadFull(randOrDefault(rand), key); err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("creating key file %s: %w", path, fs.ErrExist)
	}
	content := []byte(hex.EncodeToString(key) + "\n")

	tmp, err := os.CreateTemp(dir, ".mfad-key-*")
	if err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a successful link this only drops the temporary name
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(content)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing key file %s: %w", path, err)
	}
	// os.Link fails if path exists, unlike os.Rename.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("creating key file %s: %w", path, fs.ErrExist)
		}
		// The file system may not support hard links: fall back to O_EXCL.
		if err := writeExclusive(path, content); err != nil {
			return nil, err
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("syncing key directory: %w", err)
	}
	return key, nil
}

// writeExclusive creates path with O_EXCL and mode 0600 and writes content
// durably, removing the file again if writing fails.
func writeExclusive(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating key file: %w", err)
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return nil
}

// LoadOrCreateKey loads the key file at path; if it does not exist and create is
// true, it creates one (see CreateKey) and reports created. A key file created
// concurrently by someone else is loaded instead.
func LoadOrCreateKey(path string, create bool, rand io.Reader) (key []byte, created bool, err error) {
	key, err = LoadKey(path)
	if err == nil || !create || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key, err = CreateKey(path, rand)
	if errors.Is(err, fs.ErrExist) {
		key, err = LoadKey(path)
		return key, false, err
	}
	return key, err == nil, err
}

// syncDir fsyncs a directory so that entries created or removed in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// randOrDefault returns r, or crypto/rand's reader when r is nil.
func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return cryptorand.Reader
	}
	return r
}
