package devdata

// Codes the set shares between patients. Displays follow the code systems'
// own wording (LOINC long common names, SNOMED CT fully specified names,
// CDC Race & Ethnicity, CVX short descriptions).

// cdcRace holds the displays of the CDC Race & Ethnicity codes in use
// (urn:oid:2.16.840.1.113883.6.238).
var cdcRace = map[string]string{
	"2106-3": "White",
	"2028-9": "Asian",
	"2054-5": "Black or African American",
	"2135-2": "Hispanic or Latino",
	"2186-5": "Not Hispanic or Latino",
	"2034-7": "Chinese",
	"2058-6": "African American",
	"2111-2": "French",
	"2113-8": "Irish",
	"2148-5": "Mexican",
}

// Encounter types (SNOMED CT, under 308335008 Patient encounter procedure,
// as the US Core encounter type value set asks).
var (
	checkUp    = snomed("185349003", "Encounter for check up (procedure)")
	symptom    = snomed("185345009", "Encounter for symptom (procedure)")
	followUp   = snomed("390906007", "Follow-up encounter (procedure)")
	wellChild  = snomed("410620009", "Well child visit (procedure)")
	emergency  = snomed("50849002", "Emergency room admission (procedure)")
	admission  = snomed("32485007", "Hospital admission (procedure)")
	encClasses = map[string]string{"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter"}
)

// Smoking status values (US Core smoking status, SNOMED CT).
var (
	neverSmoked = snomed("266919005", "Never smoked tobacco (finding)")
	exSmoker    = snomed("8517006", "Ex-smoker (finding)")
	dailySmoker = snomed("449868002", "Smokes tobacco daily (finding)")
)

// Clinical note types (US Core clinical note type value set, LOINC).
var (
	progressNote  = loinc("11506-3", "Progress note")
	historyNote   = loinc("34117-2", "History and physical note")
	dischargeNote = loinc("18842-5", "Discharge summary")
)

// Payer types (Source of Payment Typology).
var (
	medicare = code{"https://nahdo.org/sopt", "1", "MEDICARE"}
	private  = code{"https://nahdo.org/sopt", "5", "PRIVATE HEALTH INSURANCE"}
)

// labTest is one laboratory test with its reference range. A range end
// that does not apply is 0 (hasLow/hasHigh say which apply).
type labTest struct {
	code            code
	unit, ucum      string
	low, high       float64
	hasLow, hasHigh bool
	normal, spread  float64 // typical value and how far it varies
	places          int     // decimals reported
}

var labTests = map[string]labTest{
	"glucose":       {code: loinc("2339-0", "Glucose [Mass/volume] in Blood"), unit: "mg/dL", ucum: "mg/dL", low: 70, high: 99, hasLow: true, hasHigh: true, normal: 88, spread: 8},
	"sodium":        {code: loinc("2951-2", "Sodium [Moles/volume] in Serum or Plasma"), unit: "mmol/L", ucum: "mmol/L", low: 136, high: 145, hasLow: true, hasHigh: true, normal: 140, spread: 2},
	"potassium":     {code: loinc("2823-3", "Potassium [Moles/volume] in Serum or Plasma"), unit: "mmol/L", ucum: "mmol/L", low: 3.5, high: 5.1, hasLow: true, hasHigh: true, normal: 4.2, spread: 0.3, places: 1},
	"creatinine":    {code: loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", low: 0.6, high: 1.2, hasLow: true, hasHigh: true, normal: 0.9, spread: 0.12, places: 2},
	"a1c":           {code: loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), unit: "%", ucum: "%", low: 4.0, high: 5.6, hasLow: true, hasHigh: true, normal: 5.2, spread: 0.2, places: 1},
	"cholesterol":   {code: loinc("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", high: 200, hasHigh: true, normal: 175, spread: 15},
	"hdl":           {code: loinc("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", low: 40, hasLow: true, normal: 56, spread: 8},
	"ldl":           {code: loinc("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay"), unit: "mg/dL", ucum: "mg/dL", high: 100, hasHigh: true, normal: 84, spread: 10},
	"triglycerides": {code: loinc("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", high: 150, hasHigh: true, normal: 118, spread: 20},
	"hemoglobin":    {code: loinc("718-7", "Hemoglobin [Mass/volume] in Blood"), unit: "g/dL", ucum: "g/dL", low: 12.0, high: 17.5, hasLow: true, hasHigh: true, normal: 13.6, spread: 0.8, places: 1},
	"wbc":           {code: loinc("6690-2", "Leukocytes [#/volume] in Blood by Automated count"), unit: "10*3/uL", ucum: "10*3/uL", low: 4.5, high: 11.0, hasLow: true, hasHigh: true, normal: 7.0, spread: 1.5, places: 1},
	"platelets":     {code: loinc("777-3", "Platelets [#/volume] in Blood by Automated count"), unit: "10*3/uL", ucum: "10*3/uL", low: 150, high: 400, hasLow: true, hasHigh: true, normal: 250, spread: 40},
	"inr":           {code: loinc("6301-6", "INR in Platelet poor plasma by Coagulation assay"), unit: "INR", ucum: "{INR}", low: 0.8, high: 1.2, hasLow: true, hasHigh: true, normal: 1.0, spread: 0.1, places: 1},
	"tsh":           {code: loinc("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"), unit: "mIU/L", ucum: "m[IU]/L", low: 0.4, high: 4.0, hasLow: true, hasHigh: true, normal: 2.0, spread: 0.6, places: 2},
	"bnp":           {code: loinc("30934-4", "Natriuretic peptide B [Mass/volume] in Serum or Plasma"), unit: "pg/mL", ucum: "pg/mL", high: 100, hasHigh: true, normal: 40, spread: 15},
}

// labPanel is what one order asks for: a panel, or a single test (whose
// code is then the panel's code).
type labPanel struct {
	code     code
	specimen code
	tests    []string
}

var (
	bloodSpecimen  = snomed("119297000", "Blood specimen (specimen)")
	serumSpecimen  = snomed("119364003", "Serum specimen (specimen)")
	plasmaSpecimen = snomed("119361006", "Plasma specimen (specimen)")
)

var labPanels = map[string]labPanel{
	"bmp":   {loinc("51990-0", "Basic metabolic panel - Blood"), bloodSpecimen, []string{"glucose", "sodium", "potassium", "creatinine"}},
	"lipid": {loinc("57698-3", "Lipid panel with direct LDL - Serum or Plasma"), serumSpecimen, []string{"cholesterol", "hdl", "ldl", "triglycerides"}},
	"cbc":   {loinc("58410-2", "CBC panel - Blood by Automated count"), bloodSpecimen, []string{"hemoglobin", "wbc", "platelets"}},
	"a1c":   {labTests["a1c"].code, bloodSpecimen, []string{"a1c"}},
	"inr":   {labTests["inr"].code, plasmaSpecimen, []string{"inr"}},
	"tsh":   {labTests["tsh"].code, serumSpecimen, []string{"tsh"}},
	"bnp":   {labTests["bnp"].code, plasmaSpecimen, []string{"bnp"}},
}
