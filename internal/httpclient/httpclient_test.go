package httpclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	dir                          string
	caFile, certFile, keyFile    string // the client's
	serverCert                   tls.Certificate
	caPool                       *x509.CertPool
	otherCAFile                  string // a CA that signed nothing here
	clientSubject, serverSubject string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir, clientSubject: "device-0042", serverSubject: "receiver"}
	caKey, caCert, caDER := selfSigned(t, "ferry test CA")
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(caCert)
	_, _, otherDER := selfSigned(t, "another CA")
	p.otherCAFile = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherDER)

	serverKey, serverDER := signed(t, caKey, caCert, p.serverSubject, x509.ExtKeyUsageServerAuth)
	p.serverCert = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	clientKey, clientDER := signed(t, caKey, caCert, p.clientSubject, x509.ExtKeyUsageClientAuth)
	p.certFile = writePEM(t, dir, "client.pem", "CERTIFICATE", clientDER)
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	p.keyFile = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func selfSigned(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, der
}

func signed(t *testing.T, caKey *ecdsa.PrivateKey, ca *x509.Certificate, cn string, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"receiver.example"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// get sends one request through a client built from c.
func get(t *testing.T, c Config, url string) (*http.Response, error) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	rt, err := c.NewTransport()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	var sawClient string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawClient = r.TLS.PeerCertificates[0].Subject.CommonName
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.serverCert}, ClientCAs: p.caPool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	full := Config{TLS: TLSConfig{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}}
	if _, err := get(t, full, srv.URL); err != nil {
		t.Fatalf("with CA and client certificate: %v", err)
	}
	if sawClient != p.clientSubject {
		t.Errorf("server saw client %q, want %q", sawClient, p.clientSubject)
	}

	// The server name checked can differ from the address dialled.
	named := full
	named.TLS.ServerName = "receiver.example"
	if _, err := get(t, named, srv.URL); err != nil {
		t.Errorf("server_name matching the certificate: %v", err)
	}
	named.TLS.ServerName = "elsewhere.example"
	if _, err := get(t, named, srv.URL); err == nil {
		t.Error("server_name not in the certificate: connected")
	}

	for name, c := range map[string]Config{
		"system roots only":      {TLS: TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile}},
		"another CA":             {TLS: TLSConfig{CAFile: p.otherCAFile, CertFile: p.certFile, KeyFile: p.keyFile}},
		"no client certificate":  {TLS: TLSConfig{CAFile: p.caFile}},
		"skip verify, no client": {TLS: TLSConfig{InsecureSkipVerify: true}},
	} {
		if _, err := get(t, c, srv.URL); err == nil {
			t.Errorf("%s: connected, want a TLS error", name)
		}
	}
	// Verification off is the user's explicit choice, and then it connects.
	skip := Config{TLS: TLSConfig{InsecureSkipVerify: true, CertFile: p.certFile, KeyFile: p.keyFile}}
	if _, err := get(t, skip, srv.URL); err != nil {
		t.Errorf("insecure_skip_verify with a client certificate: %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	p := newPKI(t)
	notPEM := filepath.Join(p.dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tc := range []struct {
		cfg  TLSConfig
		want string
	}{
		{TLSConfig{CAFile: filepath.Join(p.dir, "missing.pem")}, "ca_file"},
		{TLSConfig{CAFile: notPEM}, "no PEM certificate"},
		{TLSConfig{CertFile: p.certFile}, "go together"},
		{TLSConfig{CertFile: p.certFile, KeyFile: p.caFile}, "client certificate"},
		{TLSConfig{MinVersion: "TLS10"}, "min_version"},
	} {
		c := Config{TLS: tc.cfg}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one with %q", tc.cfg, err, tc.want)
		}
	}
}

func TestCredentialsFromFilesEachRequest(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization")+" | "+r.Header.Get("X-Scope-OrgID"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	os.WriteFile(tokenFile, []byte("tok-1\n"), 0o600)

	basic := Config{BasicAuth: &BasicAuth{Username: "dev", PasswordFile: pwFile}, Headers: map[string]string{"X-Scope-OrgID": "fleet-a"}}
	bearer := Config{BearerTokenFile: tokenFile}
	custom := Config{Authorization: &Authorization{Type: "Token", Credentials: "abc"}}
	for _, c := range []Config{basic, bearer} {
		if _, err := get(t, c, srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	// Rotated secrets are used at the next request, without a restart.
	os.WriteFile(pwFile, []byte("n3w\n"), 0o600)
	os.WriteFile(tokenFile, []byte("tok-2"), 0o600)
	for _, c := range []Config{basic, bearer, custom} {
		if _, err := get(t, c, srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"Basic ZGV2OnMzY3JldA== | fleet-a", // dev:s3cret
		"Bearer tok-1 | ",
		"Basic ZGV2Om4zdw== | fleet-a", // dev:n3w
		"Bearer tok-2 | ",
		"Token abc | ",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server saw\n%q\nwant\n%q", got, want)
	}

	// A secret file that disappears fails the request, clearly.
	os.Remove(tokenFile)
	rt, _ := bearer.NewTransport()
	_, err := (&http.Client{Transport: rt}).Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "authorization") {
		t.Errorf("missing token file: err %v", err)
	}
}

func TestValidateRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{BasicAuth: &BasicAuth{PasswordFile: empty}}, "username is required"},
		{Config{BasicAuth: &BasicAuth{Username: "u", PasswordFile: empty}}, "empty"},
		{Config{BasicAuth: &BasicAuth{Username: "u", PasswordFile: filepath.Join(dir, "nope")}}, "no such file"},
		{Config{BasicAuth: &BasicAuth{Username: "u", Password: "p", PasswordFile: empty}}, "mutually exclusive"},
		{Config{BasicAuth: &BasicAuth{Username: "u"}, BearerToken: "t"}, "mutually exclusive"},
		{Config{Authorization: &Authorization{Credentials: "a"}, BearerTokenFile: empty}, "mutually exclusive"},
		{Config{Authorization: &Authorization{Type: "basic", Credentials: "a"}}, "use basic_auth"},
		{Config{Headers: map[string]string{"authorization": "x"}}, "set by ferry"},
		{Config{Headers: map[string]string{"Content-Encoding": "gzip"}}, "set by ferry"},
		{Config{ProxyURL: "socks5://proxy:1080"}, "not an http(s) URL"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one with %q", tc.cfg, err, tc.want)
		}
	}
}

func TestProxy(t *testing.T) {
	var proxied []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied = append(proxied, r.URL.String()) // a proxy sees the absolute URL
	}))
	defer proxy.Close()
	target := "http://receiver.invalid:9090/api/v1/write"
	if _, err := get(t, Config{ProxyURL: proxy.URL}, target); err != nil {
		t.Fatal(err)
	}

	// net/http reads HTTP_PROXY once per process: the check from the
	// environment runs in a child, through qemu-user in cross tests.
	args := []string{os.Args[0], "-test.run=^TestProxyFromEnvironmentChild$"}
	if emulator := os.Getenv("FERRY_TEST_EXEC"); emulator != "" {
		args = append([]string{emulator}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "FERRY_PROXY_CHILD_TARGET="+target, "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL, "NO_PROXY=", "no_proxy=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child with HTTP_PROXY set: %v\n%s", err, out)
	}
	if fmt.Sprint(proxied) != fmt.Sprint([]string{target, target}) {
		t.Errorf("proxy saw %q, want the target twice (proxy_url, then HTTP_PROXY)", proxied)
	}
}

// TestProxyFromEnvironmentChild is TestProxy's child: a client without
// proxy_url must use HTTP_PROXY.
func TestProxyFromEnvironmentChild(t *testing.T) {
	target := os.Getenv("FERRY_PROXY_CHILD_TARGET")
	if target == "" {
		t.Skip("run by TestProxy")
	}
	if _, err := get(t, Config{}, target); err != nil {
		t.Fatal(err)
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	c := Config{BasicAuth: &BasicAuth{Username: "dev", Password: "hunter2"}, BearerToken: "tok-xyz",
		Authorization: &Authorization{Credentials: "cred-abc"}}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v %#v %s %q", c, c, c.BearerToken, c.BearerToken),
		fmt.Sprintf("%v %+v", *c.BasicAuth, *c.Authorization)} {
		for _, secret := range []string{"hunter2", "tok-xyz", "cred-abc"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q printed the secret %s", s, secret)
			}
		}
	}
}
