package authenticator

import (
	"net/url"
	"strings"
	"testing"
)

func TestURLAndQR(t *testing.T) {
	u := URL("Example Corp", "ann@example.com", "JBSWY3DPEHPK3PXP")
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "otpauth" || p.Host != "totp" || p.Query().Get("secret") != "JBSWY3DPEHPK3PXP" ||
		p.Query().Get("issuer") != "Example Corp" || !strings.Contains(p.EscapedPath(), "Example%20Corp:ann@example.com") {
		t.Fatalf("URL = %q (%v)", u, err)
	}
	qr, err := QRDataURI(u, 200)
	if err != nil || !strings.HasPrefix(qr, "data:image/png;base64,") || len(qr) < 500 {
		t.Fatalf("QRDataURI: %.60q %v", qr, err)
	}
	if _, err := QRDataURI("::not a url", 200); err == nil {
		t.Error("an unparsable URL made a QR code")
	}
}
