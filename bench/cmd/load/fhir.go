package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The FHIR modes (bench/data.sh) send requests read from -targets, a file
// of one request a line, cycled:
//
//	PATH <TAB> TOKEN [<TAB> PATIENT]
//
// PATH is the request's path and query (e.g. /fhir/Observation/obs-1),
// TOKEN the bearer access token it goes with (the pool: bench/cmd/pool
// writes one distinct token per line, so that the server's verified-token
// cache sees as many tokens as there are lines), PATIENT the patient id a
// transaction's entries are about.
//
//	fhir-read         GET PATH; 200 with the resource's "id" in the body
//	fhir-search       GET PATH, a search; 200, a searchset with a match
//	fhir-include      GET PATH, a search with _include; 200, a searchset
//	                  with a match and an included resource
//	fhir-transaction  POST PATH (the base, /fhir) a transaction Bundle of
//	                  -tx-entries entries for PATIENT: an Encounter and
//	                  Observations that reference it by its urn:uuid;
//	                  200, a transaction-response
//
// Every FHIR mode uses the raw client over http.

// fhirTarget is one line of -targets.
type fhirTarget struct {
	path, token, patient string
}

func isFHIRMode(mode string) bool {
	switch mode {
	case "fhir-read", "fhir-search", "fhir-include", "fhir-transaction":
		return true
	}
	return false
}

// parseTargets reads the lines of a -targets file.
func parseTargets(lines []string) ([]fhirTarget, error) {
	out := make([]fhirTarget, 0, len(lines))
	for i, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) < 2 || len(f) > 3 || !strings.HasPrefix(f[0], "/") || f[1] == "" {
			return nil, fmt.Errorf("line %d: want PATH<TAB>TOKEN[<TAB>PATIENT], with PATH starting with /", i+1)
		}
		t := fhirTarget{path: f[0], token: f[1]}
		if len(f) == 3 {
			t.patient = f[2]
		}
		out = append(out, t)
	}
	return out, nil
}

// request writes one whole HTTP/1.1 request for the target into w.
func (o *options) fhirRequest(w []byte, host string, t fhirTarget) []byte {
	method := "GET "
	var body []byte
	if o.mode == "fhir-transaction" {
		method = "POST "
		body = transactionBundle(o.txEntries, t.patient)
	}
	w = append(w, method...)
	w = append(w, t.path...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, host...)
	w = append(w, "\r\nUser-Agent: smartgate-bench-load\r\nAccept: application/fhir+json\r\nAuthorization: Bearer "...)
	w = append(w, t.token...)
	w = append(w, "\r\n"...)
	if body != nil {
		w = append(w, "Content-Type: application/fhir+json\r\nContent-Length: "...)
		w = strconv.AppendInt(w, int64(len(body)), 10)
		w = append(w, "\r\n\r\n"...)
		return append(w, body...)
	}
	return append(w, "\r\n"...)
}

// checkFHIR says what is wrong with a 200 answer of the mode, if anything.
func checkFHIR(mode string, t fhirTarget, body []byte) error {
	switch mode {
	case "fhir-read":
		// The id the path ends with, as the resource's id.
		id := t.path[strings.LastIndexByte(t.path, '/')+1:]
		if !bytes.Contains(body, []byte(`"id":"`+id+`"`)) {
			return errors.New("not the resource read")
		}
	case "fhir-search", "fhir-include":
		if !bytes.Contains(body, []byte(`"searchset"`)) || !bytes.Contains(body, []byte(`"mode":"match"`)) {
			return errors.New("no match in the searchset")
		}
		if mode == "fhir-include" && !bytes.Contains(body, []byte(`"mode":"include"`)) {
			return errors.New("no included resource in the searchset")
		}
	case "fhir-transaction":
		if !bytes.Contains(body, []byte(`"transaction-response"`)) {
			return errors.New("not a transaction-response")
		}
	}
	return nil
}

// oneFHIR sends one request of a FHIR mode.
func (p *phase) oneFHIR(sd sender) {
	o := p.o
	t := o.targets[(p.next.Add(1)-1)%uint64(len(o.targets))]
	rs, ok := sd.(*rawSender)
	if !ok {
		p.fail(0, "the FHIR modes need -client raw")
		return
	}
	rs.req = o.fhirRequest(rs.req[:0], rs.addr, t)
	req := getRequest
	if o.mode == "fhir-transaction" {
		req = post
	}
	resp, body, err := rs.roundTrip(rs.req, req)
	switch {
	case resp == nil:
		p.fail(0, err.Error())
	case err != nil:
		p.fail(resp.StatusCode, err.Error())
	case resp.StatusCode != http.StatusOK:
		p.fail(resp.StatusCode, string(body))
	case o.check:
		if err := checkFHIR(o.mode, t, body); err != nil {
			p.fail(resp.StatusCode, err.Error()+": "+string(body))
		}
	}
}

// primeTokens sends one GET per distinct token of the targets, on every
// client, and returns how many tokens it sent and how long that took. The
// server verifies each token's signature once and then finds it in its
// verified-token cache; without priming, a window shorter than one pass
// over the pool measures mostly first verifications (ES256, about 100 µs
// each here), which a long-running server with as many active clients
// does not pay per request.
func (o *options) primeTokens(senders []sender) (int, time.Duration, error) {
	start := time.Now()
	seen := make(map[string]bool, len(o.targets))
	var todo []fhirTarget
	for _, t := range o.targets {
		if seen[t.token] {
			continue
		}
		seen[t.token] = true
		if o.mode == "fhir-transaction" {
			t.path = "/fhir/Patient/" + t.patient
		}
		todo = append(todo, t)
	}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for _, sd := range senders {
		rs, ok := sd.(*rawSender)
		if !ok {
			return 0, 0, errors.New("the FHIR modes need -client raw")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var w []byte
			for {
				i := next.Add(1) - 1
				if i >= int64(len(todo)) {
					return
				}
				t := todo[i]
				w = append(w[:0], "GET "+t.path+" HTTP/1.1\r\nHost: "+rs.addr+"\r\nUser-Agent: smartgate-bench-load\r\nAccept: application/fhir+json\r\nAuthorization: Bearer "+t.token+"\r\n\r\n"...)
				resp, _, err := rs.roundTrip(w, getRequest)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "load: %s %s: %d of %d priming requests failed\n", o.target, o.mode, n, len(todo))
	}
	return len(todo), time.Since(start), nil
}

// transactionBundle is a transaction of n entries (n >= 1) for patient:
// one Encounter and n-1 vital-sign Observations of that encounter, each a
// POST with a fresh urn:uuid, so every request creates n new resources and
// the server resolves n-1 references between entries.
func transactionBundle(n int, patient string) []byte {
	var b bytes.Buffer
	b.Grow(n * 700)
	enc := uuid()
	b.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	fmt.Fprintf(&b, `{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"Encounter","status":"finished",`+
		`"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"},`+
		`"type":[{"coding":[{"system":"http://snomed.info/sct","code":"185349003","display":"Encounter for check up"}]}],`+
		`"subject":{"reference":"Patient/%s"},"period":{"start":"2025-05-01T09:00:00Z","end":"2025-05-01T09:30:00Z"}},`+
		`"request":{"method":"POST","url":"Encounter"}}`, enc, patient)
	codes := [...][3]string{{"8867-4", "Heart rate", "/min"}, {"9279-1", "Respiratory rate", "/min"}, {"8310-5", "Body temperature", "Cel"},
		{"29463-7", "Body weight", "kg"}, {"8302-2", "Body height", "cm"}, {"59408-5", "Oxygen saturation", "%"}}
	for i := 1; i < n; i++ {
		c := codes[i%len(codes)]
		fmt.Fprintf(&b, `,{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"Observation","status":"final",`+
			`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
			`"code":{"coding":[{"system":"http://loinc.org","code":"%s","display":"%s"}]},"subject":{"reference":"Patient/%s"},`+
			`"encounter":{"reference":"urn:uuid:%s"},"effectiveDateTime":"2025-05-01T09:%02d:00Z",`+
			`"valueQuantity":{"value":%d,"unit":"%s","system":"http://unitsofmeasure.org","code":"%s"}},`+
			`"request":{"method":"POST","url":"Observation"}}`, uuid(), c[0], c[1], patient, enc, i%60, 40+i, c[2], c[2])
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// uuid is a random (version 4) UUID.
func uuid() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
