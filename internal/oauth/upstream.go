package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"smartgate/internal/config"
)

// Upstream OpenID Connect providers (federation.providers): smartgate is
// their relying party, with github.com/coreos/go-oidc/v3 for discovery and
// id_token verification (its RemoteKeySet caches the provider's JWKS and
// refetches it for an unknown kid) and golang.org/x/oauth2 for the code
// exchange.

// upstreamTimeout bounds every request to a provider.
const upstreamTimeout = 10 * time.Second

// discoveryTTL is how long a discovery document is used before it is
// fetched again (a failed refresh keeps the old one); discoveryRetry is
// the least time between two failed attempts, so that a provider that is
// down is not asked on every click.
const (
	discoveryTTL   = time.Hour
	discoveryRetry = 5 * time.Second
)

// federation holds the node's upstream providers, built on first use
// from the configuration.
type federation struct {
	once sync.Once
	byID map[string]*upstream
	list []*upstream
}

// upstream is one provider and its cached discovery.
type upstream struct {
	cfg    config.Provider
	client *http.Client
	// private_key_jwt: the key, its kid and its algorithm.
	signer crypto.Signer
	kid    string
	alg    jose.SignatureAlgorithm
	keyErr error

	mu       sync.Mutex
	provider *oidc.Provider
	meta     upstreamMeta
	fetched  time.Time
	failedAt time.Time
	failErr  error
}

// upstreamMeta are the discovery fields go-oidc does not keep.
type upstreamMeta struct {
	AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	// RFC 9207: the provider sends iss with its authorization response.
	IssParameter bool `json:"authorization_response_iss_parameter_supported"`
}

func (s *Server) upstreams() *federation {
	f := &s.fed
	f.once.Do(func() {
		f.byID = map[string]*upstream{}
		if s.Config == nil {
			return
		}
		for _, p := range s.Config.Federation.Providers {
			u := &upstream{cfg: p, client: upstreamHTTPClient(p.AllowPrivate)}
			if p.PrivateKeyFile != "" {
				u.signer, u.keyErr = config.LoadPrivateKey(p.PrivateKeyFile)
				if u.keyErr == nil {
					u.alg, u.kid, u.keyErr = signingAlg(u.signer, p.PrivateKeyID)
				}
			}
			f.byID[p.ID] = u
			f.list = append(f.list, u)
		}
	})
	return f
}

// signingAlg is the JWS algorithm of a key and its kid (the RFC 7638
// thumbprint unless one is configured).
func signingAlg(k crypto.Signer, kid string) (jose.SignatureAlgorithm, string, error) {
	var alg jose.SignatureAlgorithm
	switch key := k.(type) {
	case *rsa.PrivateKey:
		alg = jose.RS256
	case *ecdsa.PrivateKey:
		alg = jose.ES256
		if key.Curve.Params().BitSize == 384 {
			alg = jose.ES384
		}
	case ed25519.PrivateKey:
		alg = jose.EdDSA
	default:
		return "", "", fmt.Errorf("unsupported key type %T", k)
	}
	if kid == "" {
		tp, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(crypto.SHA256)
		if err != nil {
			return "", "", err
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	return alg, kid, nil
}

// errPrivateAddress refuses a dial to a non-public address.
var errPrivateAddress = errors.New("the provider resolves to a loopback, private or link-local address, and its allow_private is off")

// publicAddr reports whether a is an address a provider without
// allow_private may be reached on.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !cgnat.Contains(a)
}

// upstreamHTTPClient is the client of one provider: bounded, no proxy, no
// cookies, and (without allowPrivate) no connection to a non-public
// address, checked on the address actually dialled.
func upstreamHTTPClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: upstreamTimeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !publicAddr(ap.Addr()) {
				return errPrivateAddress
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: upstreamTimeout,
		Transport: &http.Transport{
			DialContext:           d.DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   upstreamTimeout,
			ResponseHeaderTimeout: upstreamTimeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			return nil
		},
	}
}

// discover returns the provider's discovery (go-oidc), cached for
// discoveryTTL.
func (u *upstream) discover(ctx context.Context, now time.Time) (*oidc.Provider, upstreamMeta, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.provider != nil && now.Sub(u.fetched) < discoveryTTL {
		return u.provider, u.meta, nil
	}
	if u.failErr != nil && now.Sub(u.failedAt) < discoveryRetry {
		if u.provider != nil {
			return u.provider, u.meta, nil
		}
		return nil, upstreamMeta{}, u.failErr
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, u.client), upstreamTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, u.cfg.Issuer)
	var meta upstreamMeta
	if err == nil {
		err = p.Claims(&meta)
	}
	if err == nil && p.Endpoint().AuthURL == "" || err == nil && p.Endpoint().TokenURL == "" {
		err = errors.New("the discovery document lacks authorization_endpoint or token_endpoint")
	}
	if err != nil {
		u.failErr, u.failedAt = err, now
		if u.provider != nil {
			return u.provider, u.meta, nil // keep the last good one
		}
		return nil, upstreamMeta{}, err
	}
	u.provider, u.meta, u.fetched, u.failErr = p, meta, now, nil
	return p, meta, nil
}

// authOrigins are the origins of the provider's authorization endpoint as
// far as known without a request: the login page's CSP form-action must
// allow the redirect its button's form leads to.
func (u *upstream) authOrigins() []string {
	out := []string{origin(u.cfg.Issuer)}
	u.mu.Lock()
	if u.provider != nil {
		if o := origin(u.provider.Endpoint().AuthURL); !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	u.mu.Unlock()
	return out
}

// oauth2Config is the x/oauth2 client of the provider, and the options
// that authenticate smartgate at its token endpoint: client_secret_basic
// (or client_secret_post when the provider offers only that), or
// private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9).
func (u *upstream) oauth2Config(p *oidc.Provider, meta upstreamMeta, redirectURI string, now time.Time) (*oauth2.Config, []oauth2.AuthCodeOption, error) {
	ep := p.Endpoint()
	conf := &oauth2.Config{ClientID: u.cfg.ClientID, RedirectURL: redirectURI, Scopes: u.cfg.ScopeList()}
	if u.cfg.ClientSecret != "" {
		conf.ClientSecret = u.cfg.ClientSecret
		ep.AuthStyle = oauth2.AuthStyleInHeader
		if len(meta.AuthMethods) > 0 && !slices.Contains(meta.AuthMethods, "client_secret_basic") && slices.Contains(meta.AuthMethods, "client_secret_post") {
			ep.AuthStyle = oauth2.AuthStyleInParams
		}
		conf.Endpoint = ep
		return conf, nil, nil
	}
	ep.AuthStyle = oauth2.AuthStyleInParams
	conf.Endpoint = ep
	if u.keyErr != nil {
		return nil, nil, u.keyErr
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: u.alg, Key: u.signer}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", u.kid))
	if err != nil {
		return nil, nil, err
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	assertion, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: u.cfg.ClientID, Subject: u.cfg.ClientID, Audience: jwt.Audience{ep.TokenURL},
		ID: base64.RawURLEncoding.EncodeToString(jti[:]), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
	}).Serialize()
	if err != nil {
		return nil, nil, err
	}
	return conf, []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
		oauth2.SetAuthURLParam("client_assertion", assertion),
	}, nil
}
