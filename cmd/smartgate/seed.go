package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/synth"
)

func seedCmd(g *globals) *cobra.Command {
	var patients, batch int
	var seed uint64
	var progress string
	cmd := &cobra.Command{
		Use:   "seed --patients N [--seed S]",
		Short: "Generate synthetic US Core 6.1.0 patients and load them",
		Long: `Generate a deterministic synthetic data set and store it, validated and
indexed as the FHIR API stores data: N patients with three years of care each
(about 165 resources a patient: encounters, vital signs, labs, screenings,
problems, medications, immunizations, procedures, devices, imaging, notes with
Binary content, coverage, goals, care team and plan, and a Provenance), the
organizations, locations and practitioners they share, and Groups for bulk
export: syn-<S>-all and the cohorts syn-<S>-diabetes, -hypertension,
-pediatric and -older-adults. Every resource follows its US Core 6.1.0
profile and fills its must-support elements.

The same N and S give the same resources, byte for byte, with ids
syn-<S>-...: running the command again changes nothing (a resource whose
content is already stored is left alone, no new version), a larger N adds
patients and updates the Groups, and another S makes a second set beside the
first. A running server sees the data at once.

Progress goes to standard error (a bar on a terminal, a line every few seconds
otherwise); the summary to standard output (--output json for scripts).
See docs/fhir.md#synthetic-data.`,
		Example: `  smartgate seed --dev --patients 100
  smartgate seed --config smartgate.yaml --patients 10000 --seed 7 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case patients < 1:
				return fmt.Errorf("--patients must be at least 1, not %d", patients)
			case batch < 1:
				return fmt.Errorf("--batch must be at least 1, not %d", batch)
			}
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
			base := ""
			if issuer := defaultIssuer(&a.Cfg.Config); issuer != "" {
				base = strings.TrimRight(issuer, "/") + "/fhir"
			}
			l := &synth.Loader{
				API:       fhir.New(fhir.Deps{Store: a.Store, Base: base, Log: a.Log}),
				Generator: synth.New(synth.Options{Patients: patients, Seed: seed}),
				Batch:     batch,
			}
			if a.Store.Dialect() == "postgres" {
				// PostgreSQL writes several transactions at once; SQLite
				// has one writer.
				l.Writers = 4
			}
			stop := showSeedProgress(g.stderr, l, progress)
			sum, err := l.Run(cmd.Context())
			stop()
			if err != nil {
				return err
			}
			return g.print(sum, func(w io.Writer) { printSeedSummary(w, sum) })
		},
	}
	f := cmd.Flags()
	f.IntVar(&patients, "patients", 0, "number of patients to generate (required)")
	f.Uint64Var(&seed, "seed", 1, "picks the data set; the same seed gives the same data")
	f.IntVar(&batch, "batch", 1000, "resources per database transaction")
	f.StringVar(&progress, "progress", "auto", "progress on standard error: auto (a bar on a terminal, else lines), bar, lines or none")
	_ = cmd.MarkFlagRequired("patients")
	return cmd
}

func printSeedSummary(w io.Writer, s synth.Summary) {
	fmt.Fprintf(w, "seeded %d patients (seed %d, %s to %s): %d resources in %.1f s (%.0f resources/s)\n",
		s.Patients, s.Seed, s.First, s.Last, s.Resources, s.Seconds, s.PerSecond)
	fmt.Fprintf(w, "created %d, updated %d, unchanged %d\n", s.Created, s.Updated, s.Unchanged)
	if s.IndexSeconds > 0 {
		fmt.Fprintf(w, "the store was empty: its search indexes were built at the end, in %.1f s of the total\n", s.IndexSeconds)
	}
	fmt.Fprintf(w, "groups for bulk export: %s\n\n", strings.Join(s.Groups, ", "))
	types := make([]string, 0, len(s.ByType))
	for t := range s.ByType {
		types = append(types, t)
	}
	slices.SortFunc(types, func(a, b string) int { return s.ByType[b] - s.ByType[a] })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, t := range types {
		fmt.Fprintf(tw, "%d\t  %s\n", s.ByType[t], t)
	}
	tw.Flush()
}

// showProgress reports progress on w until the returned function is
// called: a bar on a terminal, a line every five seconds otherwise.
func showSeedProgress(w io.Writer, l *synth.Loader, mode string) (stop func()) {
	if mode == "none" {
		return func() {}
	}
	if mode == "auto" {
		mode = "lines"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if mode == "bar" {
			seedBar(w, l, done)
		} else {
			seedLines(w, l, done, 5*time.Second)
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func seedBar(w io.Writer, l *synth.Loader, done <-chan struct{}) {
	bar := progressbar.NewOptions(l.Generator.Patients(),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("seed"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("patients"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
	)
	start := time.Now()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	update := func() {
		charts, n := l.Progress()
		if l.Indexing() {
			bar.Describe(fmt.Sprintf("seed: %d resources stored; building the search indexes", n))
		} else {
			bar.Describe(fmt.Sprintf("seed: %d resources (%.0f/s)", n, float64(n)/time.Since(start).Seconds()))
		}
		_ = bar.Set(int(charts))
	}
	for {
		select {
		case <-tick.C:
			update()
		case <-done:
			update()
			_ = bar.Finish()
			fmt.Fprintln(w)
			return
		}
	}
}

func seedLines(w io.Writer, l *synth.Loader, done <-chan struct{}, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	start, last := time.Now(), int64(0)
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			charts, n := l.Progress()
			if l.Indexing() {
				fmt.Fprintf(w, "seed: %d resources stored; building the search indexes (%s)\n", n, time.Since(start).Round(time.Second))
				continue
			}
			fmt.Fprintf(w, "seed: %d of %d patients, %d resources stored in %s (%.0f resources/s now)\n",
				charts, l.Generator.Patients(), n, time.Since(start).Round(time.Second), float64(n-last)/every.Seconds())
			last = n
		}
	}
}

// bulkMemory trades memory for CPU in the bulk-load commands (seed,
// import), whose garbage is mostly short-lived JSON: the collector runs at
// half the default rate (GOGC=200) until the heap nears a soft limit of
// 160 MiB, then as often as it must to stay under it. With SQLite's 32 MiB
// write cache that keeps the process under 300 MB. GOGC and GOMEMLIMIT in
// the environment win.
func bulkMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(160 << 20)
	}
}
