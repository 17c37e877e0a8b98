package otp

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
)

// URI returns the otpauth://totp/ enrolment URI of s in the Key URI format
// understood by authenticator apps: label "issuer:account" and the query
// parameters secret, issuer, algorithm, digits and period. Colons inside
// issuer or account are percent-encoded so the label stays unambiguous;
// an empty issuer leaves out both the label prefix and the parameter.
// The result contains the seed: treat it like the seed itself.
func URI(s Secret, issuer, account string, p Params) string {
	label := escapeLabel(account)
	query := []string{"secret=" + s.Base32()}
	if issuer != "" {
		label = escapeLabel(issuer) + ":" + label
		query = append(query, "issuer="+escapeQuery(issuer))
	}
	query = append(query,
		"algorithm="+escapeQuery(string(p.Algorithm)),
		"digits="+strconv.Itoa(p.Digits),
		"period="+strconv.FormatInt(int64(p.Period/time.Second), 10),
	)
	return "otpauth://totp/" + label + "?" + strings.Join(query, "&")
}

func escapeLabel(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
}

// escapeQuery encodes spaces as %20 rather than '+', which some apps show
// literally.
func escapeQuery(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// Bounds of the image size QRPNG accepts, in pixels.
const (
	MinQRSize = 21 // a version 1 QR code has 21 modules
	MaxQRSize = 4096
)

// QRPNG returns a size×size PNG image of a QR code (error correction level
// M) that encodes uri. size must be at least the number of modules the code
// needs (about 50 for a typical otpauth URI). The symbol is centred with
// only the margin left over from integer scaling and no guaranteed quiet
// zone, so display it on a light background. Errors never contain uri,
// which holds the seed.
func QRPNG(uri string, size int) ([]byte, error) {
	if size < MinQRSize || size > MaxQRSize {
		return nil, fmt.Errorf("rendering qr code: size must be between %d and %d", MinQRSize, MaxQRSize)
	}
	// The barcode library's errors may quote the content; do not wrap them.
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return nil, errors.New("rendering qr code: content cannot be encoded")
	}
	if modules := code.Bounds().Dx(); size < modules {
		return nil, fmt.Errorf("rendering qr code: size must be at least %d for this content", modules)
	}
	img, err := barcode.Scale(code, size, size)
	if err != nil {
		return nil, errors.New("rendering qr code: scaling failed")
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("rendering qr code: %w", err)
	}
	return buf.Bytes(), nil
}
