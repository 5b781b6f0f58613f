package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// A sender sends one form POST on one connection and returns the status
// and the whole body (valid until its next send). Each client goroutine
// owns one sender, kept from the warm-up into the measured window.
type sender interface {
	send(body string, basic bool) (status int, respBody []byte, err error)
	// reconnect replaces the connection before the measured window: after
	// the pause in which the window's assertions are signed, a server may
	// have closed it as idle (Node.js does after 5 s), and the first
	// request on it would fail.
	reconnect() error
	close()
}

// newSenders returns one sender per client: "raw" writes each request
// straight to its own keep-alive connection and parses the answer with
// net/http's own http.ReadResponse, on the calling goroutine; "nethttp"
// goes through an http.Client and its Transport, which adds two goroutines
// per connection and hand-offs between them on every request: with it this
// process needed about 52 µs of CPU per cc-secret request here, against 25
// µs raw, and every µs of it is taken from the server being measured on the
// same cores. https URLs always use nethttp.
func (o *options) newSenders() []sender {
	u, _ := url.Parse(o.url) // validated
	out := make([]sender, o.c)
	if o.client == "raw" && u.Scheme == "http" {
		head := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
			"\r\nUser-Agent: smartgate-bench-load\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"
		for i := range out {
			out[i] = &rawSender{addr: u.Host, timeout: o.timeout, head: head, headBasic: head + "Authorization: " + o.basicAuth() + "\r\n"}
		}
		return out
	}
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: loopback only
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.c,
		MaxIdleConnsPerHost: o.c,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: o.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := range out {
		out[i] = &netHTTPSender{o: o, client: client}
	}
	return out
}

// basicAuth is the Authorization value of client_secret_basic: RFC 6749
// §2.3.1 form-urlencodes the id and the secret before Basic encoding.
func (o *options) basicAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(o.clientID)+":"+url.QueryEscape(o.secret)))
}

type rawSender struct {
	addr, head, headBasic string
	timeout               time.Duration

	conn net.Conn
	br   *bufio.Reader
	req  []byte
	resp bytes.Buffer
}

// post is what http.ReadResponse needs to know of the request: not HEAD.
var post = &http.Request{Method: http.MethodPost}

func (s *rawSender) dial() error {
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		return err
	}
	s.conn, s.br = c, bufio.NewReaderSize(c, 16<<10)
	return nil
}

func (s *rawSender) reconnect() error {
	s.close()
	return s.dial()
}

func (s *rawSender) send(body string, basic bool) (int, []byte, error) {
	w := s.req[:0]
	if basic {
		w = append(w, s.headBasic...)
	} else {
		w = append(w, s.head...)
	}
	w = append(w, "Content-Length: "...)
	w = strconv.AppendInt(w, int64(len(body)), 10)
	w = append(w, "\r\n\r\n"...)
	w = append(w, body...)
	s.req = w
	resp, respBody, err := s.roundTrip(w, post)
	if resp == nil {
		return 0, nil, err
	}
	return resp.StatusCode, respBody, err
}

// roundTrip writes one whole request (head and body, already encoded in
// w) on the connection, dialling when there is none, and reads the answer;
// req tells http.ReadResponse the request's method. The body it returns is
// valid until the next round trip. resp is nil when no answer was read.
func (s *rawSender) roundTrip(w []byte, req *http.Request) (*http.Response, []byte, error) {
	if s.conn == nil {
		if err := s.dial(); err != nil {
			return nil, nil, err
		}
	}
	if err := s.conn.SetDeadline(time.Now().Add(s.timeout)); err != nil {
		s.close()
		return nil, nil, err
	}
	if _, err := s.conn.Write(w); err != nil {
		s.close()
		return nil, nil, err
	}
	resp, err := http.ReadResponse(s.br, req)
	if err != nil {
		s.close()
		return nil, nil, err
	}
	s.resp.Reset()
	_, err = s.resp.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		s.close() // the next request dials again
	}
	if err != nil {
		return resp, nil, fmt.Errorf("reading the body: %w", err)
	}
	return resp, s.resp.Bytes(), nil
}

func (s *rawSender) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

type netHTTPSender struct {
	o      *options
	client *http.Client
	resp   bytes.Buffer
}

func (s *netHTTPSender) send(body string, basic bool) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, s.o.url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		req.Header.Set("Authorization", s.o.basicAuth())
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	s.resp.Reset()
	_, err = s.resp.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading the body: %w", err)
	}
	return resp.StatusCode, s.resp.Bytes(), nil
}

func (s *netHTTPSender) close() { s.client.CloseIdleConnections() }

// reconnect drops the idle connections; the Transport dials anew.
func (s *netHTTPSender) reconnect() error {
	s.close()
	return nil
}

// jsonMember returns what follows the member name's colon (and any
// whitespace) in a JSON object, or nil when the name does not occur as a
// member. It is the load generator's cheap check of a 200 answer (a full
// json.Unmarshal of a token response cost the generator 13% of its CPU);
// the token pool for introspection is still read with encoding/json.
func jsonMember(body []byte, name string) []byte {
	key := `"` + name + `"`
	for rest := body; ; {
		i := bytes.Index(rest, []byte(key))
		if i < 0 {
			return nil
		}
		rest = bytes.TrimLeft(rest[i+len(key):], " \t\r\n")
		if len(rest) > 0 && rest[0] == ':' {
			return bytes.TrimLeft(rest[1:], " \t\r\n")
		}
	}
}

// checkBody says what is wrong with a 200 answer of the mode, if anything:
// a token response needs a non-empty access_token string, an introspection
// response "active": true.
func checkBody(mode string, body []byte) error {
	if mode == "introspect" {
		if !bytes.HasPrefix(jsonMember(body, "active"), []byte("true")) {
			return errors.New("not an active token")
		}
		return nil
	}
	if v := jsonMember(body, "access_token"); len(v) < 2 || v[0] != '"' || v[1] == '"' {
		return errors.New("no access_token")
	}
	return nil
}
