// Package smsgw connects the modem driver to the service: it opens the
// modems of the configuration as a hw/modem Pool and adapts that pool to
// service.SMSSender, /v1/status and the metrics. The daemon uses it, and so
// do tests that drive the real driver against the simulated modem.
package smsgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/metrics"
	"github.com/mfad/mfad/service"
)

// Gateway sends through a pool of modems. It is safe for concurrent use.
type Gateway struct {
	pool *modem.Pool
}

var _ service.SMSSender = (*Gateway)(nil)

// Options tune Open beyond the configuration.
type Options struct {
	// OnDelivery receives every delivery report of every modem.
	OnDelivery func(modem.DeliveryReport)
	// Pool tunes the pool (retry backoff, attempts).
	Pool modem.PoolOptions
	// Log receives the modems' events; nil discards them.
	Log *slog.Logger
}

// Open opens every modem of confs (each keeps itself open and initialised
// in the background until ctx ends or Close) and returns their pool. It
// fails only on an invalid modem configuration.
func Open(ctx context.Context, confs []config.Modem, o Options) (*Gateway, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var modems []*modem.Modem
	for _, c := range confs {
		mc := modem.Config{
			Name: c.Name, Device: c.Device, Baud: c.Baud, PINFile: c.PINFile, Mode: c.Mode,
			InitCommands: c.InitCommands, CommandTimeout: c.CommandTimeout, SendTimeout: c.SendTimeout,
			RegisterTimeout: c.RegisterTimeout, RatePerMinute: c.RateLimit, StatusReports: c.StatusReports,
			SMSC: c.SMSC, OnDelivery: o.OnDelivery,
		}
		m, err := modem.Open(ctx, mc, log.With("component", "modem", "modem", c.Name))
		if err != nil {
			for _, o := range modems {
				o.Close()
			}
			return nil, fmt.Errorf("modem %q: %w", c.Name, err)
		}
		modems = append(modems, m)
	}
	po := o.Pool
	if po.Log == nil {
		po.Log = log
	}
	return &Gateway{pool: modem.NewPool(modems, po)}, nil
}

// Close closes the modems.
func (g *Gateway) Close() error { return g.pool.Close() }

// SendSMS implements service.SMSSender.
func (g *Gateway) SendSMS(ctx context.Context, id, to, text string) (service.SMSReport, error) {
	res, err := g.pool.Send(ctx, modem.Message{To: to, Text: text, ID: id})
	rep := service.SMSReport{Modem: res.Modem, Parts: res.Parts, Refs: res.Refs, Attempts: len(res.Attempts)}
	switch res.Outcome {
	case modem.Sent:
		rep.Outcome = service.SMSSent
	case modem.Failed:
		rep.Outcome = service.SMSFailed
		rep.Permanent = errors.Is(err, modem.ErrInvalidNumber) || errors.Is(err, modem.ErrInvalidMessage) || errors.Is(err, modem.ErrMessageTooLong)
	default:
		rep.Outcome = service.SMSUnknown
	}
	return rep, err
}

// Ready implements service.SMSSender: some modem can send now.
func (g *Gateway) Ready() bool { return g.pool.Healthy() }

// Statuses lists the modems for /v1/status.
func (g *Gateway) Statuses() []wire.Modem {
	var out []wire.Modem
	for _, s := range g.pool.Statuses() {
		out = append(out, wire.Modem{Name: s.Name, Device: s.Device, Mode: s.Mode, State: string(s.State), Since: s.Since.UTC(),
			Error: s.Error, SIM: s.SIM, Registration: s.Registration, SignalDBm: s.SignalDBm, Operator: s.Operator,
			Manufacturer: s.Manufacturer, Model: s.Model, Revision: s.Revision, StatusReports: s.StatusReports,
			Sent: s.Sent, Failed: s.Failed, Unknown: s.Unknown, Delivered: s.Delivered})
	}
	return out
}

// Gauges is the modems' state for the metrics.
func (g *Gateway) Gauges() []metrics.ModemGauge {
	var out []metrics.ModemGauge
	for _, s := range g.pool.Statuses() {
		out = append(out, metrics.ModemGauge{Name: s.Name, SignalDBm: float64(s.SignalDBm),
			Registered: s.Registration == "home" || s.Registration == "roaming", Ready: s.State == modem.StateReady})
	}
	return out
}
