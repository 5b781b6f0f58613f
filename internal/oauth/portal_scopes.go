package oauth

// The scope catalogue of the developer portal: every scope smartgate
// supports (the scopes_supported of discovery), grouped by what it gives
// an app, in plain language for the developer who registers the app, with
// its SMART v1 form beside the v2 one (SMART App Launch 2.2 "Scopes for
// requesting FHIR resources"; v1 forms are still accepted).

// catalogueScope is one row of the catalogue: a checkbox for Scope.
type catalogueScope struct {
	Scope string // the form to register (v2 for resource scopes)
	V1    string // the SMART v1 form of the same access, if any
	Text  string
}

// catalogueGroup is one group of rows.
type catalogueGroup struct {
	ID, Title, Intro string
	Scopes           []catalogueScope
}

// portalRow is a name with a value and its meaning (the portal's tables).
type portalRow struct {
	Name, Value, Meaning string
}

// permLetters are the SMART v2 permission letters, in their required order.
var permLetters = []portalRow{
	{Name: "c", Meaning: "create"}, {Name: "r", Meaning: "read (by id)"}, {Name: "u", Meaning: "update"},
	{Name: "d", Meaning: "delete"}, {Name: "s", Meaning: "search"},
}

var scopeCatalogue = []catalogueGroup{
	{ID: "scopes-identity", Title: "Who signed in (OpenID Connect)", Intro: "For apps with a user. The token response then carries an id_token (RS256, verify it against /oauth2/jwks).", Scopes: []catalogueScope{
		{Scope: "openid", Text: "An id_token saying who signed in (its sub), and access to /oauth2/userinfo."},
		{Scope: "fhirUser", Text: "The user's own FHIR resource (Patient/..., Practitioner/..., RelatedPerson/...) as the fhirUser claim of the id_token."},
		{Scope: "profile", Text: "The user's username, as preferred_username."},
	}},
	{ID: "scopes-context", Title: "Launch context", Intro: "Which patient (and encounter) the app works on; the token response names them.", Scopes: []catalogueScope{
		{Scope: "launch/patient", Text: "Standalone launch with a patient: a patient user gets their own record, a practitioner picks one on smartgate's patient picker. The token response carries patient."},
		{Scope: "launch", Text: "EHR launch: the app is opened from the EHR with ?iss=...&launch=... at its launch URL (register one below) and gets the EHR's patient, encounter and fhirContext. Needs an administrator's approval."},
		{Scope: "launch/encounter", Text: "The encounter in context; it comes only with an EHR launch (smartgate has no encounter picker)."},
	}},
	{ID: "scopes-refresh", Title: "How long access lasts", Intro: "Without one of these the app gets no refresh token: access ends with the access token (1 hour).", Scopes: []catalogueScope{
		{Scope: "offline_access", Text: "A refresh token that outlives the sign-in: 90 days unused, a year at most, until the user revokes the app at /account/apps."},
		{Scope: "online_access", Text: "A refresh token that works while the user stays signed in to smartgate."},
	}},
	{ID: "scopes-patient", Title: "Patient-level data (patient/)", Intro: "The records of the one patient in context (the token's patient); anything else answers 404 as if it did not exist. A public app with only these scopes (and the ones above, except launch) is enabled at once.", Scopes: []catalogueScope{
		{Scope: "patient/*.rs", V1: "patient/*.read", Text: "Read and search every kind of record of the patient in context."},
		{Scope: "patient/*.cud", V1: "patient/*.write", Text: "Create, update and delete records of the patient in context."},
		{Scope: "patient/*.cruds", V1: "patient/*.*", Text: "All of the above."},
	}},
	{ID: "scopes-user", Title: "User-level data (user/)", Intro: "What the signed-in user may see: a practitioner every patient (or, with fhir.practitioner_access care-relationship, the patients they care for), a patient their own record, a related person the patients they act for. Needs an administrator's approval.", Scopes: []catalogueScope{
		{Scope: "user/*.rs", V1: "user/*.read", Text: "Read and search every kind of record the user may see."},
		{Scope: "user/*.cud", V1: "user/*.write", Text: "Create, update and delete records the user may see."},
		{Scope: "user/*.cruds", V1: "user/*.*", Text: "All of the above."},
	}},
	{ID: "scopes-system", Title: "System-level data (system/), backend services only", Intro: "No user at all: every patient's records, for a service that authenticates with its own key (grant_type=client_credentials, confidential-asymmetric). Needs an administrator's approval.", Scopes: []catalogueScope{
		{Scope: "system/*.rs", V1: "system/*.read", Text: "Read and search every record of every patient (also Bulk Data $export)."},
		{Scope: "system/*.cud", V1: "system/*.write", Text: "Create, update and delete any record."},
		{Scope: "system/*.cruds", V1: "system/*.*", Text: "All of the above."},
		{Scope: "system/Patient.rs", V1: "system/Patient.read", Text: "Read and search Patient records only."},
		{Scope: "system/Observation.rs", V1: "system/Observation.read", Text: "Read and search Observation records only (labs, vital signs)."},
		{Scope: "system/Condition.rs", V1: "system/Condition.read", Text: "Read and search Condition records only (problems, diagnoses)."},
		{Scope: "system/Encounter.rs", V1: "system/Encounter.read", Text: "Read and search Encounter records only (visits, stays)."},
		{Scope: "system/Group.rs", V1: "system/Group.read", Text: "Read and search Group records (the cohorts of Group/[id]/$export)."},
	}},
}
