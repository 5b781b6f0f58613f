package importer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"smartgate/internal/fhir"
	"smartgate/internal/problem"
)

// Item is one resource (or Bundle entry) read from a file.
type Item struct {
	// Pos is where it is: the line number (from 1) in NDJSON, the entry
	// index (from 0, as Bundle.entry[i]) in a Bundle.
	Pos   int
	Entry fhir.ImportEntry
	// Err, when set, says why this item cannot be imported; the file goes
	// on (a line that is too long, an entry that is not an object).
	Err error
}

// Reader yields a file's items one at a time. Next returns io.EOF after
// the last; any other error means the rest of the file cannot be read.
type Reader interface {
	Next() (Item, error)
}

// MaxItem bounds one NDJSON line or one resource read whole: the REST
// API's largest body.
const MaxItem = fhir.MaxBody

// utf8BOM may start a file written by Windows tools.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// NDJSONReader reads newline-delimited JSON (FHIR Bulk Data's
// application/fhir+ndjson): one resource per line, blank lines skipped.
// It holds one line at a time; a line longer than max is skipped and
// reported as that line's failure.
type NDJSONReader struct {
	r    *bufio.Reader
	max  int
	line int
	buf  []byte
}

// NewNDJSONReader reads r; max bounds one line (0: MaxItem).
func NewNDJSONReader(r io.Reader, max int) *NDJSONReader {
	if max <= 0 {
		max = MaxItem
	}
	return &NDJSONReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next implements Reader.
func (n *NDJSONReader) Next() (Item, error) {
	for {
		line, tooLong, err := n.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return Item{}, err
		}
		if len(line) == 0 && !tooLong && errors.Is(err, io.EOF) {
			return Item{}, io.EOF
		}
		n.line++
		if n.line == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if tooLong {
			return Item{Pos: n.line, Err: problem.New(problem.RequestTooLarge, "line %d is longer than %d MiB, the most one resource may take", n.line, n.max>>20)}, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		return Item{Pos: n.line, Entry: fhir.ImportEntry{Resource: bytes.Clone(line)}}, nil
	}
}

// readLine returns the next line without its newline (err io.EOF with the
// last line when the file does not end in one). A line longer than max is
// read to its end and dropped: tooLong.
func (n *NDJSONReader) readLine() (line []byte, tooLong bool, err error) {
	n.buf = n.buf[:0]
	for {
		frag, err := n.r.ReadSlice('\n')
		content := frag
		if err == nil {
			content = frag[:len(frag)-1]
		}
		if !tooLong {
			if len(n.buf)+len(content) > n.max {
				tooLong, n.buf = true, n.buf[:0]
			} else {
				n.buf = append(n.buf, content...)
			}
		}
		switch {
		case err == nil:
			return n.buf, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return n.buf, tooLong, err
		}
	}
}

// BundleHeader is what a Bundle says about itself outside its entries.
type BundleHeader struct {
	ResourceType string
	Type         string
}

// ErrNotBundle: the JSON object is a resource other than a Bundle (its
// resourceType came before anything else that would tell).
var ErrNotBundle = errors.New("importer: not a Bundle")

// BundleReader reads a Bundle's entries one at a time with encoding/json's
// token API, so that memory holds one entry, not the Bundle.
type BundleReader struct {
	dec    *json.Decoder
	header BundleHeader
	index  int
	state  int // 0 before the entries, 1 in them, 2 done
	// entryFirst: "entry" came before resourceType or type.
	entryFirst bool
}

// NewBundleReader reads the Bundle in r.
func NewBundleReader(r io.Reader) *BundleReader {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	return &BundleReader{dec: dec}
}

// Start reads the members before entry and returns the header. When the
// object's resourceType is not Bundle it stops at once with ErrNotBundle.
// When entry comes before resourceType or type (JSON allows any order;
// FHIR serializers write them first), the header is incomplete:
// complete is false, and ScanHeader on a fresh reader finds it.
func (b *BundleReader) Start() (h BundleHeader, complete bool, err error) {
	if b.state != 0 {
		return b.header, !b.entryFirst, nil
	}
	if err := b.expectDelim('{', "a Bundle or a resource must be one JSON object"); err != nil {
		return BundleHeader{}, false, err
	}
	if err := b.members(); err != nil {
		return b.header, false, err
	}
	return b.header, !b.entryFirst, nil
}

// Header returns what is known of the header (all of it once Next has
// returned io.EOF).
func (b *BundleReader) Header() BundleHeader { return b.header }

// Next implements Reader: the next entry, or io.EOF after the last
// member of the Bundle.
func (b *BundleReader) Next() (Item, error) {
	if b.state == 0 {
		if _, _, err := b.Start(); err != nil {
			return Item{}, err
		}
	}
	for b.state == 1 {
		if !b.dec.More() {
			if err := b.expectDelim(']', "Bundle.entry must be an array"); err != nil {
				return Item{}, err
			}
			b.state = 0
			if err := b.members(); err != nil {
				return Item{}, err
			}
			break
		}
		i := b.index
		b.index++
		var e struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Request  *struct {
				Method      string `json:"method"`
				URL         string `json:"url"`
				IfNoneExist string `json:"ifNoneExist"`
				IfMatch     string `json:"ifMatch"`
			} `json:"request"`
			Search *struct {
				Mode string `json:"mode"`
			} `json:"search"`
		}
		err := b.dec.Decode(&e)
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			// The decoder read the whole value: the entry alone is bad.
			if te.Field == "" {
				return Item{Pos: i, Err: problem.New(problem.ResourceInvalid, "Bundle.entry[%d] is a JSON %s, not an object", i, te.Value)}, nil
			}
			return Item{Pos: i, Err: problem.New(problem.ResourceInvalid, "Bundle.entry[%d].%s must not be a JSON %s", i, te.Field, te.Value)}, nil
		case err != nil:
			return Item{}, b.syntax(err, fmt.Sprintf("entry %d", i))
		}
		if e.Search != nil && e.Search.Mode == "outcome" {
			continue // a searchset's OperationOutcome about the search
		}
		it := Item{Pos: i, Entry: fhir.ImportEntry{FullURL: e.FullURL}}
		if len(e.Resource) > 0 && string(e.Resource) != "null" {
			it.Entry.Resource = e.Resource
		}
		if e.Request != nil {
			it.Entry.Request = &fhir.ImportRequest{Method: e.Request.Method, URL: e.Request.URL, IfNoneExist: e.Request.IfNoneExist, IfMatch: e.Request.IfMatch}
		}
		return it, nil
	}
	return Item{}, io.EOF
}

// members reads top-level members until entry (which it enters) or the
// end of the object (after which only white space may follow).
func (b *BundleReader) members() error {
	for b.dec.More() {
		tok, err := b.dec.Token()
		if err != nil {
			return b.syntax(err, "the Bundle")
		}
		key, _ := tok.(string)
		switch key {
		case "resourceType", "type":
			var s string
			if err := b.dec.Decode(&s); err != nil {
				return b.syntax(err, "Bundle."+key)
			}
			if key == "type" {
				b.header.Type = s
			} else {
				b.header.ResourceType = s
				if s != "Bundle" {
					return ErrNotBundle
				}
			}
		case "entry":
			if b.header.ResourceType == "" || b.header.Type == "" {
				b.entryFirst = true
			}
			if err := b.expectDelim('[', "Bundle.entry must be an array"); err != nil {
				return err
			}
			b.state = 1
			return nil
		default:
			if err := b.skip(); err != nil {
				return b.syntax(err, "Bundle."+key)
			}
		}
	}
	if _, err := b.dec.Token(); err != nil { // the closing brace
		return b.syntax(err, "the Bundle")
	}
	b.state = 2
	if b.header.ResourceType == "" {
		return ErrNotBundle
	}
	if _, err := b.dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("more JSON follows the Bundle's closing brace (at byte %d); one file holds one Bundle, or one resource per line as NDJSON (name it .ndjson)", b.dec.InputOffset())
	}
	return nil
}

// skip reads one JSON value of any size token by token (a Bundle's
// signature or a large extension holds little memory).
func (b *BundleReader) skip() error {
	depth := 0
	for {
		tok, err := b.dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

func (b *BundleReader) expectDelim(d json.Delim, what string) error {
	tok, err := b.dec.Token()
	if errors.Is(err, io.EOF) && d == '{' && b.dec.InputOffset() == 0 {
		return errors.New("the file is empty")
	}
	if err != nil {
		return b.syntax(err, "the file")
	}
	if tok != d {
		return fmt.Errorf("%s (at byte %d found %v)", what, b.dec.InputOffset(), tok)
	}
	return nil
}

// syntax describes a JSON error that stops reading the file.
func (b *BundleReader) syntax(err error, where string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the file ends inside %s (after byte %d): it is cut short", where, b.dec.InputOffset())
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s is not valid JSON at byte %d: %v", where, se.Offset, se)
	}
	return fmt.Errorf("reading %s: %w", where, err)
}

// ScanHeader reads a whole Bundle (one entry at a time) for its header:
// for the rare Bundle whose entry comes before its type.
func ScanHeader(r io.Reader) (BundleHeader, error) {
	b := NewBundleReader(r)
	for {
		if _, err := b.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return b.header, nil
			}
			return b.header, err
		}
	}
}
