// Command pool writes the request files of bench/data.sh's FHIR modes for
// a data set made by `smartgate seed --patients N --seed S`: which
// resources to read, which patient searches to run, and a distinct access
// token for every line, so that a run spreads its load over many tokens
// (the server's verified-token cache then holds the pool, as it would hold
// the tokens of many clients) and over many patients and resources.
//
//	pool -data-dir DIR [-database DSN] -issuer URL -patients N -seed S \
//	     -client-id ID -out DIR [-tokens 10000] [-reads 50000]
//
// It opens the server's data (the same -data-dir and -database as `serve`:
// the KEK and the signing keys) and signs the tokens with the server's
// current ES256 key, exactly as the token endpoint does (internal/token),
// with iss = -issuer and aud = -issuer/fhir. Tokens live -ttl (default 3
// h). The data set's resources come from the same deterministic generator
// (internal/fhir/synth), so no query is made to find them. It writes, one
// request a line (PATH<TAB>TOKEN[<TAB>PATIENT], bench/cmd/load's -targets):
//
//	read.targets         GET /fhir/{type}/{id} of -reads resources picked
//	                     at random over the sampled charts, with -tokens
//	                     distinct system/*.rs tokens
//	search.targets       GET /fhir/Observation?patient=P&code=LOINC&date=geD,
//	                     one line per token, each a patient/*.rs token of a
//	                     random patient P, with a code P has an Observation
//	                     of on or after D
//	include.targets      GET /fhir/MedicationRequest?patient=P
//	                     &_include=MedicationRequest:medication
//	                     &_include=MedicationRequest:requester, patient/*.rs
//	                     tokens of patients with a MedicationRequest
//	transaction.targets  POST /fhir with a system/*.cruds token, for a
//	                     random patient (load builds the Bundle)
//	export.token         one system/*.rs token for the $export kick-off
//
//	pool -fingerprint -seed S
//
// prints a short hash of what the generator makes for seed S (the shared
// directory and the first charts), which bench/data.sh puts in the key of
// its cached data sets: a change to the generator makes a new data set.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"smartgate/internal/app"
	"smartgate/internal/config"
	"smartgate/internal/fhir/synth"
	"smartgate/internal/token"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pool:", err)
		os.Exit(1)
	}
}

type chart struct {
	patient string
	rs      []synth.Resource
	obs     []obs // Observations with a LOINC code and a date
	medRx   bool
}

type obs struct {
	code string
	date time.Time
}

func run(args []string) error {
	fs := flag.NewFlagSet("pool", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "the server's data dir (KEK file; and the SQLite database unless -database)")
	database := fs.String("database", "", "the server's database DSN, when not the data dir's SQLite file")
	issuer := fs.String("issuer", "", "the server's issuer URL, e.g. http://127.0.0.1:8080 (the FHIR base is it + /fhir)")
	patients := fs.Int("patients", 0, "the data set's --patients")
	seed := fs.Uint64("seed", 1, "the data set's --seed")
	clientID := fs.String("client-id", "", "the client_id the tokens carry (a registered client)")
	out := fs.String("out", "", "directory to write the files to")
	nTokens := fs.Int("tokens", 10_000, "distinct tokens per file")
	nReads := fs.Int("reads", 50_000, "lines of read.targets (distinct resources, about)")
	sample := fs.Int("charts", 4000, "most patients' charts generated to pick from")
	ttl := fs.Duration("ttl", 3*time.Hour, "token lifetime")
	randSeed := fs.Uint64("rand", 1, "seed of the random picks")
	fingerprint := fs.Bool("fingerprint", false, "print a hash of the generator's output for -seed and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *fingerprint {
		g := synth.New(synth.Options{Patients: 3, Seed: *seed})
		h := sha256.New()
		for _, rs := range [][]synth.Resource{g.Shared(), g.Chart(0), g.Chart(1), g.Chart(2)} {
			for _, r := range rs {
				h.Write(r.Body)
			}
		}
		fmt.Println(hex.EncodeToString(h.Sum(nil))[:12])
		return nil
	}
	switch {
	case *dataDir == "" || *issuer == "" || *out == "" || *clientID == "":
		return errors.New("-data-dir, -issuer, -client-id and -out are required")
	case *patients < 1:
		return errors.New("-patients must be at least 1")
	case *nTokens < 1 || *nReads < 1 || *sample < 1:
		return errors.New("-tokens, -reads and -charts must be at least 1")
	}
	base := strings.TrimRight(*issuer, "/")
	flags := map[string]string{"dev": "true", "data_dir": *dataDir}
	if *database != "" {
		flags["database"] = *database
	}
	cfg, err := config.Load(config.Options{Flags: flags})
	if err != nil {
		return err
	}
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, slog.New(slog.DiscardHandler), app.Options{InitKeys: true})
	if err != nil {
		return err
	}
	defer a.Close()
	tokens := token.New(a.Keys, nil, token.Options{Issuer: base, Audience: base + "/fhir"})
	exp := time.Now().Add(*ttl).Unix()
	mint := func(scope, patient string) (string, error) {
		return tokens.Issue(token.Claims{Subject: *clientID, ClientID: *clientID, Scope: scope, Patient: patient, Expiry: exp, Grant: "bench-pool"})
	}

	// Charts of a random sample of the patients.
	r := rand.New(rand.NewPCG(*randSeed, 7))
	g := synth.New(synth.Options{Patients: *patients, Seed: *seed})
	idx := r.Perm(*patients)[:min(*sample, *patients)]
	charts := make([]chart, 0, len(idx))
	for _, i := range idx {
		c := chart{patient: g.PatientID(i), rs: g.Chart(i)}
		for _, res := range c.rs {
			switch res.Type {
			case "Observation":
				if o, ok := observation(res.Body); ok {
					c.obs = append(c.obs, o)
				}
			case "MedicationRequest":
				c.medRx = true
			}
		}
		charts = append(charts, c)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	write := func(name string, n int, line func(i int) (string, error)) error {
		f, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		for i := range n {
			l, err := line(i)
			if err != nil {
				f.Close()
				return err
			}
			w.WriteString(l)
			w.WriteByte('\n')
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}

	// read.targets: -reads random resources, -tokens system tokens.
	sys := make([]string, *nTokens)
	for i := range sys {
		if sys[i], err = mint("system/*.rs", ""); err != nil {
			return err
		}
	}
	if err := write("read.targets", max(*nReads, *nTokens), func(i int) (string, error) {
		c := charts[r.IntN(len(charts))]
		res := c.rs[r.IntN(len(c.rs))]
		return "/fhir/" + res.Type + "/" + res.ID + "\t" + sys[i%len(sys)], nil
	}); err != nil {
		return err
	}

	// search.targets: a patient's Observations of one code from a date.
	var withObs, withRx []chart
	for _, c := range charts {
		if len(c.obs) > 0 {
			withObs = append(withObs, c)
		}
		if c.medRx {
			withRx = append(withRx, c)
		}
	}
	if len(withObs) == 0 || len(withRx) == 0 {
		return errors.New("no sampled patient has Observations and MedicationRequests; is -patients right?")
	}
	if err := write("search.targets", *nTokens, func(int) (string, error) {
		c := withObs[r.IntN(len(withObs))]
		o := c.obs[r.IntN(len(c.obs))]
		from := o.date.AddDate(0, 0, -r.IntN(366)).Format("2006-01-02")
		tok, err := mint("patient/*.rs", c.patient)
		q := url.Values{"patient": {c.patient}, "code": {"http://loinc.org|" + o.code}, "date": {"ge" + from}}
		return "/fhir/Observation?" + q.Encode() + "\t" + tok, err
	}); err != nil {
		return err
	}
	if err := write("include.targets", *nTokens, func(int) (string, error) {
		c := withRx[r.IntN(len(withRx))]
		tok, err := mint("patient/*.rs", c.patient)
		return "/fhir/MedicationRequest?patient=" + url.QueryEscape(c.patient) +
			"&_include=MedicationRequest:medication&_include=MedicationRequest:requester\t" + tok, err
	}); err != nil {
		return err
	}
	if err := write("transaction.targets", *nTokens, func(int) (string, error) {
		tok, err := mint("system/*.cruds", "")
		return "/fhir\t" + tok + "\t" + g.PatientID(r.IntN(*patients)), err
	}); err != nil {
		return err
	}
	return write("export.token", 1, func(int) (string, error) { return mint("system/*.rs", "") })
}

// observation reads an Observation's first LOINC code and its
// effectiveDateTime.
func observation(body []byte) (obs, bool) {
	var o struct {
		Code struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"code"`
		Effective string `json:"effectiveDateTime"`
	}
	if json.Unmarshal(body, &o) != nil || o.Effective == "" {
		return obs{}, false
	}
	d, err := time.Parse(time.RFC3339, o.Effective)
	if err != nil {
		if d, err = time.Parse("2006-01-02", o.Effective); err != nil {
			return obs{}, false
		}
	}
	for _, c := range o.Code.Coding {
		if c.System == "http://loinc.org" && c.Code != "" {
			return obs{code: c.Code, date: d}, true
		}
	}
	return obs{}, false
}
