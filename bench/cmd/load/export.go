package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The export mode runs one FHIR Bulk Data export (Bulk Data Access 2.0)
// and times its two halves:
//
//  1. From the kick-off (GET -url + -export-path with Prefer:
//     respond-async, answered 202 with Content-Location) to the completed
//     manifest (the status URL, polled every -poll, answers 200): the
//     server's whole work of reading and writing every resource. Its
//     resources/s is the manifest's count over that time.
//  2. The download of every file of the manifest, -c files at a time, each
//     streamed and its lines counted (and kept in -save-dir when set, e.g.
//     for `smartgate import`); every file must hold the manifest's count.
//
// Then it deletes the job (DELETE on the status URL), unless -keep-job.
// The server's CPU and largest VmRSS are measured over each half.

type exportOptions struct {
	path, token, tokenFile, saveDir string
	poll, timeout                   time.Duration
	keep                            bool
}

func (e *exportOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&e.path, "export-path", "/fhir/$export", "export: the kick-off path and query under -url")
	fs.StringVar(&e.token, "export-token", "", "export: the bearer token (system/ scopes)")
	fs.StringVar(&e.tokenFile, "export-token-file", "", "export: a file holding the bearer token (its first line)")
	fs.StringVar(&e.saveDir, "save-dir", "", "export: write the downloaded files to this directory (N.Type.ndjson)")
	fs.DurationVar(&e.poll, "poll", 200*time.Millisecond, "export: how often the status URL is polled (the server's Retry-After is ignored, for timing)")
	fs.DurationVar(&e.timeout, "export-timeout", 30*time.Minute, "export: longest wait for the manifest, and for the download")
	fs.BoolVar(&e.keep, "keep-job", false, "export: do not DELETE the job afterwards")
}

func (e *exportOptions) validate(o *options) error {
	u, _ := url.Parse(o.url)
	if u.Scheme != "http" {
		return errors.New("export runs over http")
	}
	if e.token == "" && e.tokenFile != "" {
		lines, err := readLines(e.tokenFile)
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			return fmt.Errorf("-export-token-file %s is empty", e.tokenFile)
		}
		e.token = strings.SplitN(lines[0], "\t", 2)[0]
	}
	if e.token == "" {
		return errors.New("export needs -export-token or -export-token-file")
	}
	if !strings.HasPrefix(e.path, "/") {
		return fmt.Errorf("-export-path %q must start with /", e.path)
	}
	if e.poll <= 0 || e.timeout <= 0 {
		return errors.New("-poll and -export-timeout must be positive")
	}
	return nil
}

// ExportResult is the export mode's JSON line.
type ExportResult struct {
	Target string `json:"target"`
	Mode   string `json:"mode"`
	Files  int    `json:"files"`
	// Resources is the sum of the manifest's counts.
	Resources int64 `json:"resources"`
	// The kick-off to the completed manifest.
	ExportSeconds       float64 `json:"export_seconds"`
	ExportRPS           float64 `json:"export_resources_per_s"`
	ExportServerUSPerR  float64 `json:"export_server_cpu_us_per_resource"`
	ExportServerCores   float64 `json:"export_server_cores"`
	ExportOtherCores    float64 `json:"export_other_cpu_cores"`
	Polls               int     `json:"polls"`
	FirstProgress       string  `json:"first_progress,omitempty"`
	DownloadSeconds     float64 `json:"download_seconds"`
	DownloadMB          float64 `json:"download_mb"`
	DownloadMBps        float64 `json:"download_mb_per_s"`
	DownloadRPS         float64 `json:"download_resources_per_s"`
	DownloadServerUSPR  float64 `json:"download_server_cpu_us_per_resource"`
	DownloadClientUSPR  float64 `json:"download_client_cpu_us_per_resource"`
	DownloadOtherCores  float64 `json:"download_other_cpu_cores"`
	ServerRSSMaxMB      float64 `json:"server_rss_max_mb,omitempty"`
	ServerHWMMB         float64 `json:"server_hwm_mb,omitempty"`
	DownloadConcurrency int     `json:"download_concurrency"`
	Errors              int64   `json:"errors"`
}

type manifest struct {
	Output []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int64  `json:"count"`
	} `json:"output"`
	Error []json.RawMessage `json:"error"`
}

// window measures the server and the machine over one half of the export.
type window struct {
	o                  *options
	start              time.Time
	cpu0, self0, busy0 time.Duration
	rss                *rssSampler
}

func (o *options) openWindow() *window {
	w := &window{o: o, start: time.Now(), self0: selfCPU()}
	w.busy0, _, _ = machineCPU()
	if o.pid != 0 {
		w.cpu0, _ = procCPU(o.pid)
		w.rss = sampleRSS(o.pid, o.rssEvery)
	}
	return w
}

// close returns the window's wall time, the server's and this process's
// CPU, the machine's other busy CPU, and the largest server VmRSS.
func (w *window) close() (wall, server, self, other time.Duration, rss int64) {
	wall = time.Since(w.start)
	self = selfCPU() - w.self0
	busy1, _, _ := machineCPU()
	if w.o.pid != 0 {
		c, _ := procCPU(w.o.pid)
		server = c - w.cpu0
		rss = w.rss.stop()
	}
	other = max(0, busy1-w.busy0-server-self)
	return
}

func (o *options) runExport() (*ExportResult, error) {
	e := &o.export
	base := strings.TrimRight(o.url, "/")
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: o.c + 1, DisableCompression: true,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	do := func(method, u string, hdr map[string]string) (*http.Response, error) {
		req, err := http.NewRequest(method, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+e.token)
		req.Header.Set("Accept", "application/fhir+json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return client.Do(req)
	}
	res := &ExportResult{Target: o.target, Mode: o.mode, DownloadConcurrency: o.c}

	// 1. Kick-off to manifest.
	w := o.openWindow()
	resp, err := do(http.MethodGet, base+e.path, map[string]string{"Prefer": "respond-async"})
	if err != nil {
		return nil, fmt.Errorf("kick-off: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	status := resp.Header.Get("Content-Location")
	if resp.StatusCode != http.StatusAccepted || status == "" {
		return nil, fmt.Errorf("kick-off: status %d, Content-Location %q: %.400s", resp.StatusCode, status, body)
	}
	if err := sameHost(base, status); err != nil {
		return nil, err
	}
	var m manifest
	deadline := time.Now().Add(e.timeout)
	for {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no manifest after %s", e.timeout)
		}
		resp, err := do(http.MethodGet, status, nil)
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		res.Polls++
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		if resp.StatusCode == http.StatusAccepted {
			if p := resp.Header.Get("X-Progress"); res.FirstProgress == "" && strings.Contains(p, "exported") {
				res.FirstProgress = p
			}
			time.Sleep(e.poll)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status: %d: %.400s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		break
	}
	wall, server, _, other, rss := w.close()
	res.Files = len(m.Output)
	for _, f := range m.Output {
		res.Resources += f.Count
	}
	if len(m.Error) > 0 {
		fmt.Fprintf(os.Stderr, "load: export: the manifest lists %d error files\n", len(m.Error))
		res.Errors += int64(len(m.Error))
	}
	res.ExportSeconds = round(wall.Seconds(), 3)
	if res.Resources > 0 {
		res.ExportRPS = round(float64(res.Resources)/wall.Seconds(), 0)
		res.ExportServerUSPerR = round(float64(server.Microseconds())/float64(res.Resources), 2)
	}
	res.ExportServerCores = round(server.Seconds()/wall.Seconds(), 2)
	res.ExportOtherCores = round(other.Seconds()/wall.Seconds(), 2)

	// 2. The download.
	if e.saveDir != "" {
		if err := os.MkdirAll(e.saveDir, 0o755); err != nil {
			return nil, err
		}
	}
	w = o.openWindow()
	var bytesRead, lines atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range max(1, o.c) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(m.Output) {
					return
				}
				f := m.Output[i]
				n, nb, err := o.download(do, f.URL, f.Type, i+1)
				bytesRead.Add(nb)
				lines.Add(n)
				if err == nil && n != f.Count {
					err = fmt.Errorf("%s: %d lines, the manifest says %d", f.URL, n, f.Count)
				}
				if err != nil {
					mu.Lock()
					res.Errors++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	wall, server, self, other, rss2 := w.close()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "load: export download:", firstErr)
	}
	res.DownloadSeconds = round(wall.Seconds(), 3)
	res.DownloadMB = round(float64(bytesRead.Load())/(1<<20), 1)
	res.DownloadMBps = round(float64(bytesRead.Load())/(1<<20)/wall.Seconds(), 1)
	if n := lines.Load(); n > 0 {
		res.DownloadRPS = round(float64(n)/wall.Seconds(), 0)
		res.DownloadServerUSPR = round(float64(server.Microseconds())/float64(n), 2)
		res.DownloadClientUSPR = round(float64(self.Microseconds())/float64(n), 2)
	}
	res.DownloadOtherCores = round(other.Seconds()/wall.Seconds(), 2)
	if o.pid != 0 {
		res.ServerRSSMaxMB = round(float64(max(rss, rss2))/(1<<20), 1)
		if hwm, err := procHWM(o.pid); err == nil {
			res.ServerHWMMB = round(float64(hwm)/(1<<20), 1)
		}
	}
	if !e.keep {
		resp, err := do(http.MethodDelete, status, nil)
		if err != nil {
			return nil, fmt.Errorf("DELETE %s: %w", status, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return nil, fmt.Errorf("DELETE %s: status %d", status, resp.StatusCode)
		}
	}
	return res, nil
}

// download streams one file, counting its lines and bytes, into the save
// directory when there is one.
func (o *options) download(do func(string, string, map[string]string) (*http.Response, error), u, typ string, n int) (lines, size int64, err error) {
	if err := sameHost(o.url, u); err != nil {
		return 0, 0, err
	}
	resp, err := do(http.MethodGet, u, map[string]string{"Accept": "application/fhir+ndjson"})
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, 0, fmt.Errorf("%s: status %d: %.400s", u, resp.StatusCode, b)
	}
	var out io.Writer = io.Discard
	if o.export.saveDir != "" {
		f, err := os.Create(filepath.Join(o.export.saveDir, strconv.Itoa(n)+"."+typ+".ndjson"))
		if err != nil {
			return 0, 0, err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		defer func() {
			if ferr := bw.Flush(); err == nil {
				err = ferr
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		out = bw
	}
	buf := make([]byte, 256<<10)
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			lines += int64(bytes.Count(buf[:k], []byte{'\n'}))
			size += int64(k)
			if _, werr := out.Write(buf[:k]); werr != nil {
				return lines, size, werr
			}
		}
		if rerr == io.EOF {
			return lines, size, nil
		}
		if rerr != nil {
			return lines, size, rerr
		}
	}
}

// sameHost refuses a URL (from the server's answers) on another host than
// -url: the load generator talks to loopback only.
func sameHost(base, u string) error {
	b, err1 := url.Parse(base)
	v, err2 := url.Parse(u)
	if err1 != nil || err2 != nil || b.Host != v.Host {
		return fmt.Errorf("%q is not on %s; only -url's host is dialled", u, base)
	}
	return nil
}
