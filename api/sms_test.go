package api_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/internal/smsgw"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/sim"
)

// withModems starts n simulated modems on real pseudo-terminals, drives
// them with the real driver through a gateway, and runs the service's SMS
// dispatcher on it.
func (s *stack) withModems(t *testing.T, n int) []*sim.Modem {
	t.Helper()
	var mods []*sim.Modem
	var confs []config.Modem
	for i := range n {
		m, err := sim.NewModem(sim.ModemOptions{DeliveryReports: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		mods = append(mods, m)
		confs = append(confs, config.Modem{Name: fmt.Sprint("m", i), Device: m.Path(), Baud: 115200, Mode: "pdu", StatusReports: true,
			CommandTimeout: 3 * time.Second, SendTimeout: 5 * time.Second, RegisterTimeout: 10 * time.Second})
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := smsgw.Open(ctx, confs, smsgw.Options{OnDelivery: func(r modem.DeliveryReport) {
		if r.Final {
			s.svc.DeliveryReported(ctx, r.Modem, r.Ref, r.Delivered, fmt.Sprintf("status 0x%02x", r.Status))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.svc.SMS = gw
	s.svc.Notifier = s.svc
	done := make(chan struct{})
	go func() { defer close(done); _ = s.svc.RunSMS(ctx, n) }()
	t.Cleanup(func() { cancel(); <-done; gw.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for !gw.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("modems not ready: %+v", gw.Statuses())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return mods
}

var smsCodeRE = regexp.MustCompile(`\b\d{6,8}\b`)

// smsCode waits for the next message to number on any of the modems and
// returns the code in it.
func smsCode(t *testing.T, number string, mods ...*sim.Modem) (string, *sim.Modem) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan struct {
		sms sim.SMS
		m   *sim.Modem
	}, len(mods))
	for _, m := range mods {
		go func() {
			if s, err := m.WaitSMS(ctx, number); err == nil {
				got <- struct {
					sms sim.SMS
					m   *sim.Modem
				}{s, m}
			}
		}()
	}
	select {
	case r := <-got:
		cancel()
		code := smsCodeRE.FindString(r.sms.Text)
		if code == "" {
			t.Fatalf("no code in %q", r.sms.Text)
		}
		return code, r.m
	case <-ctx.Done():
		t.Fatalf("no SMS to %s", number)
	}
	return "", nil
}

// addPhone enrolls and confirms a phone for user.
func (s *stack) addPhone(t *testing.T, user, number string, mods ...*sim.Modem) {
	t.Helper()
	ctx := context.Background()
	r, err := s.cl.EnrollPhone(ctx, user, number, "mobile")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := smsCode(t, number, mods...)
	if _, err := s.cl.ConfirmPhone(ctx, user, r.FactorID, code); err != nil {
		t.Fatal(err)
	}
}

func TestSMSEnrollAndLogin(t *testing.T) {
	s := newStack(t)
	mods := s.withModems(t, 1)
	ctx := context.Background()
	const number = "+447911123456"

	r, err := s.cl.EnrollPhone(ctx, "pat", "+44 7911 123456", "mobile")
	if err != nil {
		t.Fatal(err)
	}
	if r.SentTo != "+44••••••3456" || r.ExpiresIn != 600 {
		t.Fatalf("enroll = %+v", r)
	}
	msg, err := mods[0].WaitSMS(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(msg.Text, "pat") || !strings.Contains(msg.Text, "10 minutes") {
		t.Fatalf("message text %q", msg.Text)
	}
	code := smsCodeRE.FindString(msg.Text)
	if _, err := s.cl.ConfirmPhone(ctx, "pat", r.FactorID, "000000"); !client.IsCode(err, wire.CodeCodeRejected) {
		t.Fatalf("wrong confirmation code: %v", err)
	}
	res, err := s.cl.ConfirmPhone(ctx, "pat", r.FactorID, code)
	if err != nil || len(res.RecoveryCodes) != s.cfg.Recovery.Count {
		t.Fatalf("confirm = %+v, %v (want recovery codes: the phone is pat's only factor)", res, err)
	}
	u, _ := s.cl.User(ctx, "pat")
	if len(u.Factors) != 1 || u.Factors[0].Phone != "+44••••••3456" || u.Factors[0].Status != "active" {
		t.Fatalf("user = %+v", u)
	}

	// Log in with an SMS code.
	l, err := s.cl.Login(ctx, wire.LoginRequest{User: "pat", Service: "sshd", RHost: "192.0.2.4"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Default != "sms" || !slices.Equal(l.Methods, []string{"sms", "recovery"}) || !strings.Contains(l.Prompt, "SMS") {
		t.Fatalf("login = %+v", l)
	}
	sent, err := s.cl.LoginSMS(ctx, l.LoginID, "")
	if err != nil || sent.SentTo != "+44••••••3456" {
		t.Fatalf("sms = %+v, %v", sent, err)
	}
	code, _ = smsCode(t, number, mods...)
	v, err := s.cl.LoginVerify(ctx, l.LoginID, code, "")
	if err != nil || v.Result != "ok" || v.Method != "sms" {
		t.Fatalf("verify = %+v, %v", v, err)
	}
	// One use only.
	l2, _ := s.cl.Login(ctx, wire.LoginRequest{User: "pat", Service: "sshd", RHost: "192.0.2.4"})
	if v, _ := s.cl.LoginVerify(ctx, l2.LoginID, code, ""); v.Result != "fail" {
		t.Fatalf("a used code again = %+v", v)
	}
	// The audit has the send, masked.
	a, _ := s.cl.Audit(ctx, client.AuditQuery{User: "pat", Action: "sms.send"})
	if len(a.Events) == 0 || !strings.Contains(a.Events[0].Detail, "+44••••••3456") || strings.Contains(a.Events[0].Detail, "123456") {
		t.Fatalf("audit = %+v", a.Events)
	}
	if strings.Contains(s.log.all(), code) {
		t.Fatal("an SMS code appears in the daemon log")
	}
	// The network's delivery report is recorded against the message.
	for i := 0; ; i++ {
		a, _ := s.cl.Audit(ctx, client.AuditQuery{User: "pat", Action: "sms.delivery"})
		if len(a.Events) >= 2 && a.Events[0].Result == "delivered" && strings.Contains(a.Events[0].Detail, "via m0") {
			break
		}
		if i == 100 {
			t.Fatalf("delivery reports = %+v", a.Events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSMSCodeRules(t *testing.T) {
	s := newStack(t)
	mods := s.withModems(t, 1)
	ctx := context.Background()
	const number = "+14155550123"
	s.addPhone(t, "quin", number, mods...)
	start := func() string {
		l, err := s.cl.Login(ctx, wire.LoginRequest{User: "quin", Service: "sshd"})
		if err != nil {
			t.Fatal(err)
		}
		return l.LoginID
	}
	send := func(id string) string {
		if _, err := s.cl.LoginSMS(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
		code, _ := smsCode(t, number, mods...)
		return code
	}

	t.Run("expiry", func(t *testing.T) {
		st := s.svc.Settings()
		st.SMS.CodeTTL = 2 * time.Minute
		s.svc.SetSettings(st)
		defer func() { st.SMS.CodeTTL = 10 * time.Minute; s.svc.SetSettings(st) }()
		id := start()
		code := send(id)
		s.clock.Add(2*time.Minute + time.Second)
		if v, _ := s.cl.LoginVerify(ctx, id, code, ""); v.Result != "fail" {
			t.Fatalf("expired code = %+v", v)
		}
	})
	t.Run("a new code voids the previous one", func(t *testing.T) {
		id := start()
		first := send(id)
		second := send(id)
		if first != second {
			if v, _ := s.cl.LoginVerify(ctx, id, first, ""); v.Result != "fail" {
				t.Fatalf("voided code = %+v", v)
			}
		}
		if v, _ := s.cl.LoginVerify(ctx, id, second, ""); v.Result != "ok" {
			t.Fatalf("new code = %+v", v)
		}
	})
	t.Run("tries exhausted", func(t *testing.T) {
		_ = s.svc.Unlock(ctx, service.Internal, "quin")
		id := start()
		code := send(id)
		for range s.cfg.SMS.MaxTries {
			if v, _ := s.cl.LoginVerify(ctx, id, "99999999", "sms"); v.Result == "ok" {
				t.Fatal("wrong code accepted")
			}
		}
		_ = s.svc.Unlock(ctx, service.Internal, "quin")
		if v, _ := s.cl.LoginVerify(ctx, id, code, ""); v.Result != "fail" {
			t.Fatalf("code after max_tries = %+v", v)
		}
	})
	t.Run("hourly limit", func(t *testing.T) {
		s.clock.Add(time.Hour)
		id := start()
		var err error
		for i := 0; i <= s.cfg.SMS.PerUserHourly && err == nil; i++ {
			_, err = s.cl.LoginSMS(ctx, id, "")
		}
		if !client.IsCode(err, wire.CodeRateLimited) {
			t.Fatalf("over the hourly limit: %v", err)
		}
		a, _ := s.cl.Audit(ctx, client.AuditQuery{User: "quin", Action: "sms.login"})
		if a.Events[0].Result != "refused" {
			t.Fatalf("audit = %+v", a.Events[0])
		}
	})
}

// One of two modems fails every send, then stops answering: every code
// still arrives, through the other.
func TestSMSFailoverAcrossModems(t *testing.T) {
	s := newStack(t)
	mods := s.withModems(t, 2)
	ctx := context.Background()
	st := s.svc.Settings()
	st.SMS.PerUserHourly, st.SMS.PerNumberHourly = 100, 100
	s.svc.SetSettings(st)
	const number = "+33612345678"
	s.addPhone(t, "rene", number, mods...)
	check := func(what string) {
		t.Helper()
		for i := range 4 {
			l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "rene", Service: "sshd"})
			if _, err := s.cl.LoginSMS(ctx, l.LoginID, ""); err != nil {
				t.Fatalf("%s %d: %v", what, i, err)
			}
			code, via := smsCode(t, number, mods...)
			if via != mods[1] {
				t.Fatalf("%s %d: delivered by the broken modem", what, i)
			}
			if v, _ := s.cl.LoginVerify(ctx, l.LoginID, code, ""); v.Result != "ok" {
				t.Fatalf("%s %d: verify = %+v", what, i, v)
			}
		}
	}
	mods[0].FailSends(-1, 500)
	check("failing modem")
	mods[0].Reset()
	mods[0].Wedge(true)
	check("wedged modem")
}

// Many phones enrolled at once through one modem: every confirmation
// message reaches its phone exactly once, whether a free worker took it
// straight from its request or it waited in the queue, and every code
// confirms its phone.
func TestSMSConcurrentEnrollmentsOneModem(t *testing.T) {
	s := newStack(t)
	mods := s.withModems(t, 1)
	st := s.svc.Settings()
	st.SMS.GlobalHourly = 1000
	s.svc.SetSettings(st)
	const n, clients = 24, 6
	number := func(i int) string { return fmt.Sprintf("+4479112%05d", i) }
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := c; i < n; i += clients {
				user := fmt.Sprintf("u%02d", i)
				r, err := s.cl.EnrollPhone(ctx, user, number(i), "mobile")
				if err != nil {
					errs <- fmt.Errorf("%s: %w", user, err)
					return
				}
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				msg, err := mods[0].WaitSMS(wctx, number(i))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("%s: %w", user, err)
					return
				}
				if _, err := s.cl.ConfirmPhone(ctx, user, r.FactorID, smsCodeRE.FindString(msg.Text)); err != nil {
					errs <- fmt.Errorf("%s: confirming: %w", user, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Let a duplicate, if any, arrive.
	time.Sleep(100 * time.Millisecond)
	per := map[string]int{}
	for _, m := range mods[0].Inbox() {
		per[m.To]++
	}
	for i := range n {
		if per[number(i)] != 1 {
			t.Errorf("%s received %d messages, want 1", number(i), per[number(i)])
		}
	}
	if len(per) != n {
		t.Errorf("messages went to %d numbers, want %d", len(per), n)
	}
}
