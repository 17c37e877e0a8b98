package u2f

// The client side: Client talks to the security keys plugged into this
// machine through a Source. Unlike the verification functions it performs
// I/O and waits for the user.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flynn/u2f/u2ftoken"
)

// Outcomes of Client operations that callers branch on.
var (
	// ErrNoKey reports that no usable security key is plugged in.
	ErrNoKey = errors.New("u2f: no security key plugged in")
	// ErrUnknownHandle reports that keys are plugged in but none holds any of
	// the given key handles. It wraps ErrNoKey, so errors.Is(err, ErrNoKey)
	// also holds; test for ErrUnknownHandle first to tell the cases apart.
	ErrUnknownHandle = fmt.Errorf("u2f: no plugged key holds a registered key handle: %w", ErrNoKey)
	// ErrTimeout reports that nobody touched a key within Client.Timeout.
	ErrTimeout = errors.New("u2f: timed out waiting for a key touch")
)

// Defaults for the zero Client fields.
const (
	DefaultTimeout = 30 * time.Second
	DefaultPoll    = 200 * time.Millisecond
)

// maxHandleLen is the largest key handle the U2F framing can carry.
const maxHandleLen = 255

// Key is one plugged authenticator.
type Key struct {
	// Path identifies the key: the hidraw node, or a simulated key's name.
	Path string
	// Name is a human-readable vendor/product name.
	Name string
	// Dev is the APDU transport to the key.
	Dev u2ftoken.Device

	close func() // releases Dev; may be nil
}

// Close releases the key's transport. It is a no-op for keys without one
// (StaticSource keys).
func (k Key) Close() {
	if k.close != nil {
		k.close()
	}
}

// Source lists the keys plugged in right now. Client calls Keys at the start
// of every operation, so keys plugged or pulled while the daemon runs are
// noticed, and Closes every returned key when the operation ends. Keys may
// return usable keys together with a non-nil error describing devices that
// could not be opened.
type Source interface {
	Keys() ([]Key, error)
}

// StaticSource is a fixed list of keys, used for simulated keys.
type StaticSource []Key

// Keys returns a copy of the list.
func (s StaticSource) Keys() ([]Key, error) {
	return append([]Key(nil), s...), nil
}

// Client runs U2F operations against the keys of a Source, waiting a bounded
// time for the user to touch a key. A Client is safe for concurrent use if
// its Source, Sleep and Now are, but operations on the same physical key
// should not overlap. A Message call already sent to a key is not
// interrupted by ctx; cancellation is noticed between requests.
type Client struct {
	Source Source
	// Timeout bounds the wait for a touch; DefaultTimeout when zero.
	Timeout time.Duration
	// Poll is the retry interval while a key asks for presence;
	// DefaultPoll when zero.
	Poll time.Duration
	// Sleep waits d or until ctx is done, returning ctx.Err() in that case.
	// Nil means a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock the Timeout is measured on; nil means time.Now.
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) poll() time.Duration {
	if c.Poll > 0 {
		return c.Poll
	}
	return DefaultPoll
}

// keys lists the plugged keys. It returns ErrNoKey (joined with the listing
// error, if any) when none is usable. The returned function closes them all.
func (c *Client) keys() ([]Key, func(), error) {
	if c.Source == nil {
		return nil, nil, ErrNoKey
	}
	keys, err := c.Source.Keys()
	closeAll := func() {
		for _, k := range keys {
			k.Close()
		}
	}
	if len(keys) == 0 {
		if err != nil {
			return nil, nil, fmt.Errorf("%w: listing keys: %w", ErrNoKey, err)
		}
		return nil, nil, ErrNoKey
	}
	return keys, closeAll, nil
}

// Plugged reports whether at least one usable key is plugged in now.
func (c *Client) Plugged() bool {
	_, closeAll, err := c.keys()
	if err != nil {
		return false
	}
	closeAll()
	return true
}

// attempt is one key being asked for an operation.
type attempt struct {
	key    Key
	tok    *u2ftoken.Token
	handle []byte // the handle to sign with (Authenticate only)
}

// pollPresence calls try on every attempt, round after round, until one
// succeeds (try returns true), the Timeout passes, ctx ends or every attempt
// has failed. try returns u2ftoken.ErrPresenceRequired to be asked again in
// the next round; any other error drops the attempt.
func (c *Client) pollPresence(ctx context.Context, attempts []attempt, try func(attempt) error) (attempt, error) {
	deadline := c.now().Add(c.timeout())
	var lastErr error
	for {
		if err := ctx.Err(); err != nil {
			return attempt{}, err
		}
		live := attempts[:0:0]
		for _, a := range attempts {
			err := try(a)
			switch {
			case err == nil:
				return a, nil
			case errors.Is(err, u2ftoken.ErrPresenceRequired):
				live = append(live, a)
			default:
				lastErr = fmt.Errorf("key %s: %w", a.key.Path, err)
			}
		}
		attempts = live
		if len(attempts) == 0 {
			return attempt{}, fmt.Errorf("all keys failed: %w", lastErr)
		}
		remaining := deadline.Sub(c.now())
		if remaining <= 0 {
			return attempt{}, ErrTimeout
		}
		if err := c.sleep(ctx, min(c.poll(), remaining)); err != nil {
			return attempt{}, err
		}
	}
}

// winker is implemented by keys that can blink (u2fhid.Device, sim.U2FKey).
type winker interface{ Wink() error }

// Register asks every plugged key to register (appParam, challengeParam) and
// returns the raw registration response of the first key touched (status
// word stripped, as VerifyRegistration expects) and that key's Path. It
// returns ErrNoKey when no key is plugged, ErrTimeout when nobody touches a
// key within Timeout and ctx.Err() when ctx ends first. A key that fails
// (pulled mid-request, garbage answers) is dropped from the attempt; when
// every key has failed the last failure is returned wrapped.
func (c *Client) Register(ctx context.Context, appParam, challengeParam [32]byte) (raw []byte, keyPath string, err error) {
	keys, closeAll, err := c.keys()
	if err != nil {
		return nil, "", err
	}
	defer closeAll()
	attempts := make([]attempt, len(keys))
	for i, k := range keys {
		attempts[i] = attempt{key: k, tok: u2ftoken.NewToken(k.Dev)}
		// Keys that can blink show the user which one to touch.
		if w, ok := k.Dev.(winker); ok {
			_ = w.Wink()
		}
	}
	req := u2ftoken.RegisterRequest{Challenge: bytes.Clone(challengeParam[:]), Application: bytes.Clone(appParam[:])}
	a, err := c.pollPresence(ctx, attempts, func(a attempt) error {
		r, err := a.tok.Register(req)
		raw = r
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("registering: %w", err)
	}
	return bytes.Clone(raw), a.key.Path, nil
}

// Authenticate finds the plugged keys holding one of handles with
// check-only requests, which never need a touch, then asks only those keys to
// sign with user presence, polling until one of them is touched (a key is
// asked with the first of handles it holds). It returns the handle used and
// the raw authentication response (flags | counter | signature) for
// VerifyAuthentication. Handles that cannot be framed (empty or longer than
// 255 bytes) are ignored.
//
// It returns ErrNoKey when no key is plugged, ErrUnknownHandle when no
// plugged key holds any handle, ErrTimeout when no holding key is touched
// within Timeout and ctx.Err() when ctx ends first. A key that fails is
// dropped; when every key has failed, the last failure is returned wrapped.
func (c *Client) Authenticate(ctx context.Context, appParam, challengeParam [32]byte, handles [][]byte) (handle, raw []byte, err error) {
	keys, closeAll, err := c.keys()
	if err != nil {
		return nil, nil, err
	}
	defer closeAll()
	req := u2ftoken.AuthenticateRequest{Challenge: bytes.Clone(challengeParam[:]), Application: bytes.Clone(appParam[:])}

	var (
		holding []attempt
		lastErr error
		failed  int
	)
	for _, k := range keys {
		a, err := findHandle(ctx, k, req, handles)
		switch {
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case err != nil:
			lastErr = fmt.Errorf("key %s: %w", k.Path, err)
			failed++
		case a.handle != nil:
			holding = append(holding, a)
		}
	}
	switch {
	case failed == len(keys):
		return nil, nil, fmt.Errorf("authenticating: all keys failed: %w", lastErr)
	case len(holding) == 0:
		return nil, nil, ErrUnknownHandle
	}

	a, err := c.pollPresence(ctx, holding, func(a attempt) error {
		r := req
		r.KeyHandle = a.handle
		resp, err := a.tok.Authenticate(r)
		if err == nil {
			raw = resp.RawResponse
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("authenticating: %w", err)
	}
	return bytes.Clone(a.handle), bytes.Clone(raw), nil
}

// findHandle asks k, check-only, about each handle in turn. It returns an
// attempt with the first handle k holds, an attempt with a nil handle when k
// holds none, or the key's failure.
func findHandle(ctx context.Context, k Key, req u2ftoken.AuthenticateRequest, handles [][]byte) (attempt, error) {
	tok := u2ftoken.NewToken(k.Dev)
	for _, h := range handles {
		if err := ctx.Err(); err != nil {
			return attempt{}, err
		}
		if len(h) == 0 || len(h) > maxHandleLen {
			continue
		}
		req.KeyHandle = h
		err := tok.CheckAuthenticate(req)
		if err == nil {
			return attempt{key: k, tok: tok, handle: h}, nil
		}
		if !errors.Is(err, u2ftoken.ErrUnknownKeyHandle) {
			return attempt{}, err
		}
	}
	return attempt{key: k, tok: tok}, nil
}
