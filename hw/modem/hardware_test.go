package modem_test

import (
	"flag"
	"os"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/modem"
)

// Opt-in checks against a real modem. Without -modem the test skips;
// only -modem-send-to makes it send an SMS (and spend money):
//
//	go test -run TestHardwareModem ./hw/modem/ -modem=/dev/serial/by-id/usb-...-if02-port0 \
//	    [-modem-pin-file=/etc/mfad/gsm0.pin] [-modem-mode=text] [-modem-send-to=+4915112345678]
var (
	hwDevice  = flag.String("modem", "", "serial port of a real modem to test (skipped when empty)")
	hwPINFile = flag.String("modem-pin-file", "", "SIM PIN file for -modem")
	hwMode    = flag.String("modem-mode", "pdu", `"pdu" or "text" for -modem`)
	hwTo      = flag.String("modem-send-to", "", "with -modem: send one test SMS to this E.164 number")
)

func TestHardwareModem(t *testing.T) {
	if *hwDevice == "" {
		t.Skip("no real modem given (-modem=/dev/serial/by-id/...)")
	}
	if _, err := os.Stat(*hwDevice); err != nil {
		t.Skipf("modem %s not present: %v", *hwDevice, err)
	}
	reports := make(chan modem.DeliveryReport, 8)
	m := open(t, modem.Config{
		Name: "hardware", Device: *hwDevice, PINFile: *hwPINFile, Mode: *hwMode,
		StatusReports: true, OnDelivery: func(r modem.DeliveryReport) { reports <- r },
	})
	deadline := time.Now().Add(3 * time.Minute)
	for m.Status().State != modem.StateReady {
		if time.Now().After(deadline) {
			t.Fatalf("modem not ready: %+v", m.Status())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("status: %+v", m.Status())
	if *hwTo == "" {
		return
	}
	r, err := m.Send(ctxTimeout(t, 2*time.Minute), *hwTo, "mfad hardware test "+time.Now().Format(time.DateTime))
	if err != nil || r.Outcome != modem.Sent {
		t.Fatalf("Send = %+v, %v", r, err)
	}
	t.Logf("sent: %+v", r)
	select {
	case rep := <-reports:
		t.Logf("status report: %+v", rep)
	case <-time.After(2 * time.Minute):
		t.Log("no status report within 2 minutes (the network or modem may not deliver them)")
	}
}
