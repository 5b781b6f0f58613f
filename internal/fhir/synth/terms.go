package synth

import (
	"strings"
	"time"
)

// code is one concept of a code system.
type code struct{ system, code, display string }

// Code systems and naming systems the data uses.
const (
	usCore      = "http://hl7.org/fhir/us/core/StructureDefinition/"
	sysLOINC    = "http://loinc.org"
	sysSNOMED   = "http://snomed.info/sct"
	sysRxNorm   = "http://www.nlm.nih.gov/research/umls/rxnorm"
	sysCVX      = "http://hl7.org/fhir/sid/cvx"
	sysICD10CM  = "http://hl7.org/fhir/sid/icd-10-cm"
	sysCPT      = "http://www.ama-assn.org/go/cpt"
	sysUCUM     = "http://unitsofmeasure.org"
	sysNPI      = "http://hl7.org/fhir/sid/us-npi"
	sysNUCC     = "http://nucc.org/provider-taxonomy"
	sysCDCRace  = "urn:oid:2.16.840.1.113883.6.238"
	sysLanguage = "urn:ietf:bcp:47"
	sysSOPT     = "https://nahdo.org/sopt"
	sysNUBC     = "http://www.nubc.org/patient-discharge"
	sysTHO      = "http://terminology.hl7.org/CodeSystem/"
	sysUSCoreCS = "http://hl7.org/fhir/us/core/CodeSystem/"
	sysFormat   = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"

	// sysBase is the root of the identifier systems of the synthetic
	// health network (a domain reserved for examples, RFC 2606).
	sysBase = "http://synthetic.example.org/fhir/sid/"
)

func loinc(c, display string) code  { return code{sysLOINC, c, display} }
func snomed(c, display string) code { return code{sysSNOMED, c, display} }
func rxnorm(c, display string) code { return code{sysRxNorm, c, display} }
func cvx(c, display string) code    { return code{sysCVX, c, display} }
func icd(c, display string) code    { return code{sysICD10CM, c, display} }
func cpt(c, display string) code    { return code{sysCPT, c, display} }

// tho is a code of an HL7 terminology (terminology.hl7.org) code system.
func tho(cs, c, display string) code { return code{sysTHO + cs, c, display} }

// uscore is a code of a US Core code system.
func uscore(cs, c, display string) code { return code{sysUSCoreCS + cs, c, display} }

func (c code) coding() obj {
	return obj{{"system", c.system}, {"code", c.code}, {"display", c.display}}
}

// text is the display without a SNOMED CT semantic tag: "Asthma", not
// "Asthma (disorder)".
func (c code) text() string {
	if c.system == sysSNOMED && strings.HasSuffix(c.display, ")") {
		if i := strings.LastIndex(c.display, " ("); i > 0 {
			return c.display[:i]
		}
	}
	return c.display
}

// concept is a CodeableConcept of one or more codings; its text is the
// first display as a person would say it.
func concept(cs ...code) obj {
	codings := make([]obj, len(cs))
	for i, c := range cs {
		codings[i] = c.coding()
	}
	return obj{{"coding", codings}, {"text", cs[0].text()}}
}

// concepts is a list of one CodeableConcept, for elements with max "*".
func concepts(cs ...code) []obj { return []obj{concept(cs...)} }

// ref is a relative literal reference, "Type/id".
func ref(typ, id string) obj { return obj{{"reference", typ + "/" + id}} }

// refd is a reference with a display.
func refd(typ, id, display string) obj {
	return obj{{"reference", typ + "/" + id}, {"display", display}}
}

// quantity is a UCUM Quantity; unit is the human-readable unit.
func quantity(v float64, places int, unit, ucum string) obj {
	return obj{{"value", dec{v, places}}, {"unit", unit}, {"system", sysUCUM}, {"code", ucum}}
}

// dateTime is a FHIR dateTime (and instant) with seconds and a zone offset.
func dateTime(t time.Time) string { return t.Format(time.RFC3339) }

// date is a FHIR date.
func date(t time.Time) string { return t.Format(time.DateOnly) }

func period(start, end time.Time) obj {
	return obj{{"start", dateTime(start)}, {"end", dateTime(end)}}
}

func dataAbsent(c, display string) obj { return concept(tho("data-absent-reason", c, display)) }

// Category codes.
var (
	catVitals     = tho("observation-category", "vital-signs", "Vital Signs")
	catLab        = tho("observation-category", "laboratory", "Laboratory")
	catSocial     = tho("observation-category", "social-history", "Social History")
	catSurvey     = tho("observation-category", "survey", "Survey")
	catImaging    = tho("observation-category", "imaging", "Imaging")
	catSDOH       = uscore("us-core-category", "sdoh", "SDOH")
	catCognitive  = uscore("us-core-category", "cognitive-status", "Cognitive Status")
	catProblem    = tho("condition-category", "problem-list-item", "Problem List Item")
	catDiagnosis  = tho("condition-category", "encounter-diagnosis", "Encounter Diagnosis")
	catConcern    = uscore("condition-category", "health-concern", "Health Concern")
	catClinical   = uscore("us-core-documentreference-category", "clinical-note", "Clinical Note")
	catAssessPlan = uscore("careplan-category", "assess-plan", "Assessment and Plan of Treatment")
	catLabReport  = tho("v2-0074", "LAB", "Laboratory")
	catRadiology  = loinc("LP29684-5", "Radiology")
	catCommunity  = tho("medicationrequest-category", "community", "Community")
	catLabOrder   = snomed("108252007", "Laboratory procedure (procedure)")
	catImgOrder   = snomed("363679005", "Imaging (procedure)")
)

// cdcRace holds the displays of the CDC Race & Ethnicity codes in use.
var cdcRace = map[string]string{
	"2106-3": "White", "2054-5": "Black or African American", "2028-9": "Asian",
	"1002-5": "American Indian or Alaska Native", "2076-8": "Native Hawaiian or Other Pacific Islander",
	"2135-2": "Hispanic or Latino", "2186-5": "Not Hispanic or Latino",
	"2034-7": "Chinese", "2039-6": "Japanese", "2029-7": "Asian Indian", "2047-9": "Vietnamese", "2036-2": "Filipino",
	"2058-6": "African American", "2060-2": "African", "2113-8": "Irish", "2112-0": "Italian", "2108-9": "European",
	"2148-5": "Mexican", "2180-1": "Puerto Rican", "2182-4": "Cuban",
}

// race is an OMB race category with the detailed codes people pick within it.
type race struct {
	omb      string
	detailed []string
	weight   int
}

var races = []race{
	{"2106-3", []string{"2113-8", "2112-0", "2108-9"}, 60},
	{"2054-5", []string{"2058-6", "2060-2"}, 13},
	{"2028-9", []string{"2034-7", "2039-6", "2029-7", "2047-9", "2036-2"}, 6},
	{"1002-5", nil, 1},
	{"2076-8", nil, 1},
}

var hispanicDetailed = []string{"2148-5", "2180-1", "2182-4"}

// Gender identity (SNOMED CT, the US Core gender identity value set).
var (
	identifiesFemale    = snomed("446141000124107", "Identifies as female gender (finding)")
	identifiesMale      = snomed("446151000124109", "Identifies as male gender (finding)")
	identifiesNonbinary = snomed("33791000087105", "Identifies as nonbinary gender (finding)")
)

// Sex for the US Core sex extension (SNOMED CT).
const (
	sexFemale = "248152002"
	sexMale   = "248153007"
)

// Sexual orientation (US Core sexual orientation value set).
var orientations = []struct {
	code   code
	weight int
}{
	{snomed("20430005", "Heterosexual (finding)"), 88},
	{snomed("38628009", "Homosexual (finding)"), 4},
	{snomed("42035005", "Bisexual (finding)"), 5},
	{tho("v3-NullFlavor", "ASKU", "Asked but no answer"), 3},
}

// Smoking status values (US Core smoking status, SNOMED CT).
var (
	neverSmoked = snomed("266919005", "Never smoked tobacco (finding)")
	exSmoker    = snomed("8517006", "Ex-smoker (finding)")
	dailySmoker = snomed("449868002", "Smokes tobacco daily (finding)")
	someDays    = snomed("428041000124106", "Occasional tobacco smoker (finding)")
)

// Pregnancy status and intent (US Core value sets, SNOMED CT).
var (
	notPregnant       = snomed("60001007", "Not pregnant (finding)")
	pregnant          = snomed("77386006", "Pregnant (finding)")
	intentUnsure      = snomed("454381000124105", "Not sure of desire to become pregnant (finding)")
	intentEither      = snomed("454391000124108", "Ambivalent about becoming pregnant (finding)")
	intentNo          = snomed("454401000124105", "No desire to become pregnant (finding)")
	intentYes         = snomed("454411000124108", "Wants to become pregnant (finding)")
	pregnancyStatus   = loinc("82810-3", "Pregnancy status")
	pregnancyIntent   = loinc("86645-9", "Pregnancy intention in the next year - Reported")
	sexualOrientation = loinc("76690-7", "Sexual orientation")
	smokingStatus     = loinc("72166-2", "Tobacco smoking status")
	alcoholPerDay     = loinc("74013-4", "Alcoholic drinks per day")
)

// Encounter classes (v3 ActCode) and types (SNOMED CT and CPT, the US
// Core encounter type value set).
var (
	classAMB  = tho("v3-ActCode", "AMB", "ambulatory")
	classEMER = tho("v3-ActCode", "EMER", "emergency")
	classIMP  = tho("v3-ActCode", "IMP", "inpatient encounter")

	checkUp    = snomed("185349003", "Encounter for check up (procedure)")
	followUp   = snomed("390906007", "Follow-up encounter (procedure)")
	wellChild  = snomed("410620009", "Well child visit (procedure)")
	emergency  = snomed("50849002", "Emergency room admission (procedure)")
	admission  = snomed("32485007", "Hospital admission (procedure)")
	officeEst  = cpt("99214", "Office or other outpatient visit for the evaluation and management of an established patient, moderate complexity")
	officeLow  = cpt("99213", "Office or other outpatient visit for the evaluation and management of an established patient, low complexity")
	erVisit    = cpt("99284", "Emergency department visit, moderate complexity")
	dischHome  = code{sysNUBC, "01", "Discharged to home or self care (routine discharge)"}
	attender   = tho("v3-ParticipationType", "ATND", "attender")
	physician  = snomed("309343006", "Physician (occupation)")
	patientRol = snomed("116154003", "Patient (person)")
	caregiver  = snomed("133932002", "Caregiver (person)")
)

// Clinical note types (LOINC, the US Core DocumentReference type value set).
var (
	progressNote  = loinc("11506-3", "Progress note")
	dischargeNote = loinc("18842-5", "Discharge summary")
	edNote        = loinc("34111-5", "Emergency department Note")
)

// Languages (BCP 47) with their share of patients.
var languages = []struct {
	tag, display string
	weight       int
}{
	{"en", "English", 80}, {"es", "Spanish", 13}, {"zh", "Chinese", 2}, {"vi", "Vietnamese", 1},
	{"fr", "French", 1}, {"ar", "Arabic", 1}, {"ko", "Korean", 1}, {"ru", "Russian", 1},
}

// Marital status (v3 MaritalStatus).
var (
	married   = tho("v3-MaritalStatus", "M", "Married")
	single    = tho("v3-MaritalStatus", "S", "Never Married")
	divorced  = tho("v3-MaritalStatus", "D", "Divorced")
	widowed   = tho("v3-MaritalStatus", "W", "Widowed")
	maritalNA = tho("v3-NullFlavor", "UNK", "unknown")
)

// Payer types (Source of Payment Typology) and the plans of each.
var (
	medicare = code{sysSOPT, "1", "MEDICARE"}
	medicaid = code{sysSOPT, "2", "MEDICAID"}
	private  = code{sysSOPT, "5", "PRIVATE HEALTH INSURANCE"}
)

// Relationships.
var (
	relSelf      = tho("subscriber-relationship", "self", "Self")
	relChild     = tho("subscriber-relationship", "child", "Child")
	relSpouse    = tho("subscriber-relationship", "spouse", "Spouse")
	nextOfKin    = tho("v2-0131", "N", "Next-of-Kin")
	emergContact = tho("v2-0131", "C", "Emergency Contact")
	roleMother   = tho("v3-RoleCode", "MTH", "mother")
	roleFather   = tho("v3-RoleCode", "FTH", "father")
	roleSpouse   = tho("v3-RoleCode", "SPS", "spouse")
	roleDau      = tho("v3-RoleCode", "DAU", "natural daughter")
	roleSon      = tho("v3-RoleCode", "SON", "natural son")
)
