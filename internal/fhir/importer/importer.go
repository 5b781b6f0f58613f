// Package importer loads FHIR data files into smartgate's store for
// `smartgate import`: Bundles of type transaction, batch, collection and
// searchset, NDJSON (FHIR Bulk Data's one resource per line), and files that
// hold one resource.
//
// Files are streamed: NDJSON line by line, a Bundle entry by entry with
// encoding/json's token API, so memory holds a few chunks of entries
// whatever the file's size. Entries are validated and indexed in parallel
// (fhir.API.PrepareImport, the REST API's rules), then written in chunks,
// one store transaction per chunk; when a chunk's transaction fails, its
// entries are written again one at a time, so only the bad ones fail and
// none is half-written. A transaction Bundle is all or nothing, through
// the REST API's transaction code (fhir.API.ImportTransaction).
package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smartgate/internal/fhir"
)

// Options tune an import. The zero value is the default.
type Options struct {
	// ChunkSize is the entries written per store transaction (default
	// 1000: larger chunks write each index page fewer times).
	ChunkSize int
	// ChunkBytes ends a chunk early when its resources reach this many
	// bytes (default 4 MiB), so that large resources do not make large
	// chunks: memory holds about three chunks whatever the file holds.
	ChunkBytes int
	// Workers validate and index entries in parallel (default GOMAXPROCS).
	Workers int
	// MaxFailures is how many failures each file's summary lists (default
	// 1000); the others are only counted, and all of them go to FailureLog.
	MaxFailures int
	// FailureLog, when set, receives every failure as one JSON line.
	FailureLog io.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// FileDone, when set, is called by Import after each file (progress
	// displays close that file's line with its counts).
	FileDone func(FileSummary)
}

// Importer imports files through one FHIR API. It imports one file at a
// time; Progress may be called from any goroutine meanwhile.
type Importer struct {
	api *fhir.API
	opt Options

	file    atomic.Pointer[string]
	read    atomic.Int64
	size    atomic.Int64
	entries atomic.Int64
	inFile  atomic.Int64                  // entries done in the current file
	bulk    atomic.Pointer[fhir.BulkLoad] // Import's hold on the store
}

// New returns an importer writing through api.
func New(api *fhir.API, opt Options) *Importer {
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = 1000
	}
	if opt.ChunkBytes <= 0 {
		opt.ChunkBytes = 4 << 20
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.MaxFailures <= 0 {
		opt.MaxFailures = 1000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	im := &Importer{api: api, opt: opt}
	im.file.Store(new(string))
	return im
}

// Progress is how far the import is.
type Progress struct {
	File string
	// Read and Size are bytes of the current file (Read runs a little
	// ahead of the entries written: it counts what was buffered).
	Read, Size int64
	// Entries counts the entries done in every file so far, FileEntries
	// those of the current file.
	Entries, FileEntries int64
	// Indexing says the import is building the search indexes it
	// deferred.
	Indexing bool
}

// Progress returns how far the import is.
func (im *Importer) Progress() Progress {
	return Progress{File: *im.file.Load(), Read: im.read.Load(), Size: im.size.Load(), Entries: im.entries.Load(), FileEntries: im.inFile.Load(), Indexing: im.bulk.Load().Building()}
}

// Import imports the files in order and sums up. A file that cannot be read
// (or only partly) is reported in its summary and the others go on; only
// a cancelled ctx stops early.
func (im *Importer) Import(ctx context.Context, paths []string) Summary {
	start := im.opt.Now()
	var s Summary
	// A store that cannot be readied loads all the same, only slower.
	bulk, _ := im.api.BeginBulkLoad(ctx)
	im.bulk.Store(bulk)
	for _, p := range paths {
		if ctx.Err() != nil {
			break
		}
		fs := im.ImportFile(ctx, p)
		if im.opt.FileDone != nil {
			im.opt.FileDone(fs)
		}
		s.Files = append(s.Files, fs)
		s.Counts.add(fs.Counts)
	}
	_ = bulk.End(ctx) // nothing left to do when a batch or transaction Bundle ended it
	if bulk.Err != nil {
		s.IndexError = "building the search indexes: " + bulk.Err.Error() + "; run smartgate migrate to build them"
	}
	s.IndexSeconds = bulk.Seconds
	s.Seconds = im.opt.Now().Sub(start).Seconds()
	if s.Seconds > 0 {
		s.PerSecond = float64(s.Total()) / s.Seconds
	}
	return s
}

// ImportFile imports one file.
func (im *Importer) ImportFile(ctx context.Context, path string) FileSummary {
	fs := FileSummary{File: path}
	im.inFile.Store(0)
	f, err := im.open(path)
	if err != nil {
		fs.Error = err.Error()
		return fs
	}
	defer func() { f.Close() }()
	br := bufio.NewReaderSize(f, 1<<20)
	format, err := detect(path, br)
	if err != nil {
		fs.Error = err.Error()
		return fs
	}
	fs.Format = format
	if format == "ndjson" {
		im.stream(ctx, NewNDJSONReader(br, 0), posLine, false, &fs)
		return fs
	}
	b := NewBundleReader(br)
	h, complete, err := b.Start()
	switch {
	case errors.Is(err, ErrNotBundle):
		fs.Format = "resource"
		im.single(ctx, path, &fs)
		return fs
	case err != nil:
		fs.Error = err.Error()
		return fs
	case !complete:
		// entry came before type: find the type first, then read again.
		f.Close()
		if f, err = im.open(path); err != nil {
			fs.Error = err.Error()
			return fs
		}
		if h, err = ScanHeader(f); err != nil {
			fs.Error = err.Error()
			return fs
		}
		f.Close()
		if f, err = im.open(path); err != nil {
			fs.Error = err.Error()
			return fs
		}
		b = NewBundleReader(bufio.NewReaderSize(f, 1<<20))
		if _, _, err := b.Start(); err != nil {
			fs.Error = err.Error()
			return fs
		}
	}
	fs.Format = "bundle/" + h.Type
	if h.Type == "transaction" || h.Type == "batch" {
		// Their entries may be conditional (a search): with the indexes.
		// (A failed build is in the summary: Import reads the BulkLoad.)
		_ = im.bulk.Load().End(ctx)
	}
	switch h.Type {
	case "transaction":
		im.transaction(ctx, path, b, &fs)
	case "batch":
		im.stream(ctx, b, posEntry, false, &fs)
	case "collection", "searchset":
		im.stream(ctx, b, posEntry, true, &fs)
	case "":
		fs.Error = "the Bundle has no type; import takes Bundles of type transaction, batch, collection or searchset"
	default:
		fs.Error = fmt.Sprintf("a Bundle of type %s cannot be imported (smartgate does not store Bundles as resources); import takes Bundles of type transaction, batch, collection or searchset", h.Type)
	}
	return fs
}

// open opens path for reading and restarts the byte count of progress.
func (im *Importer) open(path string) (*countedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory; name the files in it (smartgate import %s/*.ndjson)", path, strings.TrimRight(path, "/"))
	}
	p := path
	im.file.Store(&p)
	im.size.Store(st.Size())
	im.read.Store(0)
	return &countedFile{f: f, n: &im.read, size: st.Size()}, nil
}

// countedFile counts the bytes read, for progress.
type countedFile struct {
	f    *os.File
	n    *atomic.Int64
	size int64
}

func (c *countedFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countedFile) Close() error { return c.f.Close() }

// detect tells NDJSON from a JSON document (a Bundle or one resource): by
// the extension .ndjson or .jsonl, else by content: NDJSON's first line
// is a whole JSON object and more follows it (within the first MiB).
func detect(path string, br *bufio.Reader) (string, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".ndjson" || ext == ".jsonl" {
		return "ndjson", nil
	}
	head, err := br.Peek(br.Size())
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return "", err
	}
	head = bytes.TrimPrefix(head, utf8BOM)
	body := bytes.TrimLeft(head, " \t\r\n")
	switch {
	case len(body) == 0:
		return "", errors.New("the file is empty")
	case body[0] != '{':
		return "", errors.New("the file is neither a JSON object (a Bundle or a resource) nor NDJSON (one JSON object per line)")
	}
	// A JSON document cannot hold a whole object on its first line and
	// more after it, so this holds for .json files too (some tools write
	// NDJSON under that name).
	if i := bytes.IndexByte(body, '\n'); i > 0 && json.Valid(body[:i]) && len(bytes.TrimSpace(body[i:])) > 0 {
		return "ndjson", nil
	}
	return "json", nil
}

// posKind says how a file's items are numbered in failures.
type posKind int

const (
	posLine  posKind = iota // NDJSON line numbers
	posEntry                // Bundle entry indexes
	posNone                 // a file of one resource
)

// pending is one item on its way: prepared, or failed.
type pending struct {
	pos int
	raw []byte // the resource, to name it in a failure
	op  *fhir.ImportOp
	err error
}

// stream imports r's items in chunks: one goroutine reads and prepares
// (validates and indexes, in parallel) the next chunk while this one
// writes the last.
func (im *Importer) stream(ctx context.Context, r Reader, kind posKind, bare bool, fs *FileSummary) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []pending, 1)
	var readErr error
	go func() {
		defer close(chunks)
		for {
			items := make([]Item, 0, im.opt.ChunkSize)
			var err error
			for bytes := 0; len(items) < im.opt.ChunkSize && bytes < im.opt.ChunkBytes; {
				var it Item
				if it, err = r.Next(); err != nil {
					break
				}
				items = append(items, it)
				bytes += len(it.Entry.Resource)
			}
			if len(items) > 0 {
				select {
				case chunks <- im.prepare(items, bare):
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
		}
	}()
	for ch := range chunks {
		if ctx.Err() != nil {
			continue // drain: the reader stops at its next send
		}
		im.write(ctx, ch, kind, fs)
	}
	switch {
	case ctx.Err() != nil:
		fs.Error = "interrupted: the entries after those counted were not imported"
	case readErr != nil:
		fs.Error = readErr.Error()
	}
}

// prepare validates and indexes items in parallel.
func (im *Importer) prepare(items []Item, bare bool) []pending {
	out := make([]pending, len(items))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(im.opt.Workers, len(items)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				it := items[i]
				p := pending{pos: it.Pos, raw: it.Entry.Resource, err: it.Err}
				if p.err == nil {
					e := it.Entry
					if bare {
						e.Request = nil
					}
					if e.Request == nil && e.Resource == nil {
						p.err = fmt.Errorf("entry %d has no resource", it.Pos)
					} else if p.op, p.err = im.api.PrepareImport(it.Pos, e); p.err == nil {
						p.raw = nil // the op holds what is written; let the line go
					}
				}
				out[i] = p
			}
		})
	}
	wg.Wait()
	return out
}

// write writes one chunk in one store transaction or, when that fails,
// entry by entry.
func (im *Importer) write(ctx context.Context, ch []pending, kind posKind, fs *FileSummary) {
	defer im.counted(len(ch))
	ops := make([]*fhir.ImportOp, 0, len(ch))
	okp := make([]*pending, 0, len(ch))
	for i := range ch {
		p := &ch[i]
		if p.err != nil {
			im.fail(fs, kind, p, p.err)
			continue
		}
		ops = append(ops, p.op)
		okp = append(okp, p)
	}
	if len(ops) == 0 {
		return
	}
	res, err := im.api.WriteImport(ctx, ops)
	if err == nil {
		for _, r := range res {
			fs.count(r)
		}
		return
	}
	for i, op := range ops {
		if ctx.Err() != nil {
			return
		}
		res, err := im.api.WriteImport(ctx, []*fhir.ImportOp{op})
		if err != nil {
			im.fail(fs, kind, okp[i], err)
			continue
		}
		fs.count(res[0])
	}
}

func (im *Importer) counted(n int) {
	im.entries.Add(int64(n))
	im.inFile.Add(int64(n))
}

// fail records one entry's failure.
func (im *Importer) fail(fs *FileSummary, kind posKind, p *pending, err error) {
	fs.Failed++
	f := withPos(failureOf(fs.File, err), kind, p.pos)
	switch {
	case p.op != nil && p.op.ID != "" && !p.op.NewID:
		f.Resource = p.op.Type + "/" + p.op.ID
	case p.raw != nil:
		var h struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if json.Unmarshal(p.raw, &h) == nil && h.ResourceType != "" && h.ID != "" && len(h.ResourceType)+len(h.ID) < 200 {
			f.Resource = h.ResourceType + "/" + h.ID
		}
	}
	im.record(fs, f)
}

func (im *Importer) record(fs *FileSummary, f Failure) {
	if len(fs.Failures) < im.opt.MaxFailures {
		fs.Failures = append(fs.Failures, f)
	} else {
		fs.FailuresOmitted++
	}
	if im.opt.FailureLog != nil {
		b, _ := json.Marshal(f)
		_, _ = im.opt.FailureLog.Write(append(b, '\n'))
	}
}

// single imports a file that holds one resource.
func (im *Importer) single(ctx context.Context, path string, fs *FileSummary) {
	body, err := im.readWhole(path)
	if err != nil {
		fs.Error = err.Error()
		return
	}
	im.stream(ctx, &sliceReader{items: []Item{{Entry: fhir.ImportEntry{Resource: body}}}}, posNone, false, fs)
}

// readWhole reads a file of at most MaxItem bytes.
func (im *Importer) readWhole(path string) ([]byte, error) {
	f, err := im.open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.size > MaxItem {
		return nil, fmt.Errorf("the file is %d MiB; a file read whole (one resource, or a transaction Bundle) may be at most %d MiB", f.size>>20, MaxItem>>20)
	}
	return io.ReadAll(io.LimitReader(f, MaxItem+1))
}

// sliceReader yields fixed items.
type sliceReader struct{ items []Item }

func (s *sliceReader) Next() (Item, error) {
	if len(s.items) == 0 {
		return Item{}, io.EOF
	}
	it := s.items[0]
	s.items = s.items[1:]
	return it, nil
}

// transaction imports a transaction Bundle all or nothing through the
// REST API's transaction code. Its entries are counted first, streaming,
// so that an oversized one is refused without being held in memory.
func (im *Importer) transaction(ctx context.Context, path string, b *BundleReader, fs *FileSummary) {
	n := 0
	for {
		_, err := b.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fs.Error = err.Error()
			return
		}
		if n++; n > fhir.MaxBundleEntries {
			fs.Error = fmt.Sprintf("this transaction Bundle has more than %d entries, the most one transaction may hold (the REST API's limit too); "+
				"import it as a batch (set \"type\": \"batch\": each entry on its own, no limit) or as NDJSON, or split it into transactions of at most %d entries",
				fhir.MaxBundleEntries, fhir.MaxBundleEntries)
			return
		}
	}
	body, err := im.readWhole(path)
	if err != nil {
		fs.Error = err.Error()
		return
	}
	results, failed, err := im.api.ImportTransaction(ctx, body)
	im.counted(n)
	if err != nil {
		fs.Failed += n
		kind := posEntry
		if failed < 0 {
			kind = posNone
		}
		im.record(fs, withPos(failureOf(fs.File, err), kind, failed))
		return
	}
	for _, r := range results {
		fs.count(r)
	}
}

func withPos(f Failure, kind posKind, pos int) Failure {
	switch kind {
	case posLine:
		f.Line = pos
	case posEntry:
		f.Entry = &pos
	}
	return f
}
