// Package packaging holds the files that install mfad as a system service;
// it has no Go API. The directory contains:
//
//   - systemd/mfad.service: the hardened unit (Type=notify with watchdog,
//     SIGHUP reload, StateDirectory=/RuntimeDirectory=/ConfigurationDirectory=,
//     the master key as credential mfad.key, device access limited to
//     ttyUSB, ttyACM and hidraw, Unix sockets only);
//   - systemd/mfad.socket: socket activation on /run/mfad/mfad.sock
//     (0660, group mfad-login);
//   - sysusers.d/mfad.conf: the mfad user and the mfad-login, mfad-admin and
//     mfad-u2f groups;
//   - tmpfiles.d/mfad.conf: /etc/mfad and /var/lib/mfad with their owners;
//   - udev/70-mfad.rules: group access to FIDO security keys (mfad-u2f) and
//     USB modems (dialout), and /dev/mfad/modem-* links.
//
// The tests check these files with the real systemd programs where they
// run offline: `systemd-analyze security --offline=true` must rate the
// service below 1.0 ("SAFE"); `systemd-analyze verify` must print nothing
// for both units (run on copies whose ExecStart= points at a freshly built
// mfad binary, because verify requires the binary to exist);
// `systemd-sysusers --root` and `systemd-tmpfiles --root --create` run
// against a temporary root and the resulting users, groups, owners and
// modes are checked. They also parse the units for the directives the
// daemon depends on and check the udev rules' syntax and groups. A test
// whose program is missing is skipped, or fails when MFAD_REQUIRE_TOOLS=1
// (see package internal/testenv).
package packaging
