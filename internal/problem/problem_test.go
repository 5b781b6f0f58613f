package problem

import (
	"encoding/json"
	"errors"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"smartgate/internal/requestid"
)

var update = flag.Bool("update", false, "rewrite docs/errors.md from the catalogue")

const repoRoot = "../.."

// TestEveryUsedIDIsCatalogued parses every Go file of the module and fails
// when an error id is used (as a string literal or a constant passed to
// New/Wrap, or converted with ID(...)) without a catalogue entry.
func TestEveryUsedIDIsCatalogued(t *testing.T) {
	consts := map[string]string{} // constant name -> value, from this package
	fset := token.NewFileSet()
	pkgFiles, _ := filepath.Glob("*.go")
	for _, f := range pkgFiles {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							consts[n.Name] = v
						}
					}
				}
			}
		}
	}
	for name, v := range consts {
		if _, err := strconv.Atoi(v); err == nil {
			continue
		}
		if ast.IsExported(name) {
			if _, ok := catalogue[ID(v)]; !ok {
				t.Errorf("constant %s = %q has no catalogue entry", name, v)
			}
		}
	}

	resolve := func(e ast.Expr) (string, bool) {
		switch x := e.(type) {
		case *ast.BasicLit:
			if x.Kind == token.STRING {
				v, _ := strconv.Unquote(x.Value)
				return v, true
			}
		case *ast.Ident:
			v, ok := consts[x.Name]
			return v, ok
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && id.Name == "problem" {
				v, ok := consts[x.Sel.Name]
				return v, ok
			}
		}
		return "", false
	}
	checked := 0
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != repoRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		inProblem := file.Name.Name == "problem"
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr:
				if x, ok := f.X.(*ast.Ident); ok && x.Name == "problem" {
					fn = f.Sel.Name
				}
			case *ast.Ident:
				if inProblem {
					fn = f.Name
				}
			}
			if fn != "New" && fn != "Wrap" && fn != "ID" {
				return true
			}
			v, ok := resolve(call.Args[0])
			if !ok {
				return true // a variable: checked where its value is built
			}
			checked++
			if _, ok := catalogue[ID(v)]; !ok {
				t.Errorf("%s: error id %q is used but has no catalogue entry", fset.Position(call.Pos()), v)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("found no uses of problem.New/Wrap: the scan is broken")
	}
}

func TestEntriesComplete(t *testing.T) {
	for _, e := range entries {
		if e.Title == "" || e.Cause == "" || e.Fix == "" || e.Code == "" {
			t.Errorf("entry %s lacks a title, cause, fix or code", e.ID)
		}
		if e.Status != 0 && e.FHIRCode == "" {
			t.Errorf("entry %s has an HTTP status but no FHIR issue code", e.ID)
		}
	}
}

func TestErrorsMarkdownUpToDate(t *testing.T) {
	path := filepath.Join(repoRoot, "docs", "errors.md")
	want := Markdown()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./internal/problem -update)", err)
	}
	if string(got) != want {
		t.Errorf("docs/errors.md is out of date with the catalogue; run: go test ./internal/problem -update")
	}
}

func TestWritersHidePrivateCause(t *testing.T) {
	wr := &Writer{BaseURL: "https://ehr.example.org"}
	secret := errors.New(`pq: relation "signing_keys" does not exist at /root/src/store.go:42`)
	for _, s := range []Surface{SurfaceOAuth, SurfaceFHIR, SurfaceHTML} {
		req := httptest.NewRequest("GET", "/x", nil)
		req = req.WithContext(requestid.With(req.Context(), "rid-123"))
		rec := httptest.NewRecorder()
		wr.Write(rec, req, s, secret)
		body := rec.Body.String()
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("surface %d: status %d, want 500", s, rec.Code)
		}
		if strings.Contains(body, "signing_keys") || strings.Contains(body, "store.go") {
			t.Errorf("surface %d: body leaks the cause: %s", s, body)
		}
		if !strings.Contains(body, "rid-123") {
			t.Errorf("surface %d: body lacks the request id: %s", s, body)
		}
	}
}

func TestOAuthBody(t *testing.T) {
	wr := &Writer{BaseURL: "https://ehr.example.org/"}
	req := httptest.NewRequest("POST", "/oauth2/token", nil)
	req = req.WithContext(requestid.With(req.Context(), "r1"))
	rec := httptest.NewRecorder()
	wr.Write(rec, req, SurfaceOAuth, New(InvalidRequest, `parameter "grant_type" is missing; send grant_type=client_credentials`).WithHeader("WWW-Authenticate", `Basic realm="x"`))
	if rec.Code != 400 {
		t.Fatalf("status %d, want 400", rec.Code)
	}
	var got map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"error":             "invalid_request",
		"error_description": "parameter 'grant_type' is missing; send grant_type=client_credentials",
		"error_uri":         "https://ehr.example.org/docs/errors#invalid_request",
		"request_id":        "r1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if rec.Header().Get("WWW-Authenticate") == "" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v lack WWW-Authenticate or Cache-Control: no-store", rec.Header())
	}
}

func TestOperationOutcome(t *testing.T) {
	wr := &Writer{BaseURL: "https://ehr.example.org"}
	oo := wr.OperationOutcome(New(NotFound, "Patient/123 is not known"), "r2")
	b, _ := json.Marshal(oo)
	s := string(b)
	for _, want := range []string{`"resourceType":"OperationOutcome"`, `"code":"not-found"`, `"text":"Patient/123 is not known"`, `r2`} {
		if !strings.Contains(s, want) {
			t.Errorf("OperationOutcome %s lacks %s", s, want)
		}
	}
}
