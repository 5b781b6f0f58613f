package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shared is where a checkout finds the FHIR definitions (../shared/fhir-r4
// from the repository root).
var shared = filepath.Join("..", "..", "..", "..", "..", "..", "shared", "fhir-r4")

// TestGeneratedFileUpToDate regenerates the data from ../shared/fhir-r4 and
// compares it with the embedded file, decompressed (gzip output may change
// between Go releases; the content may not). It is skipped where the
// definitions are not present (a user's machine; see the README of fhir-r4).
func TestGeneratedFileUpToDate(t *testing.T) {
	if _, err := os.Stat(filepath.Join(shared, "profiles-resources.json.gz")); err != nil {
		t.Skipf("FHIR R4 definitions not found at %s: %v", shared, err)
	}
	got, skipped, err := generate(shared)
	if err != nil {
		t.Fatalf("generate(%s): %v", shared, err)
	}
	f, err := os.Open(filepath.Join("..", "..", "structures.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("structures.json.gz is stale: run go generate in internal/fhir/validate")
	}
	if len(skipped) != 1 || !strings.HasPrefix(skipped[0], "SubscriptionStatus ") {
		t.Errorf("generate(%s): got skipped %q, want only SubscriptionStatus (R4B)", shared, skipped)
	}
}

func TestGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := generate(dir); err == nil {
		t.Errorf("generate(empty dir): got nil error, want one naming version.info")
	}
	if err := os.WriteFile(filepath.Join(dir, "version.info"), []byte("[FHIR]\nversion=4.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "profiles-types.json.gz"), []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := generate(dir); err == nil {
		t.Errorf("generate(bad gzip): got nil error, want one")
	}
	// A well-formed but empty bundle must fail the sanity checks, not
	// produce an empty data file.
	empty, err := compress([]byte(`{"resourceType":"Bundle","entry":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"profiles-types.json.gz", "profiles-resources.json.gz"} {
		if err := os.WriteFile(filepath.Join(dir, name), empty, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := generate(dir); err == nil || !strings.Contains(err.Error(), "notInR4") {
		t.Errorf("generate(empty bundles): got %v, want an error about the notInR4 list", err)
	}
}
