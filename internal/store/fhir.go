package store

import (
	"context"
	"errors"
	"time"
)

// FHIR resources are stored as versioned JSON (the current version in one
// table, every version in a history table) with search-index rows per
// parameter type and a resource-to-patient membership table. The domain
// layer (internal/fhir) computes the index rows and the memberships; the
// store keeps them in step with the resource inside one transaction and
// compiles search conditions (Cond) to SQL.

// Errors of the FHIR store.
var (
	// ErrGone: the resource existed and its current version is a deletion.
	ErrGone = errors.New("store: resource deleted")
	// ErrVersionConflict: an update's expected version is not the current one.
	ErrVersionConflict = errors.New("store: version conflict")
	// ErrAccessDenied: a write's access condition did not hold for the
	// resource before or after the write; nothing was written.
	ErrAccessDenied = errors.New("store: access condition not met")
)

// Resource is one version of a FHIR resource.
type Resource struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	Method      string // the interaction that made this version: create, update, delete
	Body        []byte // the JSON, with meta.versionId and meta.lastUpdated set; nil when Deleted
}

// Index is everything a resource version contributes to search.
type Index struct {
	Tokens     []TokenIndex
	Strings    []StringIndex
	Refs       []RefIndex
	Dates      []DateIndex
	Quantities []QuantityIndex
	Numbers    []NumberIndex
	URIs       []URIIndex
	// Patients are the ids of the patients whose compartment holds the
	// resource (the Patient itself for a Patient).
	Patients []string
	// Links lists further memberships this resource gives to others: a
	// DocumentReference puts the Binary it points at in its patients'
	// compartments. They are replaced whenever the source resource changes.
	Links []Membership
}

// Membership puts the resource Type/ID into Patient's compartment.
type Membership struct {
	Type, ID, Patient string
}

// TokenIndex is one code (Coding, CodeableConcept, Identifier, code,
// boolean, ContactPoint...). Text is the normalized display or text, for
// the :text modifier.
type TokenIndex struct {
	Param  string
	System string
	Code   string
	Text   string
}

// StringIndex is one string value: Norm is lower-cased with accents
// removed (default and :contains search), Exact is as written (:exact).
type StringIndex struct {
	Param string
	Norm  string
	Exact string
}

// RefIndex is one reference. A literal relative or local absolute reference
// fills Type and ID; any other absolute or canonical reference fills URL;
// Reference.identifier fills IdentSystem and IdentValue (the :identifier
// modifier).
type RefIndex struct {
	Param       string
	Type        string
	ID          string
	URL         string
	IdentSystem string
	IdentValue  string
}

// DateIndex is one date, dateTime, instant or Period as the half-open range
// [Low, High) of unix microseconds it covers at its precision; an open end
// is math.MinInt64 or math.MaxInt64.
type DateIndex struct {
	Param     string
	Low, High int64
}

// QuantityIndex is one Quantity (or Money, Age, Duration...).
type QuantityIndex struct {
	Param  string
	Value  float64
	System string
	Code   string
	Unit   string
}

// NumberIndex is one decimal or integer.
type NumberIndex struct {
	Param string
	Value float64
}

// URIIndex is one uri, url or canonical.
type URIIndex struct {
	Param string
	Value string
}

// Write is one resource write inside a FHIRTx.
type Write struct {
	Type string
	ID   string
	// Body is the new JSON; the store sets meta.versionId and
	// meta.lastUpdated in it. Ignored for a delete.
	Body   []byte
	Index  Index
	Delete bool
	// Method, when set, is recorded as the interaction that made the
	// version ("update" for an update that creates); else create or update.
	Method string
	// MetaAt, for PutNew only, says that Body came from MetaTemplate with
	// version 1 and its meta.lastUpdated is at this offset: PutNew stamps
	// it in place (Body is changed) instead of running SetMeta. Zero: not
	// prepared so.
	MetaAt int
	// IfMatch, when non-zero, is the version the current one must be.
	IfMatch int64
	// MustExist refuses a write to an id that was never written
	// (ErrNotFound) — an update that may not create.
	MustExist bool
	// Access, when non-nil, must hold for the resource as it was before the
	// write (if it ever existed, deleted or not) and as it is after it
	// (unless deleted): otherwise ErrAccessDenied and nothing is written.
	Access Cond
}

// Page selects a window of a search.
type Page struct {
	Count int // at most this many; 0 returns none (a count-only search)
	// After is the row key of the last resource of the previous page
	// (keyset paging: stable while resources are added or removed between
	// pages); 0 for the first page. With Sort, AfterValues are that
	// resource's SortValues.
	After       int64
	AfterValues []any
	Total       bool // also count every match
}

// Sort is one _sort key: a search parameter of the searched type (or
// "_id", "_lastUpdated"), descending when Desc.
type Sort struct {
	Param string
	Kind  string // "token", "string", "date", "number", "quantity", "uri", "reference", "" for _id/_lastUpdated
	Desc  bool
}

// Query is one search over the current versions of one resource type.
type Query struct {
	Type  string
	Where Cond // nil matches every resource of Type
	Sort  []Sort
	Page  Page
}

// Found is one search hit: the resource, its row key and, for a sorted
// search, its sort values (int64, float64, string or nil; for keyset paging).
type Found struct {
	Resource
	Key        int64
	SortValues []any
}

// SearchResult is one page of a search.
type SearchResult struct {
	Resources []Found
	Total     int  // -1 unless Page.Total
	More      bool // a further page exists
}

// HistoryQuery selects versions for _history.
type HistoryQuery struct {
	Type  string // "" for every type
	ID    string // "" for every resource of Type
	Since time.Time
	At    time.Time // zero: none; else only the version current at At (FHIR _at)
	Count int
	// Before, for paging, is the (LastUpdated, row key) bound of the
	// previous page's last entry: newer-first, strictly older than it.
	BeforeTime time.Time
	BeforeKey  int64
	// Where, when set (with Type), keeps only versions of resources whose
	// current version satisfies it (access control on history).
	Where Cond
}

// HistoryEntry is one version in a history listing.
type HistoryEntry struct {
	Resource
	Key int64
}

// FHIR is the FHIR resource store.
type FHIR interface {
	// ReadResource returns the current version. A deleted resource gives
	// ErrGone (with the deletion's Resource), a never-written one ErrNotFound.
	// When access is non-nil and the resource does not satisfy it, the
	// result is ErrAccessDenied (the caller decides what to reveal).
	ReadResource(ctx context.Context, typ, id string, access Cond) (Resource, error)
	// ReadVersion returns one version (ErrNotFound when it does not exist).
	ReadVersion(ctx context.Context, typ, id string, version int64) (Resource, error)
	// Search runs q.
	Search(ctx context.Context, q Query) (SearchResult, error)
	// Includes returns the current, not deleted resources that inc reaches
	// from the resources with row keys from (_include / _revinclude), at
	// most limit of them. Access is the caller's business: it filters the
	// result with a KeyIn search per type.
	Includes(ctx context.Context, from []int64, inc Include, limit int) ([]Found, error)
	// History lists at most q.Count versions newest first, and whether
	// more follow.
	History(ctx context.Context, q HistoryQuery) (entries []HistoryEntry, more bool, err error)
	// WriteFHIR runs fn inside one write transaction: every write fn makes
	// through tx commits together or not at all (a transaction Bundle).
	WriteFHIR(ctx context.Context, fn func(tx FHIRTx) error) error
}

// Include is one _include (Rev false: follow Param of the found resources
// to resources of TargetType, "" for any) or _revinclude (Rev true: resources
// of SourceType whose Param points at the found ones).
type Include struct {
	Rev        bool
	SourceType string
	Param      string
	TargetType string
}

// FHIRTx is the view of a write transaction.
type FHIRTx interface {
	// Put creates, updates or deletes one resource and returns the version
	// it stored (for a delete of a missing or deleted resource: the zero
	// Resource and no error, since delete is idempotent).
	Put(ctx context.Context, w Write) (Resource, error)
	// PutNew creates resources whose ids were never written (bulk loads:
	// seed, import), each as version 1, faster than a Put each: no read of
	// a current version, index rows of many resources per statement. Only
	// Body, Index, Method and MetaAt of each Write are used (no access
	// check, no If-Match). An id that exists (or existed) fails the whole
	// call with ErrConflict.
	PutNew(ctx context.Context, ws []Write) error
	// Written returns which of ids of type typ were ever written (current
	// or deleted): the ones a PutNew may not create.
	Written(ctx context.Context, typ string, ids []string) (map[string]bool, error)
	// Current reads the current version inside the transaction.
	Current(ctx context.Context, typ, id string) (Resource, error)
	// ReadResource, Search and Includes are FHIR's, inside the
	// transaction (a transaction Bundle's reads see its writes).
	ReadResource(ctx context.Context, typ, id string, access Cond) (Resource, error)
	Includes(ctx context.Context, from []int64, inc Include, limit int) ([]Found, error)
	// Search runs a query inside the transaction (conditional create,
	// update and delete).
	Search(ctx context.Context, q Query) (SearchResult, error)
	// Lock serialises transactions that use the same key until this one
	// ends (conditional create: two creates with the same If-None-Exist
	// must not both create). SQLite's single writer serialises anyway.
	Lock(ctx context.Context, key string) error
}

// Cond is a search condition on one resource (the "current" one of the
// query, or the target of a Chain). The store compiles it to SQL.
type Cond interface{ isCond() }

// And holds when every condition holds; an empty And always holds.
type And []Cond

// Or holds when any condition holds; an empty Or never holds.
type Or []Cond

// Not holds when its condition does not.
type Not struct{ Cond Cond }

// IDIn holds when the resource id is one of IDs.
type IDIn struct{ IDs []string }

// KeyIn holds when the resource's row key is one of Keys.
type KeyIn struct{ Keys []int64 }

// InCompartment holds when the resource is in the compartment of any of
// the patients.
type InCompartment struct{ Patients []string }

// RefersToCompartment holds when the resource's reference parameter Param
// points at a resource in the compartment of any of the patients (a
// Provenance whose target is one of the patient's resources).
type RefersToCompartment struct {
	Param    string
	Patients []string
}

// LinkedPatients holds when the resource is in the compartment of a
// patient that one of Via links to Type/ID: a patient whose compartment
// holds a resource of Via[i].Type whose reference parameter Via[i].Param
// points at Type/ID (e.g. Encounter.participant -> Practitioner/x).
type LinkedPatients struct {
	Type, ID string
	Via      []Link
}

// Link is one (resource type, reference parameter) of LinkedPatients.
type Link struct{ Type, Param string }

// Missing holds when the resource has (Missing false) or has no (Missing
// true) index row for Param in the table of Kind.
type Missing struct {
	Kind    string // token, string, reference, date, quantity, number, uri
	Param   string
	Missing bool
}

// TokenMatch matches a token row of Param. When AnySystem, the system is
// not compared; otherwise System must equal (the empty System means "no
// system", the |code form). AnyCode with a System is the system| form.
// Text, when set, matches instead: the normalized text starts with it
// (the :text modifier), and Code and System are ignored.
type TokenMatch struct {
	Param     string
	System    string
	AnySystem bool
	Code      string
	AnyCode   bool
	Text      string
}

// StringMode is how a StringMatch compares.
type StringMode int

const (
	StringStartsWith StringMode = iota // the default: normalized prefix
	StringExact                        // :exact, case and accents kept
	StringContains                     // :contains, normalized substring
)

// StringMatch matches a string row of Param. Value is already normalized
// for StartsWith and Contains.
type StringMatch struct {
	Param string
	Value string
	Mode  StringMode
}

// RefMatch matches a reference row of Param: by Type (empty: any) and ID,
// or by URL, or by identifier (IdentSystem may be empty with AnySystem).
type RefMatch struct {
	Param       string
	Type        string
	ID          string
	URL         string
	Identifier  bool
	IdentSystem string
	AnySystem   bool
	IdentValue  string
	// Compartment says that the match puts the resource in the
	// compartment of Patient ID (the reference is to that Patient, and
	// Param is one of the type's compartment parameters or narrows one
	// to Patients), so that a store may look the resource up by that
	// compartment first and keep this term as a filter.
	Compartment bool
}

// Chain holds when Param references a resource of TargetType that
// satisfies Where (one level of chaining).
type Chain struct {
	Param      string
	TargetType string
	Where      Cond
}

// Prefix is a FHIR search comparator.
type Prefix string

const (
	EQ Prefix = "eq"
	NE Prefix = "ne"
	LT Prefix = "lt"
	GT Prefix = "gt"
	LE Prefix = "le"
	GE Prefix = "ge"
	SA Prefix = "sa"
	EB Prefix = "eb"
	AP Prefix = "ap"
)

// DateMatch compares the date rows of Param with the search range
// [Low, High) by Prefix, as FHIR R4 §3.1.1.5.6 (date) defines. AP has
// already been widened into Low/High by the caller. Param "_lastUpdated"
// compares the resource's lastUpdated.
type DateMatch struct {
	Param     string
	Prefix    Prefix
	Low, High int64
}

// NumberMatch compares number rows (Quantity false) or quantity rows
// (Quantity true, with optional System/Code: an empty System with
// AnySystem compares codes against code or unit). Low and High bound the
// search value's implicit precision range for EQ, NE and AP; Value is the
// value itself for the other prefixes.
type NumberMatch struct {
	Param     string
	Quantity  bool
	Prefix    Prefix
	Value     float64
	Low, High float64
	System    string
	AnySystem bool
	Code      string
}

// URIMatch matches uri rows: equal, or (Below) starting with Value, or
// (Above) a prefix of Value.
type URIMatch struct {
	Param string
	Value string
	Below bool
	Above bool
}

func (And) isCond()                 {}
func (Or) isCond()                  {}
func (Not) isCond()                 {}
func (IDIn) isCond()                {}
func (InCompartment) isCond()       {}
func (KeyIn) isCond()               {}
func (LinkedPatients) isCond()      {}
func (Missing) isCond()             {}
func (TokenMatch) isCond()          {}
func (StringMatch) isCond()         {}
func (RefMatch) isCond()            {}
func (Chain) isCond()               {}
func (DateMatch) isCond()           {}
func (NumberMatch) isCond()         {}
func (URIMatch) isCond()            {}
func (RefersToCompartment) isCond() {}
