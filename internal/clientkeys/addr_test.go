package clientkeys

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	refused := []string{
		"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"127.0.0.1", "127.9.9.9", "::1",
		"fe80::1", "169.254.169.254", "169.254.0.1",
		"100.64.0.1", "100.127.255.255",
		"0.0.0.0", "0.1.2.3", "::",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
		"::127.0.0.1",       // IPv4-compatible
		"64:ff9b::a00:1",    // NAT64 of 10.0.0.1
		"64:ff9b::7f00:1",   // NAT64 of 127.0.0.1
		"2002:7f00:1::1",    // 6to4 of 127.0.0.1
		"2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
		"2001::1",           // Teredo
		"2001:db8::1",       // documentation
		"fc00::1", "fd00:ec2::254",
		"fec0::1",
		"224.0.0.1", "239.255.255.250", "ff02::1",
		"255.255.255.255", "240.0.0.1",
		"192.0.2.1", "198.18.0.1", "203.0.113.9",
		"fe80::1%eth0",
	}
	allowed := []string{
		"8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8",
		"64:ff9b::808:808", // NAT64 of 8.8.8.8
		"100.128.0.1",      // just past CGNAT
		"172.32.0.1",       // just past 172.16/12
	}
	for _, s := range refused {
		ip := netip.MustParseAddr(s)
		err := checkAddr(ip)
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("checkAddr(%s) = %v, want ErrForbiddenAddress", s, err)
			continue
		}
		if pub := PublicMessage(err); strings.Contains(pub, s) {
			t.Errorf("checkAddr(%s): public message names the address: %q", s, pub)
		}
	}
	for _, s := range allowed {
		if err := checkAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("checkAddr(%s) = %v, want nil", s, err)
		}
	}
}

// TestDialControl runs the dial hook itself on IP:port strings as the
// dialer passes them after resolution.
func TestDialControl(t *testing.T) {
	f := New(Options{})
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:443", false},
		{"[::1]:443", false},
		{"[::ffff:127.0.0.1]:443", false},
		{"169.254.169.254:80", false},
		{"8.8.8.8:443", true},
		{"[2001:4860:4860::8888]:443", true},
		{"not-an-address", false},
	} {
		err := f.dialControl("tcp", c.addr, nil)
		if (err == nil) != c.ok {
			t.Errorf("dialControl(%q) = %v, want ok=%v", c.addr, err, c.ok)
		}
		if !c.ok && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("dialControl(%q) = %v, want ErrForbiddenAddress", c.addr, err)
		}
	}
}

func TestValidateURL(t *testing.T) {
	prod := New(Options{})
	dev := New(Options{AllowPrivate: true})
	cases := []struct {
		url       string
		prod, dev error // nil: accepted
	}{
		{"https://client.example.com/.well-known/jwks.json", nil, nil},
		{"https://client.example.com:8443/jwks?tenant=1", nil, nil},
		{"HTTPS://Client.Example.COM./jwks", nil, nil},
		{"https://8.8.8.8/jwks", nil, nil},
		{"https://[2001:4860:4860::8888]/jwks", nil, nil},
		{"https://under_score.example.com/jwks", nil, nil},

		{"http://client.example.com/jwks", ErrInvalidURL, nil},
		{"http://127.0.0.1:8080/jwks", ErrInvalidURL, nil},
		{"http://localhost:9000/jwks", ErrInvalidURL, nil},
		{"https://127.0.0.1/jwks", ErrForbiddenAddress, nil},
		{"https://localhost/jwks", ErrForbiddenAddress, nil},
		{"https://LOCALHOST./jwks", ErrForbiddenAddress, nil},
		{"https://app.localhost/jwks", ErrForbiddenAddress, nil},
		{"https://[::1]/jwks", ErrForbiddenAddress, nil},
		{"https://[::ffff:127.0.0.1]/jwks", ErrForbiddenAddress, nil},
		{"https://169.254.169.254/latest/meta-data/", ErrForbiddenAddress, nil},
		{"https://10.0.0.5/jwks", ErrForbiddenAddress, nil},
		{"https://100.64.0.1/jwks", ErrForbiddenAddress, nil},
		{"https://0.0.0.0/jwks", ErrForbiddenAddress, nil},

		{"https://client.example.com/jwks#keys", ErrInvalidURL, ErrInvalidURL},
		{"https://client.example.com/jwks#", ErrInvalidURL, ErrInvalidURL},
		{"https://user:pw@client.example.com/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://user@client.example.com/jwks", ErrInvalidURL, ErrInvalidURL},
		{"/jwks", ErrInvalidURL, ErrInvalidURL},
		{"client.example.com/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https:client.example.com/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https:///jwks", ErrInvalidURL, ErrInvalidURL},
		{"", ErrInvalidURL, ErrInvalidURL},
		{"ftp://client.example.com/jwks", ErrInvalidURL, ErrInvalidURL},
		{"file:///etc/passwd", ErrInvalidURL, ErrInvalidURL},
		{"https://client.example.com:0/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://client.example.com:99999/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://[fe80::1%25eth0]/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://2130706433/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://0x7f000001/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://127.1/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://bücher.example/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://-bad.example.com/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://a..b/jwks", ErrInvalidURL, ErrInvalidURL},
		{"https://client.example.com/" + strings.Repeat("a", maxURLLength), ErrInvalidURL, ErrInvalidURL},
	}
	for _, c := range cases {
		for _, v := range []struct {
			name string
			f    *Fetcher
			want error
		}{{"prod", prod, c.prod}, {"dev", dev, c.dev}} {
			err := v.f.ValidateURL(c.url)
			if v.want == nil {
				if err != nil {
					t.Errorf("%s ValidateURL(%q) = %v, want nil", v.name, c.url, err)
				}
				continue
			}
			if !errors.Is(err, v.want) {
				t.Errorf("%s ValidateURL(%q) = %v, want %v", v.name, c.url, err, v.want)
				continue
			}
			if PublicMessage(err) == "" || !strings.Contains(PublicMessage(err), "jwks_uri") {
				t.Errorf("%s ValidateURL(%q): public message %q does not name jwks_uri", v.name, c.url, PublicMessage(err))
			}
		}
	}
}
