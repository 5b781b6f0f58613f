// Package e2e holds end-to-end tests: they build the real smartgate binary
// once and drive it as a user would (separate processes, real HTTP, real
// signals), on SQLite and on a real PostgreSQL server (internal/pgtest).
//
// Run them with: go test ./e2e
package e2e
