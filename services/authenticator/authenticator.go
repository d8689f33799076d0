// Package authenticator is what an authenticator app needs to be set up:
// the otpauth:// URL it scans and that URL as a QR code the page shows
// inline. Self-service registration and administrators' second factor
// both use it.
package authenticator

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net/url"

	"github.com/pquerna/otp"
)

// URL is the otpauth:// URL of a TOTP secret (SHA-1, 6 digits, 30 s: what
// every authenticator app reads) for account at issuer.
func URL(issuer, account, secret string) string {
	label := url.PathEscape(issuer + ":" + account)
	q := url.Values{"secret": {secret}, "issuer": {issuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + label + "?" + q.Encode()
}

// QRDataURI renders an otpauth URL as a size×size PNG QR code in a data:
// URI, so the page needs nothing from outside the portal.
func QRDataURI(otpauth string, size int) (string, error) {
	k, err := otp.NewKeyFromURL(otpauth)
	if err != nil {
		return "", err
	}
	img, err := k.Image(size, size)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}
