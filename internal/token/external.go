package token

import "errors"

// Reasons for refusing an access token of an external issuer
// (federation.issuers; internal/extauth verifies them). Each reads after
// "the access token is ", as the FHIR API's error_description puts it.
const (
	UnknownIssuer     Reason = "from an issuer this API does not trust"
	WrongIssuer       Reason = "from the wrong issuer"
	WrongType         Reason = "of the wrong type"
	IDToken           Reason = "an id_token"
	AlgNotAllowed     Reason = "signed with an algorithm that is not allowed"
	UnknownKey        Reason = "signed with an unknown key"
	MissingPatient    Reason = "missing its patient"
	Inactive          Reason = "not active"
	SenderConstrained Reason = "sender-constrained"
	// NoUsableScope is a verified token whose scopes hold no SMART resource
	// scope: the FHIR API answers 403 insufficient_scope, not 401, since
	// the token itself is sound.
	NoUsableScope Reason = "without any FHIR scope"
)

// ErrNotExternal says a token is not one an external verifier handles (it
// names smartgate itself as issuer, or is opaque and no issuer introspects):
// the refusal of smartgate's own verifier stands.
var ErrNotExternal = errors.New("token: not a token of a trusted external issuer")

// Refuse returns a refusal with a reason and a description for people.
func Refuse(r Reason, format string, args ...any) *Error { return refuse(r, format, args...) }
