package modem

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/warthog618/modem/at"
	"github.com/warthog618/modem/gsm"
)

var (
	// errOutOfStep marks a +CMGS that ended without the modem asking for
	// the message body: its final result belonged to an earlier command.
	errOutOfStep = errors.New("modem answered +CMGS without prompting for the message")
	// errNoReference marks a +CMGS answered OK without "+CMGS: <mr>",
	// which a modem in step never does: the OK may be stale.
	errNoReference = errors.New("+CMGS answered OK without a message reference")
)

// definitive reports whether err is a final refusal that certainly
// answers the message body: a +CMS or +CME ERROR with a code. A plain
// ERROR or OK after the body may be a stale answer to something else.
func definitive(err error) bool {
	var (
		cms *cmsError
		cme *cmeError
	)
	if errors.As(err, &cms) {
		return cms.code >= 0 || cms.text != ""
	}
	return errors.As(err, &cme) && (cme.code >= 0 || cme.text != "")
}

// Send sends text to the E.164 number to and reports the outcome (see
// Outcome); the error is nil exactly when the outcome is Sent. A send
// that has not started when ctx is done fails. Once a part's body was
// handed to the modem, Send still returns as soon as ctx is done, with
// Unknown; the modem finishes the exchange in the background and the log
// records its late result.
//
// Sends on one modem are serialised. A modem that is not ready fails with
// ErrNotReady, one whose rate limit is exhausted with ErrRateLimited, and
// both leave the message untouched. Invalid numbers and texts fail before
// any I/O with ErrInvalidNumber, ErrInvalidMessage, ErrMessageTooLong or,
// in text mode, ErrNotEncodable.
func (m *Modem) Send(ctx context.Context, to, text string) (Result, error) {
	res := Result{Outcome: Failed, Modem: m.cfg.Name}
	num, err := NormalizeE164(to)
	if err != nil {
		return res, err
	}
	if m.cfg.Mode == "text" {
		err = checkTextMode(text)
	} else {
		err = checkText(text)
	}
	if err != nil {
		return res, err
	}
	// Fail fast while the modem is not ready: initialisation holds the
	// lock for as long as it waits for the network.
	if err := m.checkReady(); err != nil {
		return res, err
	}
	if err := m.acquire(ctx); err != nil {
		return res, fmt.Errorf("waiting for modem %s: %w", m.cfg.Name, err)
	}
	if err := m.checkReady(); err != nil {
		m.release()
		return res, err
	}
	m.mu.Lock()
	c, reports := m.cur, m.reportsOn
	m.mu.Unlock()
	var pdus [][]byte
	res.Parts = 1
	if m.cfg.Mode != "text" {
		if pdus, err = m.enc.pdus(num, text, reports); err != nil {
			m.release()
			return res, err
		}
		res.Parts = len(pdus)
	}
	if d := m.rate.wait(m.cfg.Clock.Now(), res.Parts); d > 0 {
		m.release()
		return res, fmt.Errorf("modem %s: %w (free again in %v)", m.cfg.Name, ErrRateLimited, d.Round(time.Second))
	}

	m.mu.Lock()
	if m.closed() {
		m.mu.Unlock()
		m.release()
		return res, fmt.Errorf("modem %s: %w", m.cfg.Name, ErrClosed)
	}
	m.jobs.Add(1) // under mu, so Close waits for this job
	m.mu.Unlock()

	j := &sendJob{modem: m.cfg.Name, parts: res.Parts}
	m.guard.reset()
	type outcome struct {
		r   Result
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		defer m.jobs.Done()
		defer m.release()
		start := time.Now()
		r, err := m.sendParts(c, j, num, text, pdus)
		m.record(r, err, time.Since(start), phone(num), j)
		ch <- outcome{r, err}
	}()
	select {
	case o := <-ch:
		return o.r, o.err
	case <-ctx.Done():
		return j.abandon(&m.guard, ctx.Err())
	case <-m.closing:
		return j.abandon(&m.guard, ErrClosed)
	}
}

func (m *Modem) checkReady() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.st.State == StateClosed:
		return fmt.Errorf("modem %s: %w", m.cfg.Name, ErrClosed)
	case !m.ready:
		return fmt.Errorf("modem %s is %s: %w", m.cfg.Name, m.st.State, ErrNotReady)
	}
	return nil
}

// sendJob is the progress of one Send, shared between the caller and the
// goroutine talking to the modem.
type sendJob struct {
	modem string
	parts int

	mu        sync.Mutex
	abandoned bool
	refs      []int
}

// abandon gives up on the send: no further body is written, and the
// outcome is what is certain at this moment.
func (j *sendJob) abandon(g *guard, cause error) (Result, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.abandoned = true
	r := Result{Modem: j.modem, Parts: j.parts, Refs: slices.Clone(j.refs)}
	switch {
	case len(j.refs) == j.parts:
		r.Outcome = Sent
		return r, nil
	case !g.forbid():
		r.Outcome = Unknown
		return r, fmt.Errorf("modem %s: stopped waiting for the result of part %d of %d: %w: %w",
			j.modem, len(j.refs)+1, j.parts, ErrUnknownOutcome, cause)
	default:
		r.Outcome = Failed
		return r, fmt.Errorf("modem %s: send abandoned after %d of %d parts: %w", j.modem, len(j.refs), j.parts, cause)
	}
}

// sendParts sends the parts in order and stops at the first that fails.
// Caller holds the lock.
func (m *Modem) sendParts(c *conn, j *sendJob, num, text string, pdus [][]byte) (Result, error) {
	result := func(o Outcome) Result {
		return Result{Outcome: o, Modem: m.cfg.Name, Parts: j.parts, Refs: slices.Clone(j.refs)}
	}
	for i := 0; i < j.parts; i++ {
		j.mu.Lock()
		if j.abandoned || !m.guard.arm() {
			j.mu.Unlock()
			return result(Failed), fmt.Errorf("modem %s: send abandoned after %d of %d parts", m.cfg.Name, i, j.parts)
		}
		j.mu.Unlock()
		var pdu []byte
		if pdus != nil {
			pdu = pdus[i]
		}
		mr, err := m.sendPart(c, num, text, pdu)

		j.mu.Lock()
		written := m.guard.written()
		m.guard.settle()
		if written {
			m.rate.add(m.cfg.Clock.Now())
		}
		switch {
		case err == nil && !written, errors.Is(err, errNoReference) && !written:
			err = errOutOfStep
			c.resync = true
		case errors.Is(err, errNoReference):
			c.resync = true
		}
		if err == nil {
			j.refs = append(j.refs, mr)
		}
		j.mu.Unlock()
		if err != nil {
			where := fmt.Sprintf("part %d of %d", i+1, j.parts)
			if written && !definitive(err) {
				m.lateCMGS.Store(true)
				return result(Unknown), fmt.Errorf("modem %s: %s: %w: %w", m.cfg.Name, where, ErrUnknownOutcome, err)
			}
			return result(Failed), fmt.Errorf("modem %s: %s: %w", m.cfg.Name, where, err)
		}
	}
	return result(Sent), nil
}

// sendPart runs one +CMGS. It waits CommandTimeout for the "> " prompt: a
// modem that does not prompt is taken as wedged, its body is withheld for
// good and the connection is re-initialised. After the body is written it
// waits SendTimeout for the result.
func (m *Modem) sendPart(c *conn, num, text string, pdu []byte) (int, error) {
	if m.strayPrompt.Swap(false) {
		c.resync = true
	}
	if c.resync {
		if err := m.resynchronise(c); err != nil {
			return -1, err
		}
	}
	if err := c.alive(); err != nil {
		return -1, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	// A late answer to an earlier part would now be taken for this one's.
	m.lateCMGS.Store(false)
	type reply struct {
		rsp string
		err error
	}
	ch := make(chan reply, 1)
	timeout := at.WithTimeout(m.cfg.CommandTimeout + m.cfg.SendTimeout)
	go func() {
		var r reply
		if pdu != nil {
			r.rsp, r.err = c.gsm.SendPDU(pdu, timeout)
		} else {
			r.rsp, r.err = c.gsm.SendShortMessage(num, text, timeout)
		}
		ch <- r
	}()
	prompt := time.NewTimer(m.cfg.CommandTimeout)
	defer prompt.Stop()
	var r reply
	select {
	case r = <-ch:
	case <-prompt.C:
		if m.guard.forbid() {
			err := fmt.Errorf("no +CMGS prompt within %v: %w", m.cfg.CommandTimeout, ErrTimeout)
			m.breakConn(c, err)
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
			}
			return -1, err
		}
		r = <-ch
	}

	var (
		cms at.CMSError
		cme at.CMEError
	)
	switch err := r.err; {
	case err == nil:
		mr, perr := parseMR(r.rsp)
		if perr != nil {
			m.log.Warn("unreadable +CMGS answer; message sent without a reference", "err", perr)
		}
		return mr, nil
	case errors.Is(err, gsm.ErrMalformedResponse):
		return -1, errNoReference
	case errors.Is(err, at.ErrDeadlineExceeded):
		c.resync = true
		return -1, fmt.Errorf("no +CMGS result within %v: %w", m.cfg.SendTimeout, ErrTimeout)
	case errors.Is(err, at.ErrClosed):
		return -1, fmt.Errorf("connection lost: %v", c.cause())
	case errors.Is(err, errBodyForbidden):
		c.resync = true
		return -1, err
	case errors.As(err, &cms):
		return -1, newCMSError(string(cms))
	case errors.As(err, &cme):
		return -1, fmt.Errorf("%w: %v", ErrRejected, newCMEError(string(cme)))
	case errors.Is(err, at.ErrError):
		c.resync = true
		return -1, &cmsError{code: -1}
	default:
		return -1, fmt.Errorf("sending: %v", err)
	}
}

// record counts a finished send and logs it (number masked, never the
// text).
func (m *Modem) record(r Result, err error, took time.Duration, to phone, j *sendJob) {
	m.mu.Lock()
	m.st.LastSend = m.cfg.Clock.Now()
	switch r.Outcome {
	case Sent:
		m.st.Sent++
	case Failed:
		m.st.Failed++
	default:
		m.st.Unknown++
	}
	m.mu.Unlock()
	j.mu.Lock()
	abandoned := j.abandoned
	j.mu.Unlock()
	attrs := []any{"to", to, "parts", r.Parts, "refs", r.Refs, "outcome", r.Outcome, "took", took.Round(time.Millisecond)}
	switch {
	case abandoned:
		m.log.Warn("send finished after the caller stopped waiting", append(attrs, "err", err)...)
	case r.Outcome == Unknown:
		m.log.Warn("send outcome unknown", append(attrs, "err", err)...)
	case err != nil:
		m.log.Warn("send failed", append(attrs, "err", err)...)
	default:
		m.log.Info("message sent", attrs...)
	}
}
