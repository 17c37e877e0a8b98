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
//     USB modems (dialout), and /dev/mfad/modem-* links;
//   - pam.d/: PAM stacks for sshd, sudo and login using pam_mfad.so,
//     shipped as examples in /usr/share/doc/mfad/examples/pam.d;
//   - deb/: the Debian package, built with nfpm (run as a tool:
//     make -C pam O=DIR, then go run
//     github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2 package -f
//     packaging/deb/nfpm.yaml -p deb -t DIR from the repository root, with
//     MFAD_BINARY, MFAD_PAM_MODULE, MFAD_PAMDIR, MFAD_VERSION and MFAD_ARCH
//     set; it ships the binary, pam_mfad.so, the units, sysusers, tmpfiles
//     and udev files, the configuration and the docs), and its maintainer
//     scripts: create users and directories, generate /etc/mfad/mfad.key on
//     first install, reload udev, enable (never start) the units; purge
//     removes the key and the store.
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
// (see package internal/testenv). TestDebPackage builds the package and
// checks its metadata, files, modes and conffiles; with root and
// MFAD_DPKG_INSTALL_TEST=1 (set by CI) it also installs it with dpkg -i,
// runs the installed mfad, and purges it.
package packaging
