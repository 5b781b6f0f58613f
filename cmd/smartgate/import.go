package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/importer"
)

func importCmd(g *globals) *cobra.Command {
	var failures, progress, issuer string
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Load FHIR data: Bundles (transaction, batch, collection) and NDJSON",
		Long: `Load FHIR R4 resources into the database, file by file:

  - NDJSON (.ndjson, .jsonl, or detected by content): one resource per line,
    as FHIR Bulk Data exports write it.
  - A Bundle of type batch, collection or searchset: each entry on its own.
  - A Bundle of type transaction: all entries or none, urn:uuid references
    resolved as POST /fhir does; at most 1000 entries (the REST API's limit).
  - A file that holds one resource.

Files are streamed (memory stays bounded whatever their size). Every resource
is validated and indexed as the FHIR API does before anything is written; a
resource that fails is reported with its line (NDJSON) or entry index
(Bundle) and the reason, and the others are imported. A resource with an id
is an update-as-create of that id, and one whose content equals the stored
version's is left alone ("unchanged", no new version), so importing the same
files again changes nothing. A resource without an id gets a new one each
time it is imported.

Progress goes to standard error (a bar on a terminal); the summary to
standard output (--output json for scripts). The exit status is 1 when any
entry failed or any file could not be read. See docs/fhir.md#importing-data.`,
		Example: `  smartgate import --dev patients.ndjson observations.ndjson
  smartgate import --config smartgate.yaml bundle.json --output json
  smartgate import export/*.ndjson --failures failed.ndjson`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			switch progress {
			case "auto", "bar", "lines", "none":
			default:
				return fmt.Errorf("--progress must be auto, bar, lines or none, not %q", progress)
			}
			a, err := openData(g, cmd, false)
			if err != nil {
				return err
			}
			defer a.Close()
			bulkMemory()
			if issuer == "" {
				issuer = defaultIssuer(&a.Cfg.Config)
			}
			base := ""
			if issuer != "" {
				base = strings.TrimRight(issuer, "/") + "/fhir"
			}
			opt := importer.Options{}
			if failures != "" {
				f, err := os.Create(failures)
				if err != nil {
					return fmt.Errorf("--failures: %w", err)
				}
				defer f.Close()
				opt.FailureLog = f
			}
			var view *progressView
			opt.FileDone = func(fs importer.FileSummary) { view.fileDone(fs) }
			im := importer.New(fhir.New(fhir.Deps{Store: a.Store, Base: base, Log: a.Log}), opt)
			view = newProgress(g.stderr, im, progress)
			stop := view.run()
			s := im.Import(cmd.Context(), files)
			stop()
			detail, _ := json.Marshal(map[string]any{"files": len(s.Files), "created": s.Created, "updated": s.Updated, "unchanged": s.Unchanged, "deleted": s.Deleted, "failed": s.Failed})
			cliAudit(context.WithoutCancel(cmd.Context()), a, "fhir.import", "", string(detail))
			if err := g.print(s, func(w io.Writer) { printImport(w, s, failures) }); err != nil {
				return err
			}
			if cmd.Context().Err() != nil {
				return fmt.Errorf("import interrupted; the summary above says what was imported")
			}
			if !s.OK() {
				var why []string
				if s.Failed > 0 {
					why = append(why, plural(s.Failed, "entry", "entries")+" failed")
				}
				bad := 0
				for _, f := range s.Files {
					if f.Error != "" {
						bad++
					}
				}
				if bad > 0 {
					why = append(why, plural(bad, "file", "files")+" could not be read to the end")
				}
				if s.IndexError != "" {
					why = append(why, "the search indexes were not built")
				}
				return fmt.Errorf("import: %s; the summary above says which and why", strings.Join(why, " and "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&failures, "failures", "", "write every failure as one JSON line to this file (the summary lists the first 1000 per file)")
	f.StringVar(&progress, "progress", "auto", "progress on standard error: auto (a bar on a terminal, else a line every 5 s), bar, lines or none")
	f.StringVar(&issuer, "issuer", "", "the server's public base URL: references to <issuer>/fhir/Type/id are local (default: the configured issuer; for a dev data dir http://127.0.0.1:8080)")
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func printImport(w io.Writer, s importer.Summary, failureLog string) {
	line := func(c importer.Counts) string {
		return fmt.Sprintf("%d created, %d updated, %d unchanged, %d deleted, %d failed", c.Created, c.Updated, c.Unchanged, c.Deleted, c.Failed)
	}
	for _, f := range s.Files {
		format := f.Format
		if format == "" {
			format = "not read"
		}
		fmt.Fprintf(w, "%s (%s): %s\n", f.File, format, line(f.Counts))
		for _, x := range f.Failures {
			where := x.Where()
			if x.Resource != "" {
				where += " (" + x.Resource + ")"
			}
			fmt.Fprintf(w, "  %s: %s\n", where, x.Reason)
		}
		if f.FailuresOmitted > 0 {
			more := "--failures FILE lists them all"
			if failureLog != "" {
				more = failureLog + " lists them all"
			}
			fmt.Fprintf(w, "  ... and %d more failures (%s)\n", f.FailuresOmitted, more)
		}
		if f.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", f.Error)
			if f.Total() > 0 {
				fmt.Fprintf(w, "  (the entries counted above were imported; the rest of the file was not)\n")
			}
		}
	}
	fmt.Fprintf(w, "total: %s in %.1f s (%.0f entries/s)\n", line(s.Counts), s.Seconds, s.PerSecond)
	if s.IndexSeconds > 0 {
		fmt.Fprintf(w, "the store was empty: its search indexes were built at the end, in %.1f s of the total\n", s.IndexSeconds)
	}
	if s.IndexError != "" {
		fmt.Fprintf(w, "error: %s\n", s.IndexError)
	}
	if s.NewIDs > 0 {
		fmt.Fprintf(w, "note: %d resources had no id (or were POSTed) and were created with new ids; importing them again creates them again\n", s.NewIDs)
	}
}

// progressView reports an import's progress on w: a progress bar of bytes
// read per file on a terminal, else a plain line every few seconds and one
// per finished file.
type progressView struct {
	w     io.Writer
	im    *importer.Importer
	bar   bool
	every time.Duration

	mu       sync.Mutex
	cur      *progressbar.ProgressBar
	file     string // the file cur shows
	finished string // the last file done (its bar closed)
	start    time.Time
	last     int64 // entries at the last line
	indexing bool  // the line saying the indexes build is out
}

// newProgress returns the view for mode (auto, bar, lines or none; nil
// for none).
func newProgress(w io.Writer, im *importer.Importer, mode string) *progressView {
	if mode == "none" {
		return nil
	}
	if mode == "auto" {
		mode = "lines"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	return &progressView{w: w, im: im, bar: mode == "bar", every: 5 * time.Second, start: time.Now()}
}

// run reports until stop is called.
func (v *progressView) run() (stop func()) {
	if v == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		every := v.every
		if v.bar {
			every = 100 * time.Millisecond
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				v.tick()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (v *progressView) tick() {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.im.Progress()
	if p.Indexing {
		if !v.indexing {
			v.indexing = true
			fmt.Fprintf(v.w, "import: building the search indexes; searches are slow until they are built\n")
		}
		return
	}
	if p.File == "" || p.File == v.finished {
		return
	}
	if !v.bar {
		pct := 100.0
		if p.Size > 0 {
			pct = 100 * float64(min(p.Read, p.Size)) / float64(p.Size)
		}
		rate := float64(p.Entries-v.last) / v.every.Seconds()
		v.last = p.Entries
		fmt.Fprintf(v.w, "import: %s: %.1f of %.1f MiB read (%.0f%%); %d entries done in %s (%.0f entries/s now)\n",
			p.File, float64(p.Read)/(1<<20), float64(p.Size)/(1<<20), pct, p.Entries, time.Since(v.start).Round(time.Second), rate)
		return
	}
	if v.cur == nil || v.file != p.File {
		v.cur, v.file = progressbar.NewOptions64(p.Size,
			progressbar.OptionSetWriter(v.w),
			progressbar.OptionSetDescription(filepath.Base(p.File)),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
		), p.File
	}
	v.cur.Describe(fmt.Sprintf("%s: %d entries", filepath.Base(p.File), p.FileEntries))
	_ = v.cur.Set64(min(p.Read, p.Size))
}

// fileDone closes a file's bar (or line) with its counts.
func (v *progressView) fileDone(fs importer.FileSummary) {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.finished = fs.File
	counts := fmt.Sprintf("%d created, %d updated, %d unchanged, %d deleted, %d failed", fs.Created, fs.Updated, fs.Unchanged, fs.Deleted, fs.Failed)
	if !v.bar {
		fmt.Fprintf(v.w, "import: %s done: %s\n", fs.File, counts)
		return
	}
	if v.cur != nil && v.file == fs.File {
		v.cur.Describe(filepath.Base(fs.File) + ": " + counts)
		_ = v.cur.Finish()
		fmt.Fprintln(v.w)
	}
	v.cur, v.file = nil, ""
}
