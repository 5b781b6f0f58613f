package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedFileUpToDate regenerates the list from ../shared/fhir-r4 and
// compares it with the checked-in file. It is skipped where the definitions
// are not present (a user's machine; see the README of fhir-r4).
func TestGeneratedFileUpToDate(t *testing.T) {
	in := filepath.Join("..", "..", "..", "..", "..", "shared", "fhir-r4")
	if _, err := os.Stat(filepath.Join(in, "profiles-resources.json.gz")); err != nil {
		t.Skipf("FHIR R4 definitions not found at %s: %v", in, err)
	}
	got, skipped, err := generate(in)
	if err != nil {
		t.Fatalf("generate(%s): %v", in, err)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "resourcetypes_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("resourcetypes_gen.go is stale: run go generate in internal/scope")
	}
	if len(skipped) != 1 {
		t.Errorf("generate(%s): got skipped %q, want only SubscriptionStatus (R4B)", in, skipped)
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
	if err := os.WriteFile(filepath.Join(dir, "profiles-resources.json.gz"), []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := generate(dir); err == nil {
		t.Errorf("generate(bad gzip): got nil error, want one")
	}
}
