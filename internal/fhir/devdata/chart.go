package devdata

// The shape of one demo patient's chart. roster.go fills these in; the
// builders turn them into resources. Days are counted back from the anchor
// date unless a field says otherwise, and visits are numbered from 1.

type patient struct {
	slug      string // ids derive from it: pat-<slug>, enc-<slug>-1, ...
	given     []string
	family    string
	maiden    string // former family name (a "maiden" HumanName), if any
	gender    string
	birthDate string
	deceased  int // days before the anchor the patient died; 0: alive
	mrn       string
	phone     string
	email     string
	addr      address
	marital   code // zero: not recorded
	languages []language
	race      demographic
	ethnicity demographic
	birthSex  string // US Core birth sex: F, M
	site      *site
	doctor    string // Practitioner id

	visits        []visit
	vitals        vitals
	conditions    []condition
	allergies     []allergy
	meds          []med
	immunizations []immunization
	procedures    []procedure
	labs          []labOrder
	smoking       code
	goal          goal
	note          note
	device        *device
	parent        *relatedPerson
	coverage      coverage
	phq2          []int // PHQ-2 answers (0-3 each); empty: no questionnaire
}

func (p *patient) id() string { return "pat-" + p.slug }

// fullName is the given names and family name, e.g. "José Luis Álvarez".
func (p *patient) fullName() string {
	s := ""
	for _, g := range p.given {
		s += g + " "
	}
	return s + p.family
}

type language struct {
	code, display string
	preferred     bool
}

// demographic is a US Core race or ethnicity: OMB categories, detailed
// CDC Race & Ethnicity codes and the text the patient gave.
type demographic struct {
	omb, detailed []string // CDC codes; cdcRace has their displays
	text          string
}

type visit struct {
	daysAgo, hour, minute int
	minutes               int    // length of the encounter
	class                 string // v3 ActCode: AMB, EMER or IMP
	kind                  code   // SNOMED encounter type
	reason                code   // zero: none
}

// vitals are the patient's typical values; each visit varies them a little.
// growth is height (cm) and weight (kg) gained per year, for a child.
type vitals struct {
	systolic, diastolic, pulse, resp, temp, spo2, weight, height float64
	growthHeight, growthWeight                                   float64

	// Gaps and extras that show the rarer must-support elements:
	noHeight    int     // visit (not the first) at which height was not measured
	noDiastolic int     // visit at which the diastolic pressure could not be read
	oxygen      int     // visit at which the patient was on supplemental oxygen
	flow, fiO2  float64 // its flow rate (L/min) and concentration (%)
}

type condition struct {
	slug     string
	code     code
	category string // problem-list-item, encounter-diagnosis or health-concern
	visit    int    // encounter-diagnosis: the visit it was made at
	onset    int    // days before the anchor, or before the visit for a diagnosis
	span     int    // > 0: onset is a period of this many days ending at onset
	resolved int    // > 0: resolved this many days after onset or the visit
}

type allergy struct {
	slug        string
	code        code
	kind        string // allergy, intolerance; empty for "no known allergy"
	category    string // food, medication, environment, biologic
	criticality string
	onset       int // days before the anchor; 0: unknown
	reaction    code
	severity    string
}

type med struct {
	slug       string
	drug       code
	medication string // the Medication the request references instead of coding drug
	visit      int
	status     string
	reason     string // condition slug
	sig        string
	dose       float64
	unit, ucum string  // of one dose and of the dispensed quantity
	frequency  int     // doses per period
	period     float64 // in periodUnit
	periodUnit string  // h, d
	asNeeded   bool
	inhaled    bool    // route: respiratory tract; otherwise oral
	supply     float64 // quantity dispensed per fill (in units of unit, or inhalers)
	repeats    int
	days       int  // days one fill lasts
	dispensed  bool // a MedicationDispense records the first fill
}

type immunization struct {
	slug    string
	vaccine code // CVX
	visit   int  // 0: given elsewhere daysAgo days before the anchor
	daysAgo int
	lot     string
	notDone code // statusReason when the vaccine was not given
}

type procedure struct {
	slug    string
	code    code
	visit   int // 0: not during a visit; daysAgo says when
	daysAgo int
	offset  int // minutes after the visit starts
	minutes int // > 0: performedPeriod of this length, else performedDateTime
	reason  string
	device  bool // the patient's device is the focal device
}

type labOrder struct {
	visit  int
	panel  string
	values map[string]float64 // by test slug; missing tests vary around normal
	failed string             // a test of the panel the lab could not report
}

type goal struct {
	slug, text, status string
	measure            code    // zero: no measure, only a due date
	low, high          float64 // target range; a missing end is 0
	unit, ucum         string
	due                int    // days after the anchor
	addresses          string // condition slug
}

type note struct {
	kind  code // LOINC clinical note type
	visit int
}

type device struct {
	slug, name, manufacturer, model, lot, serial string
	kind                                         code
	di, hrf                                      string // UDI device identifier and human-readable form
	made, expires                                string
}

type relatedPerson struct {
	id           string
	given        []string
	family       string
	gender       string
	birthDate    string
	relationship code
}

type coverage struct {
	kind          code // payer type (SOPT)
	member        string
	subscriberID  string // empty: member
	group, plan   [2]string
	since         int // days before the anchor
	childOfParent bool
}
