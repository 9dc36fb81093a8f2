// Command tlspeer is the Go side of the ztmesh TLS interoperability test (tests/tls_go.rs): a
// TLS 1.3 client or server with mutual certificate authentication and ALPN ztmesh/1, using only
// the standard library.
//
// It verifies the peer the way a Go service would verify a ztmesh device: the chain up to the
// root in -ca, the extended key usage of its role, and the SAN URI ztmesh://<tenant>/<device>
// given with -expect-uri. Our certificates carry no DNS name, so hostname verification is
// replaced by that URI check. With -expect-roles the peer must also carry a SAN URI
// urn:ztmesh:role:<role> for each listed role.
//
// Output, one line each, on stdout:
//
//	LISTEN <host:port>          (server, once listening)
//	CURVE <name>                ConnectionState().CurveID, e.g. X25519MLKEM768
//	RESUMED <true|false>
//	GOT <line>                  (server) the line the client sent
//	REPLY <line>                (client) the line the server answered
//	ERROR <message>             then exit status 1
//
// The client sends -message and a newline and waits for one line back, -connections times in
// turn (resuming the session after the first); the server accepts one connection, reads one
// line, answers "echo:" and that line, and waits for the client to close.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	mode := flag.String("mode", "", "client or server")
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (server) or dial (client)")
	certFile := flag.String("cert", "", "PEM certificate chain, leaf first")
	keyFile := flag.String("key", "", "PEM PKCS#8 private key")
	caFile := flag.String("ca", "", "PEM root certificate(s)")
	curves := flag.String("curves", "", "comma-separated key exchanges (X25519MLKEM768, X25519); empty: Go's default")
	expectURI := flag.String("expect-uri", "", "the SAN URI the peer's certificate must carry")
	expectRoles := flag.String("expect-roles", "", "comma-separated roles the peer's certificate must carry as urn:ztmesh:role: SAN URIs")
	message := flag.String("message", "hello from go", "the line the client sends")
	connections := flag.Int("connections", 1, "how many connections the client makes in turn (resuming after the first)")
	flag.Parse()

	expected := []string{}
	if *expectURI != "" {
		expected = append(expected, *expectURI)
	}
	for _, role := range strings.Split(*expectRoles, ",") {
		if role = strings.TrimSpace(role); role != "" {
			expected = append(expected, "urn:ztmesh:role:"+role)
		}
	}
	config, err := newConfig(*mode, *certFile, *keyFile, *caFile, *curves, expected)
	if err != nil {
		fail(err)
	}
	switch *mode {
	case "client":
		config.ClientSessionCache = tls.NewLRUClientSessionCache(8)
		for i := 0; i < *connections && err == nil; i++ {
			err = runClient(config, *addr, *message)
		}
	case "server":
		err = runServer(config, *addr)
	default:
		err = errors.New("-mode must be client or server")
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Printf("ERROR %v\n", err)
	os.Exit(1)
}

func newConfig(mode, certFile, keyFile, caFile, curves string, expectURIs []string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading key pair: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no root certificate in -ca")
	}
	config := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		NextProtos:   []string{"ztmesh/1"},
		RootCAs:      roots,
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		// The server's chain is verified in VerifyConnection: it has no DNS name to match.
		InsecureSkipVerify: true,
	}
	for _, name := range strings.Split(curves, ",") {
		switch strings.TrimSpace(name) {
		case "":
		case "X25519MLKEM768":
			config.CurvePreferences = append(config.CurvePreferences, tls.X25519MLKEM768)
		case "X25519":
			config.CurvePreferences = append(config.CurvePreferences, tls.X25519)
		default:
			return nil, fmt.Errorf("unknown curve %q", name)
		}
	}
	// A client verifies a server, which needs serverAuth; a server verifies a client.
	usage := x509.ExtKeyUsageServerAuth
	if mode == "server" {
		usage = x509.ExtKeyUsageClientAuth
	}
	config.VerifyConnection = func(state tls.ConnectionState) error {
		return verifyPeer(state, roots, usage, expectURIs)
	}
	return config, nil
}

// verifyPeer checks the peer's chain (on the client; Go's server already did with ClientCAs), its
// extended key usage, the negotiated protocol, and its SAN URIs.
func verifyPeer(state tls.ConnectionState, roots *x509.CertPool, usage x509.ExtKeyUsage, expectURIs []string) error {
	if len(state.PeerCertificates) == 0 {
		return errors.New("peer sent no certificate")
	}
	intermediates := x509.NewCertPool()
	for _, cert := range state.PeerCertificates[1:] {
		intermediates.AddCert(cert)
	}
	leaf := state.PeerCertificates[0]
	options := x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{usage}}
	if _, err := leaf.Verify(options); err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	if state.NegotiatedProtocol != "ztmesh/1" {
		return fmt.Errorf("negotiated protocol %q", state.NegotiatedProtocol)
	}
	for _, expectURI := range expectURIs {
		if !slices.ContainsFunc(leaf.URIs, func(u *url.URL) bool { return u.String() == expectURI }) {
			return fmt.Errorf("peer certificate does not name %s", expectURI)
		}
	}
	return nil
}

func report(state tls.ConnectionState) {
	fmt.Printf("CURVE %s\n", state.CurveID)
	fmt.Printf("RESUMED %t\n", state.DidResume)
}

func runClient(config *tls.Config, addr, message string) error {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, config)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return err
	}
	report(conn.ConnectionState())
	if _, err := fmt.Fprintf(conn, "%s\n", message); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	fmt.Printf("REPLY %s\n", strings.TrimSuffix(line, "\n"))
	return nil
}

func runServer(config *tls.Config, addr string) error {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer listener.Close()
	fmt.Printf("LISTEN %s\n", listener.Addr())
	raw, err := listener.Accept()
	if err != nil {
		return err
	}
	conn := tls.Server(raw, config)
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		return err
	}
	report(conn.ConnectionState())
	reader := bufio.NewReader(conn)
	line, err := reader.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	fmt.Printf("GOT %s\n", line)
	if _, err := fmt.Fprintf(conn, "echo:%s\n", line); err != nil {
		return err
	}
	// Wait for the client to close, so the reply is not cut off.
	_, _ = reader.ReadString('\n')
	return nil
}
