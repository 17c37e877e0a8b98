package u2f

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flynn/hid"
	"github.com/flynn/u2f/u2fhid"
	"github.com/flynn/u2f/u2ftoken"
)

var _ u2ftoken.Device = (*u2fhid.Device)(nil)

// HID is the Source of security keys on HID: by default the hidraw devices
// advertising the FIDO usage page (0xF1D0), each opened and initialised with
// u2fhid.Open. The zero value is ready to use.
type HID struct {
	// Devices lists the devices to open, at the start of every operation.
	// Nil means u2fhid.Devices, every hidraw node with the FIDO usage page.
	// Package sim's U2FHID.Devices serves a simulated key this way, over
	// the same U2FHID framing code as a real one.
	Devices func() ([]*hid.DeviceInfo, error)
}

var _ Source = HID{}

// Keys opens every plugged U2F HID device. A device that fails to open (for
// example, no permission on its hidraw node, or pulled while being listed) is
// skipped; the keys that did open are returned together with an error joining
// every open failure, so a caller can both use the keys and report the
// failures. When nothing is plugged, Keys returns an empty list and a nil
// error. A failure to enumerate devices at all is returned wrapped, with no
// keys. Callers must Close the returned keys.
func (h HID) Keys() ([]Key, error) {
	list := h.Devices
	if list == nil {
		list = u2fhid.Devices
	}
	infos, err := list()
	if err != nil {
		return nil, fmt.Errorf("listing hid devices: %w", err)
	}
	var (
		keys []Key
		errs []error
	)
	for _, info := range infos {
		dev, err := u2fhid.Open(info)
		if err != nil {
			errs = append(errs, fmt.Errorf("opening %s: %w", info.Path, err))
			continue
		}
		keys = append(keys, Key{
			Path:  info.Path,
			Name:  hidName(info.Manufacturer, info.Product, info.VendorID, info.ProductID),
			Dev:   &retrying{dev: dev, sleep: time.Sleep},
			close: dev.Close,
		})
	}
	return keys, errors.Join(errs...)
}

// hidDevice is what retrying needs of a u2fhid.Device.
type hidDevice interface {
	Message(apdu []byte) ([]byte, error)
	Wink() error
}

// retrying works around two flynn/u2f quirks: a key answering "channel
// busy" (another program is talking to it) and flynn's fixed 3 s read
// timeout are both reported as plain errors, though both are transient. Such
// a request is retried up to three times with a growing pause before the key
// counts as failed. Retrying is safe: registration and check-only requests
// change nothing, and repeating a signature whose answer was lost only
// advances the key's counter, which the relying party accepts.
type retrying struct {
	dev   hidDevice
	sleep func(time.Duration)
}

func (r *retrying) Message(apdu []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		resp, err := r.dev.Message(apdu)
		if err == nil || attempt == 3 || !transient(err) {
			return resp, err
		}
		r.sleep(50 * time.Millisecond << attempt)
	}
}

func (r *retrying) Wink() error { return r.dev.Wink() }

// transient reports whether err is one of flynn's retryable HID errors; it
// has no typed errors, so this matches its messages.
func transient(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "channel busy") || strings.Contains(msg, "read timed out")
}

// hidName returns a human-readable name for a HID device.
func hidName(manufacturer, product string, vendorID, productID uint16) string {
	name := strings.TrimSpace(strings.TrimSpace(manufacturer) + " " + strings.TrimSpace(product))
	ids := fmt.Sprintf("%04x:%04x", vendorID, productID)
	if name == "" {
		return ids
	}
	return name + " (" + ids + ")"
}
