// Package httpclient builds the HTTP clients of the sender and the scraper
// from the settings Prometheus users know: basic auth, an authorization
// header, TLS with a CA and a client certificate, extra headers and a proxy.
// Secrets are read from files at request time, so that a rotated token is
// used without a restart, and never appear in logs or printed configuration.
package httpclient

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is one client's settings, in prometheus.yml's spelling.
type Config struct {
	BasicAuth       *BasicAuth        `yaml:"basic_auth"`
	Authorization   *Authorization    `yaml:"authorization"`
	BearerToken     Secret            `yaml:"bearer_token"`      // older spelling of authorization.credentials
	BearerTokenFile string            `yaml:"bearer_token_file"` // older spelling of authorization.credentials_file
	TLS             TLSConfig         `yaml:"tls_config"`
	ProxyURL        string            `yaml:"proxy_url"`
	Headers         map[string]string `yaml:"headers"`
}

// BasicAuth sends a username and a password, the password best from a file.
type BasicAuth struct {
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Authorization sends "Authorization: TYPE CREDENTIALS"; TYPE defaults to Bearer.
type Authorization struct {
	Type            string `yaml:"type"`
	Credentials     Secret `yaml:"credentials"`
	CredentialsFile string `yaml:"credentials_file"`
}

// TLSConfig verifies the server against CAFile (the system's roots when
// empty) and, with CertFile and KeyFile, presents a client certificate.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	MinVersion         string `yaml:"min_version"` // TLS12 (default) or TLS13
}

// Secret is a string that prints as <secret>.
type Secret string

func (Secret) String() string                  { return "<secret>" }
func (Secret) MarshalYAML() (any, error)       { return "<secret>", nil }
func (s Secret) GoString() string              { return s.String() }
func (s Secret) Format(f fmt.State, verb rune) { io.WriteString(f, s.String()) }

// reservedHeaders are set by ferry itself or by the auth settings; a header
// setting must not override them.
var reservedHeaders = map[string]bool{
	"Authorization": true, "Host": true, "Content-Encoding": true, "Content-Length": true,
	"Content-Type": true, "User-Agent": true, "Connection": true, "Transfer-Encoding": true,
	"X-Prometheus-Remote-Write-Version": true, "Accept": true, "Accept-Encoding": true,
}

// maxSecretFile bounds what is read from a password or token file.
const maxSecretFile = 64 << 10

// Validate reports the first setting that cannot work. It reads the files
// named, so that a wrong path fails at start, not at the first request.
func (c *Config) Validate() error {
	auths := 0
	if c.BasicAuth != nil {
		auths++
		if c.BasicAuth.Username == "" {
			return errors.New("basic_auth: username is required")
		}
		if c.BasicAuth.Password != "" && c.BasicAuth.PasswordFile != "" {
			return errors.New("basic_auth: password and password_file are mutually exclusive")
		}
		if c.BasicAuth.PasswordFile != "" {
			if _, err := readSecret(c.BasicAuth.PasswordFile); err != nil {
				return fmt.Errorf("basic_auth: %w", err)
			}
		}
	}
	if (c.BearerToken != "" || c.BearerTokenFile != "") && c.Authorization != nil {
		return errors.New("authorization and bearer_token(_file) are mutually exclusive")
	}
	if a := c.authorization(); a != nil {
		auths++
		if strings.EqualFold(a.Type, "basic") {
			return errors.New("authorization: type Basic: use basic_auth instead")
		}
		if a.Credentials != "" && a.CredentialsFile != "" {
			return errors.New("authorization: credentials and credentials_file are mutually exclusive")
		}
		if a.CredentialsFile != "" {
			if _, err := readSecret(a.CredentialsFile); err != nil {
				return fmt.Errorf("authorization: %w", err)
			}
		}
	}
	if auths > 1 {
		return errors.New("basic_auth and authorization are mutually exclusive")
	}
	for name := range c.Headers {
		if reservedHeaders[textproto.CanonicalMIMEHeaderKey(name)] {
			return fmt.Errorf("headers: %s is set by ferry or by the auth settings", name)
		}
	}
	if c.ProxyURL != "" {
		u, err := url.Parse(c.ProxyURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("proxy_url: %q is not an http(s) URL", RedactURL(c.ProxyURL))
		}
	}
	_, err := c.TLS.build()
	return err
}

// NewTransport returns a transport with c's TLS and proxy settings that adds
// c's headers and credentials to every request. Call Validate first.
func (c *Config) NewTransport() (http.RoundTripper, error) {
	tlsCfg, err := c.TLS.build()
	if err != nil {
		return nil, err
	}
	proxy := http.ProxyFromEnvironment // HTTP(S)_PROXY and NO_PROXY, never for loopback
	if c.ProxyURL != "" {
		u, err := url.Parse(c.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("proxy_url: %w", err)
		}
		proxy = http.ProxyURL(u)
	}
	t := &http.Transport{
		Proxy:                 proxy,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   2, // one sender or one scraper per client
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 0, // the caller's timeout covers the whole request
	}
	auth := c.authorization()
	if c.BasicAuth == nil && auth == nil && len(c.Headers) == 0 {
		return t, nil
	}
	return &authTransport{next: t, headers: c.Headers, basic: c.BasicAuth, auth: auth}, nil
}

// authorization is the Authorization setting, or the older bearer_token
// spelling of it; nil if neither is set.
func (c *Config) authorization() *Authorization {
	a := c.Authorization
	if a == nil && (c.BearerToken != "" || c.BearerTokenFile != "") {
		a = &Authorization{Credentials: c.BearerToken, CredentialsFile: c.BearerTokenFile}
	}
	if a != nil && a.Type == "" {
		a = &Authorization{Type: "Bearer", Credentials: a.Credentials, CredentialsFile: a.CredentialsFile}
	}
	return a
}

// authTransport adds headers and credentials, reading secret files each time.
type authTransport struct {
	next    http.RoundTripper
	headers map[string]string
	basic   *BasicAuth
	auth    *Authorization
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context()) // a RoundTripper must not change its argument
	for name, value := range t.headers {
		req.Header.Set(name, value)
	}
	if b := t.basic; b != nil {
		password := string(b.Password)
		if b.PasswordFile != "" {
			p, err := readSecret(b.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("basic_auth: %w", err)
			}
			password = p
		}
		req.SetBasicAuth(b.Username, password)
	}
	if a := t.auth; a != nil {
		creds := string(a.Credentials)
		if a.CredentialsFile != "" {
			c, err := readSecret(a.CredentialsFile)
			if err != nil {
				return nil, fmt.Errorf("authorization: %w", err)
			}
			creds = c
		}
		req.Header.Set("Authorization", a.Type+" "+creds)
	}
	return t.next.RoundTrip(req)
}

// readSecret reads a password or token file, without its trailing newline.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("%s: larger than %d bytes", path, maxSecretFile)
	}
	data = bytes.TrimRight(data, "\r\n")
	if len(data) == 0 {
		return "", fmt.Errorf("%s: empty", path)
	}
	return string(data), nil
}

// build turns the settings into a tls.Config. The client certificate is
// read again at each handshake, so that a renewed certificate is used
// without a restart.
func (c TLSConfig) build() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // only when the user turns verification off
	}
	switch c.MinVersion {
	case "", "TLS12":
	case "TLS13":
		cfg.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tls_config: min_version %q: want TLS12 or TLS13", c.MinVersion)
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_config: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_config: ca_file %s: no PEM certificate in it", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("tls_config: cert_file and key_file go together")
	}
	if c.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			return nil, fmt.Errorf("tls_config: client certificate: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls_config: client certificate: %w", err)
			}
			return &cert, nil
		}
	}
	return cfg, nil
}

// RedactURL hides a password in a URL's user info, for logs and pages; a
// string that does not parse as a URL is not shown at all.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}
