// Command barewrite is the floor of the command-line reset benchmark
// (BenchmarkCommandLineReset): a fresh process that dials the directory over
// TLS, binds as the service account and writes one password, the least a
// one-shot reset can do. It reads the service account's password and the new
// password from standard input, one per line, so neither shows in the
// process list.
//
//	barewrite -type ad|openldap -url ldaps://… -ca ca.pem -bind-dn DN -dn USERDN
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
)

func main() {
	typ := flag.String("type", "ad", "ad or openldap")
	rawURL := flag.String("url", "", "ldaps:// URL of the server")
	caFile := flag.String("ca", "", "PEM file of the CA")
	bindDN := flag.String("bind-dn", "", "service account DN")
	dn := flag.String("dn", "", "DN of the account to write")
	flag.Parse()
	if err := run(*typ, *rawURL, *caFile, *bindDN, *dn); err != nil {
		fmt.Fprintln(os.Stderr, "barewrite:", err)
		os.Exit(1)
	}
}

func run(typ, rawURL, caFile, bindDN, dn string) error {
	in := bufio.NewScanner(os.Stdin)
	var lines []string
	for in.Scan() && len(lines) < 2 {
		lines = append(lines, strings.TrimRight(in.Text(), "\r"))
	}
	if len(lines) != 2 {
		return fmt.Errorf("want the bind password and the new password on standard input")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	conn, err := ldap.DialURL(rawURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: roots, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Bind(bindDN, lines[0]); err != nil {
		return err
	}
	if typ == "openldap" {
		_, err := conn.PasswordModify(ldap.NewPasswordModifyRequest(dn, "", lines[1]))
		return err
	}
	q := utf16.Encode([]rune(`"` + lines[1] + `"`))
	b := make([]byte, 2*len(q))
	for i, r := range q {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace("unicodePwd", []string{string(b)})
	return conn.Modify(req)
}
