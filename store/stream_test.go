package store

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// newOpenReader returns a decrypting reader over enc.
func newOpenReader(enc []byte, aead cipher.AEAD) *openReader {
	return &openReader{
		r:    bufio.NewReader(bytes.NewReader(enc)),
		aead: aead,
		enc:  make([]byte, backupChunkSize+chacha20poly1305.Overhead),
	}
}

// TestStreamRoundTrip checks the chunked encryption on its own, at sizes
// around the chunk boundaries.
func TestStreamRoundTrip(t *testing.T) {
	aead, err := backupAEAD(testMasterKey(1), make([]byte, backupSaltSize))
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, backupChunkSize - 1, backupChunkSize, backupChunkSize + 1, 3 * backupChunkSize, 3*backupChunkSize + 17}
	for _, n := range sizes {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			plain := bytes.Repeat([]byte("0123456789"), n/10+1)[:n]
			var enc bytes.Buffer
			w := &sealWriter{w: &enc, aead: aead, buf: make([]byte, 0, backupChunkSize)}
			// Write in odd pieces.
			for rest := plain; len(rest) > 0; {
				k := min(len(rest), 1000+len(rest)%7777)
				if _, err := w.Write(rest[:k]); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			chunks := max(1, (n+backupChunkSize-1)/backupChunkSize)
			if want := n + chunks*chacha20poly1305.Overhead; enc.Len() != want {
				t.Errorf("ciphertext is %d bytes, want %d", enc.Len(), want)
			}
			got, err := io.ReadAll(newOpenReader(enc.Bytes(), aead))
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if !bytes.Equal(got, plain) {
				t.Errorf("round trip changed %d bytes into %d", len(plain), len(got))
			}
			if n > 0 {
				if _, err := io.ReadAll(newOpenReader(enc.Bytes()[:enc.Len()-1], aead)); !errors.Is(err, ErrBadBackup) {
					t.Errorf("truncated stream: %v, want ErrBadBackup", err)
				}
			}
		})
	}
}
