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
	// ExternalIssuerUnavailable: a trusted external issuer's keys or
	// introspection endpoint could not be reached (federation.issuers).
	ExternalIssuerUnavailable ID = "external_issuer_unavailable"

	InvalidClient              ID = "invalid_client"
	ClientAssertionInvalid     ID = "client_assertion_invalid"
	ClientPending              ID = "client_pending"
	ClientDisabled             ID = "client_disabled"
	InvalidGrant               ID = "invalid_grant"
	RefreshTokenReused         ID = "refresh_token_reused"
	UnauthorizedClient         ID = "unauthorized_client"
	UnsupportedGrantType       ID = "unsupported_grant_type"
	InvalidScope               ID = "invalid_scope"
	InvalidClientMetadata      ID = "invalid_client_metadata"
	InvalidRedirectURI         ID = "invalid_redirect_uri"
	RegistrationTokenInvalid   ID = "registration_token_invalid"
	InitialAccessTokenRequired ID = "initial_access_token_required"
	RateLimited                ID = "rate_limited"
	UnsupportedTokenType       ID = "unsupported_token_type"

	TokenMissing            ID = "token_missing"
	InvalidToken            ID = "invalid_token"
	InsufficientScope       ID = "insufficient_scope"
	ResourceNotFound        ID = "resource_not_found"
	ResourceDeleted         ID = "resource_deleted"
	UnsupportedResourceType ID = "unsupported_resource_type"
	ResourceInvalid         ID = "resource_invalid"
	SearchParameterInvalid  ID = "search_parameter_invalid"
	SearchParameterUnknown  ID = "search_parameter_unknown"
	VersionConflict         ID = "version_conflict"
	PreconditionFailed      ID = "precondition_failed"
	UnsupportedMediaType    ID = "unsupported_media_type"
	NotAcceptable           ID = "not_acceptable"
	TransactionFailed       ID = "transaction_failed"
	ExportFailed            ID = "export_failed"

	LoginFailed            ID = "login_failed"
	LoginThrottled         ID = "login_throttled"
	TOTPInvalid            ID = "totp_invalid"
	TOTPEnrollmentRequired ID = "totp_enrollment_required"
	UserExists             ID = "user_exists"
	PasswordRejected       ID = "password_rejected"

	AuthorizeBrowserStep    ID = "authorize_browser_step"
	AuthorizeRequestInvalid ID = "authorize_request_invalid"
	AuthorizeRequestExpired ID = "authorize_request_expired"
	UnsupportedResponseType ID = "unsupported_response_type"
	InvalidRequestURI       ID = "invalid_request_uri"
	AccessDenied            ID = "access_denied"
	LoginRequired           ID = "login_required"
	ConsentRequired         ID = "consent_required"
	InteractionRequired     ID = "interaction_required"
	FormExpired             ID = "form_expired"
	LaunchInvalid           ID = "launch_invalid"
	PasswordGrantDisabled   ID = "password_grant_disabled"

	UpstreamUnavailable     ID = "upstream_unavailable"
	UpstreamClientRejected  ID = "upstream_client_rejected"
	UpstreamError           ID = "upstream_error"
	UpstreamDenied          ID = "upstream_denied"
	UpstreamIDTokenInvalid  ID = "upstream_id_token_invalid"
	UpstreamStateInvalid    ID = "upstream_state_invalid"
	UpstreamNotLinked       ID = "upstream_not_linked"
	UpstreamAccountDisabled ID = "upstream_account_disabled"
	UpstreamClaimsInvalid   ID = "upstream_claims_invalid"

	AdminTokenRequired ID = "admin_token_required"
	AdminRequired      ID = "admin_required"
	SettingPinned      ID = "setting_pinned"

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
	{ID: ExternalIssuerUnavailable, Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable, FHIRCode: "transient",
		Title: "The token's issuer could not be reached",
		Cause: "The access token comes from an external issuer an administrator trusts (federation.issuers), and smartgate could not fetch that issuer's discovery document or signing keys (JWK Set), or its introspection endpoint did not answer, so the token can be neither accepted nor refused. The token itself may be fine.",
		Fix:   "Retry a little later. Operators: the log line with the request id names the URL and the failure; check that smartgate reaches the issuer (allow_private for an issuer on a private network) and that the introspection credentials are right (see docs/federation.md)."},

	{ID: InvalidClient, Code: "invalid_client", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "Client authentication failed",
		Cause: "The client_id is unknown, the client secret is wrong, or the client authenticated with another method than the one it registered (token_endpoint_auth_method). The description says which.",
		Fix:   "Send the client_id and secret you received at registration, in the way the client registered: HTTP Basic (client_secret_basic), form fields client_id and client_secret (client_secret_post), a signed client_assertion (private_key_jwt), or client_id alone for a public client (none). `smartgate client show ID` shows the registered method."},
	{ID: ClientAssertionInvalid, Code: "invalid_client", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "The client assertion is not acceptable",
		Cause: "The signed JWT in client_assertion (RFC 7523, SMART Backend Services) breaks a rule: its algorithm, signature, key, iss, sub, aud, exp, jti, or jku. The description names the rule.",
		Fix:   "Sign a fresh assertion with a registered key (RS384 or ES384 recommended) with iss and sub set to your client_id, aud set to the token endpoint URL exactly, exp at most 5 minutes ahead, and a new random jti for every request; send client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer."},
	{ID: ClientPending, Code: "invalid_client", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "The client waits for approval",
		Cause: "The client registered itself and is not yet approved: under the approval policy only public apps that ask for patient-level scopes are enabled at once; every other self-registered client, and any client whose registration widened its scopes, grant types or redirect URIs, waits for an administrator.",
		Fix:   "Ask an administrator to review and approve it: `smartgate client enable CLIENT_ID`. (At the token endpoint the answer is 401; at `/oauth2/authorize` the browser gets a 403 page, without the Basic challenge that would make it show a password dialog.)"},
	{ID: ClientDisabled, Code: "invalid_client", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "The client is disabled",
		Cause: "An administrator disabled the client; every token it held was revoked.",
		Fix:   "Ask the administrator why; they re-enable it with `smartgate client enable CLIENT_ID`."},
	{ID: InvalidGrant, Code: "invalid_grant", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The grant is invalid",
		Cause: "The authorization code or refresh token is unknown, expired, already used or revoked, or was issued to another client, or the PKCE verifier or redirect_uri does not match.",
		Fix:   "Start the flow again to get a new code or refresh token; send each code once, within 60 seconds, from the client it was issued to."},
	{ID: RefreshTokenReused, Code: "invalid_grant", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "A used refresh token was presented again",
		Cause: "Refresh tokens rotate: every use returns a new one and the old one becomes invalid. Presenting an old one means a copy exists, so the whole grant was revoked (OAuth 2.0 Security Best Current Practice, refresh token rotation).",
		Fix:   "Store the new refresh_token from every token response and use only the latest. The user must authorise the app again."},
	{ID: UnauthorizedClient, Code: "unauthorized_client", Status: http.StatusBadRequest, FHIRCode: "forbidden",
		Title: "The client may not use this grant",
		Cause: "The client did not register this grant type, or its client type cannot use it (public clients cannot use client_credentials), or the token belongs to another client.",
		Fix:   "Register the grant type (`smartgate client update ID --grant-type ...`, or a registration update), or use the flow meant for this kind of client."},
	{ID: UnsupportedGrantType, Code: "unsupported_grant_type", Status: http.StatusBadRequest, FHIRCode: "not-supported",
		Title: "Unknown grant_type",
		Cause: "grant_type names a grant this server does not support.",
		Fix:   "Use a grant_type listed in grant_types_supported of /.well-known/oauth-authorization-server."},
	{ID: InvalidScope, Code: "invalid_scope", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "No acceptable scope",
		Cause: "A requested scope is unknown or malformed, or nothing was left after dropping the scopes the client did not register or that this grant does not allow. The description lists every dropped scope and why.",
		Fix:   "Request scopes from scopes_supported in the discovery document, written as SMART App Launch 2.2 defines them (e.g. system/Observation.rs), and registered for the client."},
	{ID: InvalidClientMetadata, Code: "invalid_client_metadata", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The client metadata is invalid",
		Cause: "A registration field breaks a rule (RFC 7591 §2): the description names the field and the rule.",
		Fix:   "Correct the named field and register again; docs/clients.md lists every field and its rules."},
	{ID: InvalidRedirectURI, Code: "invalid_redirect_uri", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "A redirect URI is not allowed",
		Cause: "Redirect URIs must be https, or http on 127.0.0.1 or [::1] (any port matches, RFC 8252 §7.3), or a private-use reverse-DNS scheme for public native apps (RFC 8252 §7.1), and have no fragment.",
		Fix:   "Use an https URL, a loopback IP literal (not 'localhost'), or a scheme like com.example.app:/callback."},
	{ID: RegistrationTokenInvalid, Code: "invalid_token", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "Registration access token refused",
		Cause: "Reading, updating or deleting a registration (RFC 7592) needs the registration_access_token returned at registration as a Bearer token; it is missing, wrong, or the client does not exist.",
		Fix:   "Send Authorization: Bearer <registration_access_token> to the registration_client_uri you received. A lost token cannot be recovered: an administrator can manage the client with `smartgate client ...`."},
	{ID: InitialAccessTokenRequired, Code: "invalid_token", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "Registration needs an initial access token",
		Cause: "The registration policy (registration.policy: token) requires an initial access token (RFC 7591 §3) and none, or an unknown or expired one, was sent.",
		Fix:   "Ask an administrator for one (`smartgate client initial-token`) and send it as Authorization: Bearer <token> with the registration request."},
	{ID: RateLimited, Code: "temporarily_unavailable", Status: http.StatusTooManyRequests, FHIRCode: "throttled",
		Title: "Too many requests",
		Cause: "The client or address sent more requests than the configured rate limit allows.",
		Fix:   "Wait for the number of seconds in Retry-After. Backend services should reuse an access token until shortly before it expires instead of requesting one per call."},
	{ID: UnsupportedTokenType, Code: "unsupported_token_type", Status: http.StatusBadRequest, FHIRCode: "not-supported",
		Title: "This token type cannot be revoked here",
		Cause: "The token_type_hint names a token type this server does not issue.",
		Fix:   "Use token_type_hint=access_token or refresh_token, or leave it out."},

	{ID: TokenMissing, Code: "token_missing", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "The FHIR request carries no access token",
		Cause: "Every FHIR request except GET /fhir/metadata and the SMART configuration needs `Authorization: Bearer <access token>`. The response is a bare `WWW-Authenticate: Bearer realm=...` challenge (RFC 6750 §3).",
		Fix:   "Get an access token from the token endpoint (a SMART app launch, or client_credentials for a backend service) and send it in the Authorization header; the quick start shows both."},
	{ID: InvalidToken, Code: "invalid_token", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "The access token was refused",
		Cause: "The bearer token is malformed, expired, revoked, not issued by this server, or issued for another audience; `error_description` (in WWW-Authenticate and the OperationOutcome) says which.",
		Fix:   "Get a new token (use the refresh token if you have one). A token for another server or audience cannot be used here: request it from this server with `aud` set to this FHIR base URL."},
	{ID: InsufficientScope, Code: "insufficient_scope", Status: http.StatusForbidden, FHIRCode: "forbidden",
		Title: "The token's scopes do not allow this request",
		Cause: "No granted scope allows this interaction on this resource type (or the resource is outside the query constraint of a granular scope). WWW-Authenticate names, in `scope=\"...\"`, a scope that would allow it (RFC 6750 §3.1).",
		Fix:   "Register the named scope for the client and request it at authorization (or, for a backend service, at the token endpoint)."},
	{ID: ResourceNotFound, Code: "not_found", Status: http.StatusNotFound, FHIRCode: "not-found",
		Title: "No such resource",
		Cause: "No resource of this type has this id, or it is outside what the token may see (a patient/ scope never reveals whether another patient's resource exists).",
		Fix:   "Check the resource type and id; search instead of guessing ids."},
	{ID: ResourceDeleted, Code: "gone", Status: http.StatusGone, FHIRCode: "deleted",
		Title: "The resource was deleted",
		Cause: "The resource existed and its current version is a deletion (FHIR R4 §3.1.0.4). Its earlier versions stay readable with vread and _history.",
		Fix:   "Read its history at /fhir/{type}/{id}/_history, or create it again with PUT."},
	{ID: UnsupportedResourceType, Code: "not_supported", Status: http.StatusNotFound, FHIRCode: "not-supported",
		Title: "The resource type is not served here",
		Cause: "smartgate serves the US Core 6.1.0 resource types plus Group and Binary; /fhir/metadata lists them. Resource type names are case-sensitive.",
		Fix:   "Use one of the types in the CapabilityStatement at /fhir/metadata (e.g. `Observation`, not `observation`)."},
	{ID: ResourceInvalid, Code: "invalid_resource", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The resource is not valid FHIR R4",
		Cause: "The body does not follow the FHIR R4 JSON structure (unknown element, wrong type, missing required element, bad date or code format, too many or too few values). Each issue of the OperationOutcome names the element by its FHIRPath location. Nothing was stored.",
		Fix:   "Fix each listed element and send the request again. The R4 definitions are at https://hl7.org/fhir/R4/."},
	{ID: SearchParameterInvalid, Code: "invalid_search", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "A search parameter has a value smartgate cannot read",
		Cause: "A search parameter's value, modifier or prefix does not follow FHIR R4 search syntax for its type (e.g. a date that is not a FHIR date, `:exact` on a token), or a control parameter (_count, _sort, _include) is malformed, or the search goes past one of the limits in the FHIR guide (100 parameter occurrences, 100 comma-separated values of one parameter, 1000 values over the whole search, 1000 ids in _id). The OperationOutcome names the parameter.",
		Fix:   "Correct the value as the description says; the search syntax per type is at https://hl7.org/fhir/R4/search.html. Past a limit, split the search into several."},
	{ID: SearchParameterUnknown, Code: "unknown_search_parameter", Status: http.StatusBadRequest, FHIRCode: "not-supported",
		Title: "Unknown search parameter (strict handling)",
		Cause: "The request asked for `Prefer: handling=strict` and used a search parameter this server does not support for the resource type. Without strict handling it is ignored and left out of the self link.",
		Fix:   "Use a parameter listed for the type in /fhir/metadata, or drop `Prefer: handling=strict`."},
	{ID: VersionConflict, Code: "conflict", Status: http.StatusConflict, FHIRCode: "conflict",
		Title: "The resource changed concurrently",
		Cause: "Two writes to the same resource raced, or the request conflicts with the resource's current state.",
		Fix:   "Read the resource again and retry the write."},
	{ID: PreconditionFailed, Code: "precondition_failed", Status: http.StatusPreconditionFailed, FHIRCode: "conflict",
		Title: "A precondition of the request failed",
		Cause: "`If-Match` named a version that is no longer the current one (someone else updated the resource), or a conditional request matched more than one resource.",
		Fix:   "Read the resource again, apply your change to the current version and send it with that version's ETag; make conditional criteria specific enough to match one resource."},
	{ID: UnsupportedMediaType, Code: "unsupported_media_type", Status: http.StatusUnsupportedMediaType, FHIRCode: "not-supported",
		Title: "The request body is not FHIR JSON",
		Cause: "FHIR writes take `Content-Type: application/fhir+json` (or application/json); `POST _search` takes application/x-www-form-urlencoded. XML is not supported.",
		Fix:   "Send JSON with `Content-Type: application/fhir+json`."},
	{ID: NotAcceptable, Code: "not_acceptable", Status: http.StatusNotAcceptable, FHIRCode: "not-supported",
		Title: "The requested format is not available",
		Cause: "The Accept header or `_format` asks only for a format smartgate does not produce (it produces FHIR JSON).",
		Fix:   "Ask for `application/fhir+json` (or `_format=json`)."},
	{ID: TransactionFailed, Code: "transaction_failed", Status: http.StatusBadRequest, FHIRCode: "processing",
		Title: "A transaction Bundle was rolled back",
		Cause: "One entry of a `transaction` Bundle failed, so none of its entries were applied (FHIR R4 §3.1.0.11.2). The description names the failing entry and why.",
		Fix:   "Fix the named entry and send the whole Bundle again, or use a `batch` Bundle when entries are independent."},

	{ID: ExportFailed, Code: "export_failed", Status: http.StatusInternalServerError, FHIRCode: "exception",
		Title: "The Bulk Data export failed",
		Cause: "The export job stopped before it finished: a Group it exports was deleted, or the server failed while reading or writing (the log names the job). Its partial output is not served.",
		Fix:   "Start the export again (a new kick-off). If it fails again, give the administrator the job id from the status URL."},

	{ID: LoginFailed, Code: "invalid_grant", Status: http.StatusBadRequest, FHIRCode: "login",
		Title: "The username or password is wrong",
		Cause: "The username is unknown, the password is wrong, or the account is disabled. On purpose smartgate does not say which, so that nobody can find out which accounts exist; the server log and the audit trail (action `login.failure`) name the reason.",
		Fix:   "Check the username and the password (usernames ignore case, passwords do not). An administrator sees the reason in the audit trail, and can set a new password with `smartgate user set-password` or enable the account with `smartgate user enable`."},
	{ID: LoginThrottled, Code: "temporarily_unavailable", Status: http.StatusTooManyRequests, FHIRCode: "throttled",
		Title: "Too many failed sign-ins",
		Cause: "Several sign-ins to this username, or from this address, failed in a row, so the next attempt must wait (the wait doubles with each further failure, up to `login.backoff_max`). Every node counts the failures together.",
		Fix:   "Wait the number of seconds the message (or Retry-After) gives and try again with the right password. Operators tune the limits with the `login.*` keys (docs/configuration.md)."},
	{ID: TOTPInvalid, Code: "invalid_grant", Status: http.StatusBadRequest, FHIRCode: "login",
		Title: "The two-factor code is wrong",
		Cause: "The six-digit code does not match the authenticator app's current code (30-second steps, one step of clock difference tolerated either way), or it was already used once: each code is accepted only once.",
		Fix:   "Enter the code the authenticator app shows now; if codes are always refused, check the device's clock. An administrator can enroll a new authenticator with `smartgate user totp-enroll`."},
	{ID: TOTPEnrollmentRequired, Code: "access_denied", Status: http.StatusForbidden, FHIRCode: "security",
		Title: "Two-factor login is required but not set up",
		Cause: "`login.require_totp_for_admins` is on and this admin account has no authenticator enrolled, so it cannot sign in.",
		Fix:   "An administrator enrolls one with `smartgate user totp-enroll --username NAME` and gives the user the otpauth:// link (or its secret) to add to an authenticator app."},
	{ID: UserExists, Code: "user_exists", Status: http.StatusConflict, FHIRCode: "duplicate",
		Title: "The username is taken",
		Cause: "Another user already has this username. Usernames are compared without regard to case, so `Amy` and `amy` are the same.",
		Fix:   "Choose another username, or change the existing user (`smartgate user show NAME`)."},
	{ID: PasswordRejected, Code: "invalid_request", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The password does not meet the rules",
		Cause: "Passwords must have at least 12 characters (at most 1024 bytes), must not be the username, and cannot be given on the command line.",
		Fix:   "Choose a longer password, for example four or five unrelated words, and pass it on standard input (`--password-stdin`). docs/users.md lists the rules."},

	{ID: AuthorizeBrowserStep, Code: "invalid_request", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "/oauth2/authorize is a browser step, not an API",
		Cause: "The authorization endpoint shows the user a login and consent page; it answers a browser with HTML and a redirect to the app, never JSON. A request with a JSON body or asking only for JSON is a script calling it directly, the mistake that cost the users of the system smartgate replaces days.",
		Fix:   "Send the user's browser to the URL (the app's redirect_uri then receives ?code=...). A script with no user uses SMART Backend Services (grant_type=client_credentials with a signed assertion, docs/flows/backend-service.md); a command-line tool uses `smartgate token` or the loopback flow of docs/flows/script.md."},
	{ID: AuthorizeRequestInvalid, Code: "invalid_request", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The authorization request cannot be used",
		Cause: "client_id or redirect_uri is missing, unknown or not registered, so smartgate cannot safely send the browser back to the app (RFC 6749 §4.1.2.1); or a parameter is repeated or malformed. The page names the parameter.",
		Fix:   "App developers: send client_id as registered and a redirect_uri that exactly matches one of the client's redirect_uris (`smartgate client show ID`; for http://127.0.0.1 any port matches). docs/flows/ has a working request for each kind of app."},
	{ID: AuthorizeRequestExpired, Code: "invalid_request", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The sign-in took too long",
		Cause: "The pages between the app and the return to it (sign-in, patient choice, consent) must be completed within `authorize.request_ttl` (15 minutes by default), and the page's request had expired or was not one this server made.",
		Fix:   "Go back to the app and start signing in again."},
	{ID: UnsupportedResponseType, Code: "unsupported_response_type", Status: http.StatusBadRequest, FHIRCode: "not-supported",
		Title: "Only response_type=code is supported",
		Cause: "smartgate supports the authorization code flow with PKCE only; the implicit and hybrid flows (token, id_token) are unsafe and not offered (OAuth 2.0 Security BCP).",
		Fix:   "Send response_type=code with a PKCE code_challenge (S256), then exchange the code at the token endpoint."},
	{ID: InvalidRequestURI, Code: "invalid_request_uri", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The request_uri is unknown, used or expired",
		Cause: "A pushed authorization request (RFC 9126) is valid for 90 seconds, once, and only for the client that pushed it.",
		Fix:   "Push the request again (POST /oauth2/par) and send the browser to /oauth2/authorize with the new request_uri and the same client_id at once."},
	{ID: AccessDenied, Code: "access_denied", Status: http.StatusForbidden, FHIRCode: "security",
		Title: "The user or policy refused the authorization",
		Cause: "The user declined on the consent page, unticked every scope, or may not act for the patient of the launch; or the signed-in account cannot use this app (for example an administrator account, which has no FHIR record, asking for patient data). The description says which.",
		Fix:   "Apps: tell the user they can try again; nothing was granted. Users: sign in with the account that belongs to the patient or practitioner."},
	{ID: LoginRequired, Code: "login_required", Status: http.StatusBadRequest, FHIRCode: "login",
		Title: "The user must sign in",
		Cause: "The request said prompt=none, but nobody is signed in in this browser (or the sign-in is older than max_age).",
		Fix:   "Send the request again without prompt=none so that the user sees the sign-in page."},
	{ID: ConsentRequired, Code: "consent_required", Status: http.StatusBadRequest, FHIRCode: "security",
		Title: "The user must consent",
		Cause: "The request said prompt=none, but the user has not yet agreed to give this app the requested scopes.",
		Fix:   "Send the request again without prompt=none so that the user sees the consent page."},
	{ID: InteractionRequired, Code: "interaction_required", Status: http.StatusBadRequest, FHIRCode: "security",
		Title: "The user must choose something",
		Cause: "The request said prompt=none, but the user must pick a patient before the app can get a patient context.",
		Fix:   "Send the request again without prompt=none."},
	{ID: FormExpired, Code: "form_expired", Status: http.StatusForbidden, FHIRCode: "security",
		Title: "The form could not be accepted",
		Cause: "Every form carries a one-time security token tied to a cookie (protection against cross-site request forgery). It was missing or did not match: the page was open too long, cookies are blocked for this site, or another site submitted the form.",
		Fix:   "Reload the page and submit it again; allow cookies for this site."},
	{ID: LaunchInvalid, Code: "invalid_request", Status: http.StatusBadRequest, FHIRCode: "invalid",
		Title: "The launch cannot be used",
		Cause: "An EHR launch id is valid once, for 5 minutes, for the one app it was made for; or the launch request names a patient, encounter or client that does not exist or a client not allowed to launch.",
		Fix:   "Launch the app again from the EHR (or `smartgate launch`) and follow the launch URL at once."},
	{ID: PasswordGrantDisabled, Code: "unauthorized_client", Status: http.StatusBadRequest, FHIRCode: "security",
		Title: "The password grant is not allowed for this user",
		Cause: "The resource owner password grant is off by default and, when `authorize.password_grant_roles` turns it on, only for the listed roles; never for administrators or users with two-factor login.",
		Fix:   "Use the authorization code flow with PKCE (docs/flows/). For development only, an operator may list the role in `authorize.password_grant_roles`."},

	{ID: UpstreamUnavailable, Code: "temporarily_unavailable", Status: http.StatusBadGateway, FHIRCode: "transient",
		Title: "The identity provider cannot be reached",
		Cause: "smartgate could not read the provider's discovery document (<issuer>/.well-known/openid-configuration), its keys or its token endpoint: the provider is down, the issuer URL is wrong, a firewall or TLS certificate stands in the way, or it lives on a private address and the provider's `allow_private` is off. The server log names the URL and the failure.",
		Fix:   "Users: sign in another way or try again later. Administrators: check that `curl <issuer>/.well-known/openid-configuration` works from the smartgate host, that `issuer` in `federation.providers` is exactly the provider's issuer, and set `allow_private: true` for a provider on an internal network (docs/federation.md)."},
	{ID: UpstreamClientRejected, Code: "server_error", Status: http.StatusBadGateway, FHIRCode: "security",
		Title: "The identity provider refused smartgate's client credentials",
		Cause: "The provider's token endpoint answered invalid_client or unauthorized_client: the `client_id`, `client_secret` or private key of the provider's entry in `federation.providers` does not match the client registered at the provider, the client is disabled there, or it may not use the authorization code flow.",
		Fix:   "Administrators: compare `client_id` and `client_secret` with the client at the provider (in Keycloak: Clients > the client > Credentials), or register the public key of `private_key_file`; make sure the client has the standard (authorization code) flow on and the redirect URI <issuer>/login/callback. docs/federation.md walks through it."},
	{ID: UpstreamError, Code: "server_error", Status: http.StatusBadGateway, FHIRCode: "exception",
		Title: "The identity provider returned an error",
		Cause: "The provider sent the browser back with an error other than a refusal by the user (for example invalid_scope, unauthorized_client or server_error), or refused to exchange the code. The page quotes the provider's error and its description.",
		Fix:   "Users: try again; if it persists, give the administrator the request id. Administrators: the provider's own log explains its error; common causes are scopes in `scopes` the client may not ask for, or a redirect URI other than <issuer>/login/callback registered at the provider."},
	{ID: UpstreamDenied, Code: "access_denied", Status: http.StatusForbidden, FHIRCode: "security",
		Title: "The sign-in at the identity provider was cancelled",
		Cause: "The user cancelled the sign-in or refused consent at the provider, which answered access_denied. Nothing was signed in.",
		Fix:   "Go back to the sign-in page and sign in again, at the provider or with a local account."},
	{ID: UpstreamIDTokenInvalid, Code: "server_error", Status: http.StatusBadGateway, FHIRCode: "security",
		Title: "The identity provider's id_token is not valid",
		Cause: "smartgate checks every id_token fully (OpenID Connect Core §3.1.3.7): the signature against the provider's published keys, iss, aud (smartgate's client_id), azp, exp and iat, and the nonce of this sign-in; and the UserInfo response must name the same sub. One of the checks failed; the server log says which. A clock far off on either side, a provider that signs with a key it does not publish, or a replayed response cause it.",
		Fix:   "Users: sign in again. Administrators: check both machines' clocks (NTP), that the provider's `issuer` is exactly the one configured, and that it signs id_tokens with an asymmetric algorithm (RS256 or ES256) and publishes the key at its jwks_uri."},
	{ID: UpstreamStateInvalid, Code: "invalid_request", Status: http.StatusBadRequest, FHIRCode: "security",
		Title: "The answer of the identity provider does not belong to this sign-in",
		Cause: "The provider sent the browser back to /login/callback, but the `state` is missing, altered, expired (a sign-in must finish within `authorize.request_ttl`), or was started in another browser: smartgate binds each sign-in to a short-lived cookie of the browser that began it, so that nobody can complete a sign-in for someone else (RFC 6749 §10.12).",
		Fix:   "Start again from the app (or the sign-in page) in the same browser, with cookies allowed for this site, and finish the sign-in at the provider without opening it in another browser."},
	{ID: UpstreamNotLinked, Code: "access_denied", Status: http.StatusForbidden, FHIRCode: "security",
		Title: "This account is not linked to a smartgate user",
		Cause: "The provider signed the user in, but its identity (provider id and `sub`) is linked to no smartgate user; it could not be matched to one (`match_claim`: a verified email equal to a username) and may not be provisioned (`provisioning`: off, an unverified email, or an email domain not listed).",
		Fix:   "Users: ask the administrator to link your account; the page shows the exact command. Administrators: run `smartgate user link --username USER --provider ID --subject SUB` with the values the page shows, or turn on matching or provisioning for the provider (docs/federation.md)."},
	{ID: UpstreamAccountDisabled, Code: "access_denied", Status: http.StatusForbidden, FHIRCode: "security",
		Title: "The linked smartgate user is disabled",
		Cause: "The provider signed the user in, and the identity is linked to a smartgate user that an administrator disabled.",
		Fix:   "Administrators: `smartgate user enable USERNAME` if the user should sign in again."},
	{ID: UpstreamClaimsInvalid, Code: "access_denied", Status: http.StatusForbidden, FHIRCode: "security",
		Title: "The identity provider's claims cannot make a smartgate user",
		Cause: "Provisioning (or a trusted role) needs claims that smartgate can use, and one is not: the email is not a valid username (at most 64 characters of letters, digits and . _ @ + -), or the fhirUser claim does not name a resource of the user's role (Patient/id for a patient, Practitioner/id for a practitioner, RelatedPerson/id for a related person). The page names the claim and its value.",
		Fix:   "Administrators: correct the user's attribute or the protocol mapper at the provider (docs/federation.md), or create and link the user by hand (`smartgate user create`, then `smartgate user link`)."},

	{ID: AdminTokenRequired, Code: "token_missing", Status: http.StatusUnauthorized, FHIRCode: "login",
		Title: "The admin API needs an access token",
		Cause: "Every request under /admin/api needs `Authorization: Bearer <access token>` with the `smartgate:admin` scope, and none was sent.",
		Fix:   "Get a token as an administrator (`smartgate token --scope smartgate:admin` signs in through the browser) or as an admin client (client_credentials with scope=smartgate:admin, for a client created with `--admin`), and send it in the Authorization header; docs/admin.md shows both."},
	{ID: AdminRequired, Code: "insufficient_scope", Status: http.StatusForbidden, FHIRCode: "forbidden",
		Title: "Only administrators may do this",
		Cause: "The admin console and the admin API act only for administrators: a signed-in user with the admin role (with a two-factor sign-in when `login.require_totp_for_admins` is on), or an access token with the `smartgate:admin` scope issued to such a user or to a client an administrator marked as an admin client. The description says which condition failed.",
		Fix:   "Sign in as an administrator, or get a token with scope `smartgate:admin` as one. An administrator makes a client an admin client with `smartgate client update CLIENT_ID --admin`."},
	{ID: SettingPinned, Code: "setting_pinned", Status: http.StatusConflict, FHIRCode: "business-rule",
		Title: "The setting is pinned by the environment or a flag",
		Cause: "Runtime settings rank below the environment (SMARTGATE_*) and command-line flags, so a key set there cannot be changed from the console or the admin API (docs/configuration.md, \"Runtime settings\").",
		Fix:   "Change or remove the environment variable or flag the description names and restart the node; then the key can be changed at runtime."},

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
