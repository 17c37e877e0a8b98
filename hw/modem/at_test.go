package modem

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
)

// These tests drive the real serial, AT and PDU code against a scripted
// peer on a pseudo-terminal, to put bytes on the line at exact points of
// an exchange. The tests against the simulated modem are in
// modem_test.go and pool_test.go.

const to = "+15555550123"

func TestURCsInsideAnswers(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	p.on("+CGMI", func(p *peer, _ string) { p.reply("^RSSI: 12", "peer", "+CMTI: \"SM\",3", "OK") })
	p.on("+CSQ", func(p *peer, _ string) { p.reply("RING", "+CSQ: 15,99", "+CREG: 1", "OK") })
	// The URC forms of +CREG ("<stat>" and "<stat>,<lac>,<ci>") must not
	// be taken for the answer "<n>,<stat>".
	p.on("+CREG?", func(p *peer, _ string) {
		p.reply(`+CREG: 1,"00C3","0010"`, "+CREG: 5", "+CREG: 0,2", "OK")
	})
	p.on("+CEREG?", func(p *peer, _ string) { p.reply("+CEREG: 1", "+CEREG: 0,5", "+CIEV: 2,1", "OK") })
	p.on("+COPS?", func(p *peer, _ string) { p.reply("+CREG: 2", `+COPS: 0,0,"peer, net",7`, "RING", "OK") })
	p.on("+CMGS=", func(p *peer, _ string) { p.reply("RING"); p.raw("\r\n> ") })
	p.setOnBody(func(p *peer, _ string) {
		p.reply("+CDS: 25")
		p.reply("RING", "+CMGS: 42", "^BOOT: 1,2", "OK")
	})
	m, _ := openPeer(t, p, peerConfig(p))
	st := m.Status()
	if st.Manufacturer != "peer" || st.SignalDBm != -83 || st.Registration != "roaming" || st.Operator != "peer, net" {
		t.Errorf("status = %+v", st)
	}
	r, err := m.Send(context.Background(), to, "hello")
	if err != nil || r.Outcome != Sent || !slices.Equal(r.Refs, []int{42}) {
		t.Fatalf("Send = %+v, %v", r, err)
	}
}

func TestLateAnswerAfterTimeoutIsNotTakenForTheNext(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	// +CGMM answers after the command timeout; without resynchronisation
	// its late "scripted"/OK would become the answer to +CGMR.
	p.on("+CGMM", func(p *peer, _ string) {
		go func() { time.Sleep(3500 * time.Millisecond); p.reply("scripted", "OK") }()
	})
	m, _ := openPeer(t, p, peerConfig(p))
	st := m.Status()
	if st.Model != "" || st.Revision != "1.0" {
		t.Errorf("model %q revision %q, want \"\" and \"1.0\"", st.Model, st.Revision)
	}
	if p.count("+CSQ") < 2 {
		t.Errorf("no resynchronisation probe: commands %q", first(p.sent()))
	}
}

func first(a, _ []string) []string { return a }

func TestStaleOKBeforePromptFailsWithoutBody(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	m, _ := openPeer(t, p, peerConfig(p))
	// A stale OK arrives just before the prompt: the at package ends the
	// +CMGS on it, before the body was asked for.
	p.on("+CMGS=", func(p *peer, _ string) {
		p.reply("OK")
		time.Sleep(50 * time.Millisecond)
		p.raw("\r\n> ")
	})
	r, err := m.Send(context.Background(), to, "hello")
	if r.Outcome != Failed || !errors.Is(err, errOutOfStep) {
		t.Fatalf("Send = %+v, %v; want Failed, out of step", r, err)
	}
	p.on("+CMGS=", prompt)
	r, err = m.Send(context.Background(), to, "again")
	if err != nil || r.Outcome != Sent {
		t.Fatalf("second Send = %+v, %v", r, err)
	}
	if _, bodies := p.sent(); len(bodies) != 1 {
		t.Errorf("peer got %d bodies, want 1 (only the second message)", len(bodies))
	}
}

func TestNoPromptIsWedgedAndBodyNeverFollows(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	m, _ := openPeer(t, p, peerConfig(p))
	// The prompt comes only after the driver gave up: the body must not
	// be written then, or the message would go out after "Failed".
	latePrompt := make(chan struct{})
	p.on("+CMGS=", func(p *peer, _ string) {
		go func() { time.Sleep(3500 * time.Millisecond); p.raw("\r\n> "); close(latePrompt) }()
	})
	start := time.Now()
	r, err := m.Send(context.Background(), to, "hello")
	took := time.Since(start)
	if r.Outcome != Failed || !errors.Is(err, ErrTimeout) {
		t.Fatalf("Send = %+v, %v; want Failed, timeout", r, err)
	}
	if st := m.Status(); st.State == StateReady {
		t.Errorf("state after a wedged send = %s, want not ready", st.State)
	}
	t.Logf("wedged send returned after %v", took)
	p.on("+CMGS=", prompt)
	eventually(t, "modem re-initialised", func() bool { return m.Status().State == StateReady })
	<-latePrompt
	// The stray prompt left the peer waiting for a body; the driver
	// escapes it before its next command instead of having that command
	// swallowed.
	eventually(t, "stray prompt noticed", func() bool { return m.strayPrompt.Load() })
	if r, err := m.Send(context.Background(), to, "again"); err != nil || r.Outcome != Sent {
		t.Fatalf("Send after re-init = %+v, %v", r, err)
	}
	if _, bodies := p.sent(); len(bodies) != 1 {
		t.Fatalf("peer got %d bodies, want 1 (only the second message)", len(bodies))
	}
}

func TestNoResultIsUnknownAndLateResultLogged(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	m, log := openPeer(t, p, peerConfig(p))
	late := make(chan struct{})
	p.setOnBody(func(p *peer, _ string) {
		go func() { time.Sleep(7 * time.Second); p.reply("+CMGS: 9", "OK"); close(late) }()
	})
	r, err := m.Send(context.Background(), to, "hello")
	if r.Outcome != Unknown || !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("Send = %+v, %v; want Unknown after a timeout", r, err)
	}
	<-late
	eventually(t, "late answer logged", func() bool { return strings.Contains(log.String(), "late +CMGS answer") })
	p.setOnBody(func(p *peer, _ string) { p.reply("+CMGS: 10", "OK") })
	r, err = m.Send(context.Background(), to, "again")
	if err != nil || !slices.Equal(r.Refs, []int{10}) {
		t.Fatalf("next Send = %+v, %v; want ref 10 (not the late 9)", r, err)
	}
	if st := m.Status(); st.Unknown != 1 || st.Sent != 1 {
		t.Errorf("counters = %+v", st)
	}
}

func TestCancelBeforeBodyFails(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	m, _ := openPeer(t, p, peerConfig(p))
	asked, prompted := make(chan struct{}), make(chan struct{})
	p.on("+CMGS=", func(p *peer, _ string) {
		close(asked)
		go func() { time.Sleep(300 * time.Millisecond); p.raw("\r\n> "); close(prompted) }()
	})
	// The caller gives up after the command went out, before the prompt.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-asked; cancel() }()
	r, err := m.Send(ctx, to, "hello")
	if r.Outcome != Failed || !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %+v, %v; want Failed, canceled", r, err)
	}
	<-prompted
	p.on("+CMGS=", prompt)
	// The next send waits for the abandoned one to end; the late prompt
	// must not have produced a body.
	if r, err := m.Send(context.Background(), to, "again"); err != nil || r.Outcome != Sent {
		t.Fatalf("next Send = %+v, %v", r, err)
	}
	if _, bodies := p.sent(); len(bodies) != 1 {
		t.Fatalf("peer got %d bodies, want 1", len(bodies))
	}
}

func TestCancelAfterBodyIsUnknown(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	m, log := openPeer(t, p, peerConfig(p))
	got := make(chan struct{})
	p.setOnBody(func(p *peer, _ string) {
		close(got)
		go func() { time.Sleep(2 * time.Second); p.reply("+CMGS: 3", "OK") }()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	r, err := m.Send(ctx, to, "hello")
	if r.Outcome != Unknown || !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %+v, %v; want Unknown, canceled", r, err)
	}
	eventually(t, "late outcome logged", func() bool {
		return strings.Contains(log.String(), "send finished after the caller stopped waiting")
	})
	if st := m.Status(); st.Sent != 1 {
		t.Errorf("late result not counted: %+v", st)
	}
}

func TestPartialSendFails(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	m, _ := openPeer(t, p, peerConfig(p))
	n := 0
	p.setOnBody(func(p *peer, _ string) {
		n++
		if n == 2 {
			p.reply("+CMS ERROR: 42")
			return
		}
		p.reply("+CMGS: 1", "OK")
	})
	r, err := m.Send(context.Background(), to, strings.Repeat("long message ", 30))
	if r.Outcome != Failed || r.Parts != 3 || !slices.Equal(r.Refs, []int{1}) || !errors.Is(err, ErrRejected) {
		t.Fatalf("Send = %+v, %v; want Failed after 1 of 3 parts, rejected", r, err)
	}
	if !strings.Contains(err.Error(), "+cms error 42") {
		t.Errorf("error %q does not name the code", err)
	}
}

func TestPlainErrorAfterBodyIsUnknown(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	m, _ := openPeer(t, p, peerConfig(p))
	p.setOnBody(func(p *peer, _ string) { p.reply("ERROR") })
	r, err := m.Send(context.Background(), to, "hello")
	if r.Outcome != Unknown || !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("Send = %+v, %v; want Unknown", r, err)
	}
	p.setOnBody(func(p *peer, _ string) { p.reply("+CMS ERROR: 500") })
	r, err = m.Send(context.Background(), to, "hello")
	if r.Outcome != Failed || !errors.Is(err, ErrRejected) {
		t.Fatalf("Send = %+v, %v; want Failed, rejected", r, err)
	}
}

// TestConcatenationReferences checks that two long messages get different
// references, that every part of one carries the same, and that the
// parts go out in order.
func TestConcatenationReferences(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	m, _ := openPeer(t, p, peerConfig(p))
	for range 2 {
		if r, err := m.Send(context.Background(), to, strings.Repeat("0123456789", 20)); err != nil || r.Parts != 2 {
			t.Fatalf("Send = %+v, %v", r, err)
		}
	}
	_, bodies := p.sent()
	if len(bodies) != 4 {
		t.Fatalf("%d bodies, want 4", len(bodies))
	}
	var refs []int
	for i, b := range bodies {
		pdu, err := pdumode.UnmarshalHexString(b)
		if err != nil {
			t.Fatal(err)
		}
		var tp tpdu.TPDU
		tp.Direction = tpdu.MO
		if err := tp.UnmarshalBinary(pdu.TPDU); err != nil {
			t.Fatal(err)
		}
		n, seq, ref, ok := tp.ConcatInfo()
		if !ok || n != 2 || seq != i%2+1 {
			t.Errorf("part %d: concat %d/%d ok=%v", i, seq, n, ok)
		}
		if tp.DA.Number() != to {
			t.Errorf("part %d: to %q", i, tp.DA.Number())
		}
		refs = append(refs, ref)
	}
	if refs[0] != refs[1] || refs[2] != refs[3] || refs[0] == refs[2] {
		t.Errorf("concatenation references %v, want a pair and another pair", refs)
	}
	_ = hex.EncodeToString
}

func TestTextModeWire(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	cfg := peerConfig(p)
	cfg.Mode = "text"
	cfg.StatusReports = true
	m, _ := openPeer(t, p, cfg)
	r, err := m.Send(context.Background(), to, "Code: 123456")
	if err != nil || r.Outcome != Sent {
		t.Fatalf("Send = %+v, %v", r, err)
	}
	cmds, bodies := p.sent()
	if !slices.Contains(cmds, "+CMGF=1") || !slices.Contains(cmds, "+CSMP=49,167,0,0") ||
		!slices.Contains(cmds, `+CMGS="`+to+`"`) {
		t.Errorf("commands %q", cmds)
	}
	if !slices.Equal(bodies, []string{"Code: 123456"}) {
		t.Errorf("bodies %q", bodies)
	}
	for _, text := range []string{"Grüße", "a_b", "x@y", "€5", "line\nbreak", strings.Repeat("a", 161)} {
		if r, err := m.Send(context.Background(), to, text); r.Outcome != Failed || !errors.Is(err, ErrNotEncodable) {
			t.Errorf("Send(%q) = %+v, %v; want ErrNotEncodable", text, r, err)
		}
	}
}

func TestRefusedNotifySettingTurnsReportsOff(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	p.on("+CNMI=", func(p *peer, _ string) { p.reply("+CMS ERROR: 303") })
	cfg := peerConfig(p)
	cfg.StatusReports = true
	m, _ := openPeer(t, p, cfg)
	if m.Status().StatusReports {
		t.Error("status reports on although +CNMI was refused")
	}
	if _, err := m.Send(context.Background(), to, "hello"); err != nil {
		t.Fatal(err)
	}
	_, bodies := p.sent()
	pdu, _ := pdumode.UnmarshalHexString(bodies[0])
	if pdu.TPDU[0]&tpdu.FoSRR != 0 {
		t.Error("status report requested although the modem cannot deliver it")
	}
}
