package u2f

import (
	"errors"
	"fmt"
	"strings"

	"github.com/flynn/u2f/u2fhid"
	"github.com/flynn/u2f/u2ftoken"
)

var _ u2ftoken.Device = (*u2fhid.Device)(nil)

// HID is the Source of real security keys: the hidraw devices advertising
// the FIDO usage page (0xF1D0), each opened and initialised with
// u2fhid.Open. The zero value is ready to use.
type HID struct{}

var _ Source = HID{}

// Keys opens every plugged U2F HID device. A device that fails to open (for
// example, no permission on its hidraw node, or pulled while being listed) is
// skipped; the keys that did open are returned together with an error joining
// every open failure, so a caller can both use the keys and report the
// failures. When nothing is plugged, Keys returns an empty list and a nil
// error. A failure to enumerate devices at all is returned wrapped, with no
// keys. Callers must Close the returned keys.
func (HID) Keys() ([]Key, error) {
	infos, err := u2fhid.Devices()
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
			Dev:   dev,
			close: dev.Close,
		})
	}
	return keys, errors.Join(errs...)
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
