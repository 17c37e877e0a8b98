package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/internal/smsgw"
	"github.com/mfad/mfad/sim"
)

// smsHardware is the modem gateway the daemon sends through.
type smsHardware struct {
	*smsgw.Gateway
	sim *sim.Modem // the simulated modem under --sim without modem blocks
}

// SimInboxName is the file, in the state directory, where the simulated
// modem's "phones" show what they received (mfad serve --sim only). It
// plays the part of the phone's screen.
const SimInboxName = "sim-phone-inbox.jsonl"

// openSMS opens the configured modems, or a simulated one when the daemon
// runs with simulated hardware and none is configured. It returns nil when
// there is no modem at all (SMS unavailable).
func openSMS(ctx context.Context, cfg *config.Config, simulated bool, log *slog.Logger, onDelivery func(modem.DeliveryReport)) (*smsHardware, error) {
	confs := cfg.Modems
	hw := &smsHardware{}
	if len(confs) == 0 && simulated {
		m, err := sim.NewModem(sim.ModemOptions{DeliveryReports: true, Log: log.With("component", "sim-modem")})
		if err != nil {
			return nil, fmt.Errorf("starting the simulated modem: %w", err)
		}
		hw.sim = m
		confs = []config.Modem{SimModemConfig(m.Path())}
		go writeSimInbox(ctx, m, filepath.Join(cfg.Storage.Dir, SimInboxName), log)
	}
	if len(confs) == 0 {
		return nil, nil
	}
	gw, err := smsgw.Open(ctx, confs, smsgw.Options{OnDelivery: onDelivery, Log: log})
	if err != nil {
		if hw.sim != nil {
			hw.sim.Close()
		}
		return nil, err
	}
	hw.Gateway = gw
	return hw, nil
}

// SimModemConfig is the configuration of a simulated modem on device.
func SimModemConfig(device string) config.Modem {
	return config.Modem{Name: "sim", Device: device, Baud: 115200, Mode: "pdu", StatusReports: true,
		CommandTimeout: 10 * time.Second, SendTimeout: 60 * time.Second, RegisterTimeout: 2 * time.Minute}
}

// Close closes the modems (and the simulated one).
func (h *smsHardware) Close() {
	if h == nil {
		return
	}
	h.Gateway.Close()
	if h.sim != nil {
		h.sim.Close()
	}
}

// writeSimInbox appends what the simulated phones receive to path (0600),
// one JSON object per line, until ctx ends.
func writeSimInbox(ctx context.Context, m *sim.Modem, path string, log *slog.Logger) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		log.Warn("cannot write the simulated phones' inbox", "path", path, "err", err)
		return
	}
	defer f.Close()
	seen := 0
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		inbox := m.Inbox()
		for _, s := range inbox[min(seen, len(inbox)):] {
			b, _ := json.Marshal(struct {
				Time time.Time `json:"time"`
				To   string    `json:"to"`
				Text string    `json:"text"`
			}{s.Time.UTC(), s.To, s.Text})
			_, _ = f.Write(append(b, '\n'))
		}
		seen = len(inbox)
	}
}
