package problem

import "net/http"

// Entry is one row of the error catalogue: the public code and status of an
// error, and the cause and fix that /docs/errors explains.
type Entry struct {
	ID       ID
	Code     string // the OAuth 2.0 error code (or a smartgate code for non-OAuth surfaces)
	Status   int    // HTTP status; 0 for errors reported only by the command line
	FHIRCode string // OperationOutcome issue.code (FHIR R4 IssueType)
	Title    string
	Cause    string
	Fix      string
}

// The catalogue ids. Add the id here and its entry to entries below; the
// tests fail on an id used anywhere in the code without an entry.
const (
	InvalidRequest        ID = "invalid_request"
	NotFound              ID = "not_found"
	MethodNotAllowed      ID = "method_not_allowed"
	RequestTooLarge       ID = "request_too_large"
	InternalError         ID = "internal_error"
	NotReady              ID = "not_ready"
	DiscoveryNotAvailable ID = "discovery_not_available"
	SigningKeyUnavailable ID = "signing_key_unavailable"

	ConfigInvalid       ID = "config_invalid"
	InsecureIssuer      ID = "insecure_issuer"
	KEKMissing          ID = "kek_missing"
	KEKInvalid          ID = "kek_invalid"
	KEKPermissions      ID = "kek_permissions"
	KEKMismatch         ID = "kek_mismatch"
	DatabaseUnreachable ID = "database_unreachable"
	SchemaTooNew        ID = "schema_too_new"
	TLSCertificate      ID = "tls_certificate"
)

// entries is the catalogue in the order /docs/errors lists it.
var entries = []Entry{
	{ID: InvalidRequest, Code: "invalid_request", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The request is malformed",
		Cause: "A parameter is missing, repeated, or has a value the endpoint does not accept. The error description names the parameter and the rule.",
		Fix:   "Correct the named parameter as the description says and send the request again."},
	{ID: NotFound, Code: "not_found", Status: http.StatusNotFound, FHIRCode: "not-found",
		Title: "No such endpoint or resource",
		Cause: "The path does not name an endpoint smartgate serves, or the resource does not exist.",
		Fix:   "Check the URL against the discovery documents (/.well-known/openid-configuration, /fhir/.well-known/smart-configuration) and the docs; endpoints are case-sensitive and have no trailing slash."},
	{ID: MethodNotAllowed, Code: "invalid_request", Status: http.StatusMethodNotAllowed, FHIRCode: "not-supported",
		Title: "HTTP method not allowed here",
		Cause: "The endpoint exists but does not accept this HTTP method.",
		Fix:   "Use one of the methods the Allow response header lists."},
	{ID: RequestTooLarge, Code: "invalid_request", Status: http.StatusRequestEntityTooLarge, FHIRCode: "too-costly",
		Title: "Request body too large",
		Cause: "The request body exceeds the limit for this endpoint.",
		Fix:   "Send a smaller body; for large data sets use the import command or Bulk Data."},
	{ID: InternalError, Code: "server_error", Status: http.StatusInternalServerError, FHIRCode: "exception",
		Title: "The server failed",
		Cause: "An unexpected failure inside smartgate or its database. Details are in the server log under the request id; they are never sent to clients.",
		Fix:   "Retry later. If it persists, give the administrator the request id from the response: the log line with that id says what failed."},
	{ID: NotReady, Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable, FHIRCode: "transient",
		Title: "The node is not ready",
		Cause: "This node cannot serve requests correctly right now: its database is unreachable, its signing keys are not loaded, or its view of shared state (revocations, clients, keys) is older than a few seconds.",
		Fix:   "Retry on another node or a little later. Operators: `smartgate doctor` on this node names the failing check."},
	{ID: DiscoveryNotAvailable, Code: "not_found", Status: http.StatusNotFound, FHIRCode: "not-found",
		Title: "Discovery document not served",
		Cause: "smartgate serves a discovery document only when every field its specification requires is backed by a working feature. The description lists the fields still missing.",
		Fix:   "Enable the features the description names, or use the discovery documents that are served."},
	{ID: SigningKeyUnavailable, Code: "server_error", Status: http.StatusServiceUnavailable, FHIRCode: "transient",
		Title: "No signing key available",
		Cause: "The node holds no usable signing key for the algorithm, usually because the key-encryption key (KEK) it was given cannot decrypt the stored keys.",
		Fix:   "Operators: run `smartgate doctor`; give the node the KEK the keys are encrypted under (see docs/operations.md, \"Keys and the KEK\")."},

	{ID: ConfigInvalid, Code: "config_invalid",
		Title: "The configuration is invalid",
		Cause: "One or more configuration keys are missing or have values smartgate cannot use. Every problem is listed at once, each naming the key.",
		Fix:   "Set each named key as the message says, in the YAML file, as SMARTGATE_* environment variable, or as a flag (docs/configuration.md lists every key)."},
	{ID: InsecureIssuer, Code: "config_invalid",
		Title: "The issuer is not HTTPS",
		Cause: "Outside dev mode the issuer URL must be https://, or http:// only on a loopback host: OAuth 2.0 (RFC 6749 §3.1, §10) requires TLS for every endpoint that carries credentials.",
		Fix:   "Set `issuer` to the https:// URL clients use, and either give `tls.cert_file` and `tls.key_file` or name the TLS-terminating proxy in `trusted_proxies`. For a local trial use `smartgate serve --dev`."},
	{ID: KEKMissing, Code: "config_invalid",
		Title: "No key-encryption key",
		Cause: "Signing keys are stored encrypted under a key-encryption key (KEK), and none was given.",
		Fix:   "Generate one with `head -c 32 /dev/urandom | base64 > /etc/smartgate/kek && chmod 600 /etc/smartgate/kek` and set `kek_file`, or set SMARTGATE_KEK to the base64 value."},
	{ID: KEKInvalid, Code: "config_invalid",
		Title: "The key-encryption key is malformed",
		Cause: "The KEK must be exactly 32 random bytes written in standard base64 (44 characters ending in '=').",
		Fix:   "Generate a new one with `head -c 32 /dev/urandom | base64`; if keys were already encrypted under the old KEK, use `smartgate key rewrap` rather than replacing it."},
	{ID: KEKPermissions, Code: "config_invalid",
		Title: "The KEK file is readable by others",
		Cause: "A KEK file that group or other users can read exposes every signing key; smartgate refuses to use it.",
		Fix:   "Run `chmod 600 <kek_file>` (and make sure the file belongs to the user smartgate runs as)."},
	{ID: KEKMismatch, Code: "config_invalid",
		Title: "The KEK does not decrypt the stored keys",
		Cause: "The signing keys in the database were encrypted under a different key-encryption key than the one this node was given.",
		Fix:   "Give the node the KEK the keys were encrypted under (the same `kek_file` or SMARTGATE_KEK on every node); after `smartgate key rewrap`, distribute the new KEK to every node."},
	{ID: DatabaseUnreachable, Code: "database_unreachable",
		Title: "The database cannot be reached",
		Cause: "smartgate could not open or query the database named by `database`.",
		Fix:   "Check the DSN in `database` (postgres://user:pass@host:5432/db?sslmode=...) or the SQLite path and its directory permissions; `smartgate doctor` shows the driver's message."},
	{ID: SchemaTooNew, Code: "schema_too_new",
		Title: "The database was migrated by a newer smartgate",
		Cause: "The database schema version is newer than this binary knows; running it could corrupt data.",
		Fix:   "Run the smartgate version that migrated the database, or a newer one."},
	{ID: TLSCertificate, Code: "config_invalid",
		Title: "The TLS certificate cannot be used",
		Cause: "The files named by `tls.cert_file` and `tls.key_file` cannot be read, do not match, or hold an expired certificate.",
		Fix:   "Point the keys at a readable PEM certificate chain and its private key; renew an expired certificate and send SIGHUP to reload it without a restart."},
}

var catalogue = func() map[ID]Entry {
	m := make(map[ID]Entry, len(entries))
	for _, e := range entries {
		if _, dup := m[e.ID]; dup {
			panic("problem: duplicate catalogue id " + string(e.ID))
		}
		m[e.ID] = e
	}
	return m
}()

// Entries returns the catalogue in documentation order.
func Entries() []Entry { return append([]Entry(nil), entries...) }

// Lookup returns the entry for id.
func Lookup(id ID) (Entry, bool) {
	e, ok := catalogue[id]
	return e, ok
}
