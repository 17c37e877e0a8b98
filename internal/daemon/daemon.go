// Package daemon wires mfad together: it resolves the encryption key, opens
// the store, builds the service and the socket API, listens (or takes the
// listener systemd passed), tells systemd it is ready, pings the watchdog,
// applies configuration reloads and drains in-flight requests on shutdown.
//
// It is shared by `mfad serve` and `mfad demo`, so the demo runs exactly the
// daemon an operator runs.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/mfad/mfad/api"
	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/metrics"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/sim"
	"github.com/mfad/mfad/store"
)

// Options configure Run.
type Options struct {
	Config *config.Config
	// ConfigPath is re-read on reload; "" means the embedded defaults (a
	// reload then changes nothing).
	ConfigPath string
	Env        config.Env
	// Simulated selects the simulated hardware from package sim.
	Simulated bool
	Log       *slog.Logger
	// Level is adjusted on reload when non-nil.
	Level   *slog.LevelVar
	Version string
	// Reload triggers a configuration reload (SIGHUP in `mfad serve`).
	Reload <-chan struct{}
	// Ready, when non-nil, is called once the socket accepts requests.
	Ready func(socket string)
}

// credentialName is the file name of the key under $CREDENTIALS_DIRECTORY
// (systemd LoadCredential=mfad.key:...).
const credentialName = "mfad.key"

// KeyPath returns where the store's master key is read from, and whether a
// missing key may be generated there (only for the default location).
func KeyPath(c *config.Config, credentialsDir string) (path string, create bool) {
	if c.Storage.KeyFile != "" {
		return c.Storage.KeyFile, false
	}
	if credentialsDir != "" {
		p := filepath.Join(credentialsDir, credentialName)
		if _, err := os.Stat(p); err == nil {
			return p, false
		}
	}
	return filepath.Join(c.Storage.Dir, "mfad.key"), true
}

// DBDir is the Badger directory inside the state directory; the key file
// lives beside it, never inside it.
func DBDir(c *config.Config) string { return filepath.Join(c.Storage.Dir, "db") }

// Run runs the daemon until ctx is cancelled, then shuts down gracefully.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	start := time.Now()

	// Take the socket first: a second daemon on the same socket is refused
	// before it touches the store. Connections wait in the backlog until
	// the API serves them.
	ln, activated, err := listen(cfg)
	if err != nil {
		return err
	}
	socket := cfg.Server.Socket
	if activated {
		socket = ln.Addr().String()
	} else {
		defer os.Remove(socket)
	}
	defer ln.Close()

	if err := os.MkdirAll(cfg.Storage.Dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	keyPath, create := KeyPath(cfg, os.Getenv("CREDENTIALS_DIRECTORY"))
	master, created, err := store.LoadOrCreateKey(keyPath, create, nil)
	if err != nil {
		return fmt.Errorf("loading encryption key: %w", err)
	}
	if created {
		log.Warn("generated a new encryption key; back it up together with the database", "key_file", keyPath)
	}
	db, err := store.Open(store.Options{Dir: DBDir(cfg), MasterKey: master, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("closing store", "err", err)
		}
	}()
	svc, err := service.New(db, store.DeriveKey(master, "mfad recovery-code hmac v1"), service.SettingsFrom(cfg), log)
	if err != nil {
		return err
	}
	if f := cfg.U2F.AttestationCAFile; f != "" {
		if _, err := service.LoadAttestationRoots(f); err != nil {
			return err
		}
	}
	keys, unplugKeys, err := u2fSource(o.Simulated)
	if err != nil {
		return err
	}
	defer unplugKeys()
	svc.U2F = &u2f.Client{Source: keys}
	smsCtx, stopSMS := context.WithCancel(context.WithoutCancel(ctx))
	smsHW, err := openSMS(smsCtx, cfg, o.Simulated, log, func(r modem.DeliveryReport) {
		if !r.Final {
			return
		}
		svc.DeliveryReported(smsCtx, r.Modem, r.Ref, r.Delivered, fmt.Sprintf("status 0x%02x", r.Status))
	})
	if err != nil {
		stopSMS()
		return err
	}
	smsDone := make(chan struct{})
	defer func() {
		// Stop the dispatcher first (a send in progress stays queued and
		// is sent again after a restart), then the modems.
		stopSMS()
		<-smsDone
		smsHW.Close()
	}()
	var modemStatus func() []wire.Modem
	var modemGauges func() []metrics.ModemGauge
	if smsHW != nil {
		svc.SMS = smsHW
		svc.Notifier = svc
		modemStatus, modemGauges = smsHW.Statuses, smsHW.Gauges
		go func() {
			defer close(smsDone)
			if err := svc.RunSMS(smsCtx, len(cfg.Modems)+1); err != nil {
				log.Error("sms dispatcher stopped", "err", err)
			}
		}()
	} else {
		close(smsDone)
	}
	m := metrics.New(o.Version, metrics.Gauges{
		Modems:  modemGauges,
		U2FKeys: func() float64 { k, _ := listKeys(keys); return float64(len(k)) },
		StoreBytes: func() (float64, float64) {
			lsm, vlog := db.Badger().Size()
			return float64(lsm), float64(vlog)
		},
	})
	svc.Metrics = m
	clear(master)

	authz, warnings := api.NewAuthorizer(os.Getuid(), cfg.Server.LoginGroups, cfg.Server.AdminGroups)
	for _, w := range warnings {
		log.Warn("ignoring unknown group", "detail", w)
	}
	srv := api.New(api.Options{
		Service: svc, Store: db, Authorizer: authz, Log: log, Version: o.Version,
		Limits:   limits(cfg),
		StoreDir: DBDir(cfg), Simulated: o.Simulated,
		U2FKeys: func() ([]wire.U2FKey, error) { return listKeys(keys) },
		Modems:  modemStatus,
		Metrics: m,
	})
	if addr := cfg.Metrics.Listen; addr != "" {
		mln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		msrv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	log.Info("listening", "socket", socket, "socket_activated", activated, "store", DBDir(cfg),
		"simulated_hardware", o.Simulated, "startup", time.Since(start).Round(time.Microsecond))
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyReady+"\nSTATUS=serving on "+socket)
	if o.Ready != nil {
		o.Ready(socket)
	}
	// Opening the store and compacting it leave garbage on the heap that the
	// Go runtime would hand back to the OS only slowly; trim it.
	go debug.FreeOSMemory()
	trim := time.NewTicker(30 * time.Second)
	defer trim.Stop()

	watchdog := time.NewTicker(time.Hour)
	watchdog.Stop()
	if iv, err := sddaemon.SdWatchdogEnabled(false); err == nil && iv > 0 {
		watchdog.Reset(iv / 2)
		log.Info("systemd watchdog enabled", "interval", iv)
	}
	defer watchdog.Stop()

	for {
		select {
		case <-ctx.Done():
			_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
			log.Info("shutting down", "drain_timeout", cfg.Server.ShutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
			err := srv.Shutdown(sctx)
			cancel()
			if err != nil {
				log.Warn("requests still running at shutdown", "err", err)
			}
			return nil
		case err := <-serveErr:
			return fmt.Errorf("serving: %w", err)
		case <-watchdog.C:
			// The ping is only sent while the store answers.
			if err := db.View(func(*store.Txn) error { return nil }); err == nil {
				_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			}
		case <-trim.C:
			trimHeap()
			// Time-driven account work: recovery requests taking effect,
			// reminders, ended bypasses.
			if err := svc.Tick(ctx); err != nil && ctx.Err() == nil {
				log.Error("periodic account work failed", "err", err)
			}
		case <-o.Reload:
			cfg = reload(ctx, o, cfg, svc, srv, authz, log)
		}
	}
}

// trimHeap returns free heap memory to the OS when more than 16 MiB of it
// is held (typically after a compaction), so an idle appliance keeps a small
// resident size. It costs one GC, at most every 30 s.
func trimHeap() {
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	rtmetrics.Read(sample)
	if sample[0].Value.Kind() == rtmetrics.KindUint64 && sample[0].Value.Uint64() > 16<<20 {
		debug.FreeOSMemory()
	}
}

// u2fSource returns where security keys come from: the hidraw devices of
// real keys, or with --sim a simulated key (package sim) that speaks the
// U2FHID framing on a pseudo-terminal, so flynn/u2f's own u2fhid code and
// the daemon's HID path run exactly as with a USB key. unplug removes the
// simulated key.
func u2fSource(simulated bool) (src u2f.Source, unplug func(), err error) {
	if !simulated {
		return u2f.HID{}, func() {}, nil
	}
	key, err := sim.NewU2FKey(sim.U2FKeyOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("creating the simulated U2F key: %w", err)
	}
	dev := sim.NewU2FHID(key, sim.U2FHIDOptions{})
	return u2f.HID{Devices: dev.Devices}, func() { dev.Close() }, nil
}

// listKeys describes the keys plugged in now, for /v1/status.
func listKeys(src u2f.Source) ([]wire.U2FKey, error) {
	keys, err := src.Keys()
	out := make([]wire.U2FKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, wire.U2FKey{Path: k.Path, Name: k.Name})
		k.Close()
	}
	return out, err
}

func limits(c *config.Config) api.Limits {
	return api.Limits{MaxRequestBytes: c.Server.MaxRequestBytes, ReadTimeout: c.Server.ReadTimeout, WriteTimeout: c.Server.WriteTimeout}
}

// reload re-reads the configuration and applies what can change live. A
// config with errors is refused as a whole and the old one stays in force.
func reload(ctx context.Context, o Options, old *config.Config, svc *service.Service, srv *api.Server, authz *api.Authorizer, log *slog.Logger) *config.Config {
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyReloading)
	defer sddaemon.SdNotify(false, sddaemon.SdNotifyReady)
	if o.ConfigPath == "" {
		log.Info("reload requested; running on embedded defaults, nothing to reload")
		return old
	}
	cfg, files, diags := config.LoadFile(o.ConfigPath, o.Env)
	if diags.HasErrors() {
		var b strings.Builder
		_ = config.WriteDiagnostics(&b, files, diags)
		log.Error("reload refused: configuration has errors; keeping the running configuration", "diagnostics", b.String())
		_ = svc.Record(ctx, service.Internal, "config.reload", "fail", "configuration has errors")
		return old
	}
	applied, restart := config.Changes(old, cfg)
	// Options that need a restart keep their running values.
	cfg.Server.Socket, cfg.Server.SocketMode, cfg.Server.SocketGroup = old.Server.Socket, old.Server.SocketMode, old.Server.SocketGroup
	cfg.Storage = old.Storage
	svc.SetSettings(service.SettingsFrom(cfg))
	srv.SetLimits(limits(cfg))
	for _, w := range authz.SetGroups(cfg.Server.LoginGroups, cfg.Server.AdminGroups) {
		log.Warn("ignoring unknown group", "detail", w)
	}
	if o.Level != nil {
		o.Level.Set(cfg.Log.Level)
	}
	detail := "applied: " + list(applied)
	if len(restart) > 0 {
		detail += "; need a restart: " + list(restart)
	}
	log.Info("configuration reloaded", "applied", applied, "needs_restart", restart)
	_ = svc.Record(ctx, service.Internal, "config.reload", "ok", detail)
	return cfg
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// listen returns the socket-activated listener from systemd if there is
// one, else a new Unix socket at the configured path with the configured
// mode and group. It refuses to replace a socket another process is
// listening on and removes a stale one.
func listen(c *config.Config) (net.Listener, bool, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, false, fmt.Errorf("reading systemd sockets: %w", err)
	}
	for _, l := range lns {
		if l != nil {
			return l, true, nil
		}
	}
	path := c.Server.Socket
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, fmt.Errorf("creating socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, false, fmt.Errorf("socket path %s exists and is not a socket; refusing to replace it", path)
		}
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil, false, fmt.Errorf("another daemon is listening on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, false, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	// Create the socket with no access for anyone, then open it up to the
	// configured mode: no window in which it is wider.
	old := syscall.Umask(0o777)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, false, fmt.Errorf("listening on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, bool, error) {
		ln.Close()
		os.Remove(path)
		return nil, false, err
	}
	if c.Server.SocketGroup != "" {
		g, err := user.LookupGroup(c.Server.SocketGroup)
		if err != nil {
			return fail(fmt.Errorf("socket group %q: %w", c.Server.SocketGroup, err))
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Lchown(path, -1, gid); err != nil {
			return fail(fmt.Errorf("setting socket group: %w", err))
		}
	}
	if err := os.Chmod(path, c.Server.SocketMode); err != nil {
		return fail(fmt.Errorf("setting socket mode: %w", err))
	}
	return ln, false, nil
}
