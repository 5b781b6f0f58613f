package synth

// The curated clinical tables: real codes (SNOMED CT with ICD-10-CM,
// RxNorm, LOINC, CVX, CPT) for the problems, drugs, tests, vaccines,
// allergies, procedures and devices the charts are built from. Displays
// follow each code system's own wording.

// drug is a prescribable product (RxNorm SCD) with how it is taken.
type drug struct {
	slug         string
	code         code // RxNorm clinical drug
	ingredient   code // RxNorm ingredient
	strength     float64
	strengthUnit string
	strengthUCUM string
	per, perUCUM string // the unit of one dose ("tablet", "{tbl}")
	form         code   // SNOMED CT dose form
	sig          string
	dose         float64
	perDay       int
	asNeeded     bool
	inhaled      bool
	supply       float64 // units dispensed per fill
	days         int     // days one fill lasts
	repeats      int     // refills allowed; 0: a short (acute) course
	byReference  bool    // requests name the Medication resource instead of coding the drug
}

var (
	tablet  = snomed("385055001", "Tablet (basic dose form)")
	capsule = snomed("385049006", "Capsule (basic dose form)")
	inhaler = snomed("420317006", "Inhalation powder (basic dose form)")
)

var drugList = []*drug{
	{slug: "lisinopril-10", code: rxnorm("314076", "lisinopril 10 MG Oral Tablet"), ingredient: rxnorm("29046", "lisinopril"), strength: 10, strengthUnit: "mg", strengthUCUM: "mg", per: "tablet", perUCUM: "{tbl}", form: tablet,
		sig: "Take 1 tablet by mouth once daily", dose: 1, perDay: 1, supply: 90, days: 90, repeats: 3},
	{slug: "metformin-er-500", code: rxnorm("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"), ingredient: rxnorm("6809", "metformin"), strength: 500, strengthUnit: "mg", strengthUCUM: "mg", per: "tablet", perUCUM: "{tbl}", form: tablet,
		sig: "Take 1 tablet by mouth twice daily with meals", dose: 1, perDay: 2, supply: 180, days: 90, repeats: 3, byReference: true},
	{slug: "atorvastatin-80", code: rxnorm("259255", "atorvastatin 80 MG Oral Tablet"), ingredient: rxnorm("83367", "atorvastatin"), strength: 80, strengthUnit: "mg", strengthUCUM: "mg", per: "tablet", perUCUM: "{tbl}", form: tablet,
		sig: "Take 1 tablet by mouth at bedtime", dose: 1, perDay: 1, supply: 90, days: 90, repeats: 3, byReference: true},
	{slug: "albuterol-inhaler", code: rxnorm("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"), ingredient: rxnorm("435", "albuterol"), strength: 0.09, strengthUnit: "mg", strengthUCUM: "mg", per: "actuation", perUCUM: "{actuat}", form: inhaler,
		sig: "Inhale 2 puffs every 4 to 6 hours as needed for wheezing", dose: 2, perDay: 4, asNeeded: true, inhaled: true, supply: 1, days: 30, repeats: 2},
	{slug: "fluticasone-inhaler", code: rxnorm("895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"), ingredient: rxnorm("41126", "fluticasone"), strength: 0.044, strengthUnit: "mg", strengthUCUM: "mg", per: "actuation", perUCUM: "{actuat}", form: inhaler,
		sig: "Inhale 2 puffs twice daily; rinse mouth after use", dose: 2, perDay: 2, inhaled: true, supply: 1, days: 30, repeats: 5},
	{slug: "levothyroxine-75", code: rxnorm("966222", "levothyroxine sodium 0.075 MG Oral Tablet"), ingredient: rxnorm("10582", "levothyroxine"), strength: 0.075, strengthUnit: "mg", strengthUCUM: "mg", per: "tablet", perUCUM: "{tbl}", form: tablet,
		sig: "Take 1 tablet by mouth every morning on an empty stomach", dose: 1, perDay: 1, supply: 90, days: 90, repeats: 3, byReference: true},
	{slug: "warfarin-5", code: rxnorm("855332", "warfarin sodium 5 MG Oral Tablet"), ingredient: rxnorm("11289", "warfarin"), strength: 5, strengthUnit: "mg", strengthUCUM: "mg", per: "tablet", perUCUM: "{tbl}", form: tablet,
		sig: "Take 1 tablet by mouth once daily in the evening, or as directed by the anticoagulation clinic", dose: 1, perDay: 1, supply: 30, days: 30, repeats: 5},
	{slug: "furosemide-20", code: rxnorm("310429", "furosemide 20 MG Oral Tablet"), ingredient: rxnorm("4603", "furosemide"), strength: 20, strengthUnit: "mg", strengthUCUM: "mg", per: "tablet", perUCUM: "{tbl}", form: tablet,
		sig: "Take 1 tablet by mouth every morning", dose: 1, perDay: 1, supply: 30, days: 30, repeats: 5},
	{slug: "acetaminophen-325", code: rxnorm("313782", "acetaminophen 325 MG Oral Tablet"), ingredient: rxnorm("161", "acetaminophen"), strength: 325, strengthUnit: "mg", strengthUCUM: "mg", per: "tablet", perUCUM: "{tbl}", form: tablet,
		sig: "Take 2 tablets by mouth every 6 hours as needed for pain", dose: 2, perDay: 4, asNeeded: true, supply: 40, days: 5},
	{slug: "amoxicillin-250", code: rxnorm("308182", "amoxicillin 250 MG Oral Capsule"), ingredient: rxnorm("723", "amoxicillin"), strength: 250, strengthUnit: "mg", strengthUCUM: "mg", per: "capsule", perUCUM: "{cap}", form: capsule,
		sig: "Take 2 capsules by mouth three times daily for 10 days", dose: 2, perDay: 3, supply: 60, days: 10},
}

func drugBySlug(s string) *drug {
	for _, d := range drugList {
		if d.slug == s {
			return d
		}
	}
	panic("synth: no drug " + s)
}

// chronic is a long-term problem, how common it is by age, and what its
// care brings: drugs, lab panels at follow-up, a goal and maybe a device.
type chronic struct {
	slug       string
	snomed     code
	icd        code
	prevalence func(age int, female bool) float64
	drugs      []string
	labs       []string // panel slugs ordered at follow-up visits
	goal       goalSpec
	device     string // device slug implanted for it (with a chance)
	followUp   bool
}

type goalSpec struct {
	text       string
	measure    code
	low, high  float64 // target range; a missing low is 0 (then "<" high)
	unit, ucum string
	places     int
}

func adultBands(young, mid, old float64) func(int, bool) float64 {
	return func(age int, _ bool) float64 {
		switch {
		case age < 18:
			return 0
		case age < 40:
			return young
		case age < 65:
			return mid
		}
		return old
	}
}

var chronicList = []*chronic{
	{slug: "hypertension", snomed: snomed("59621000", "Essential hypertension (disorder)"), icd: icd("I10", "Essential (primary) hypertension"),
		prevalence: adultBands(0.08, 0.33, 0.6), drugs: []string{"lisinopril-10"}, labs: []string{"bmp"}, followUp: true,
		goal: goalSpec{"Systolic blood pressure below 130 mmHg", loinc("8480-6", "Systolic blood pressure"), 0, 130, "mmHg", "mm[Hg]", 0}},
	{slug: "diabetes", snomed: snomed("44054006", "Diabetes mellitus type 2 (disorder)"), icd: icd("E11.9", "Type 2 diabetes mellitus without complications"),
		prevalence: adultBands(0.03, 0.14, 0.25), drugs: []string{"metformin-er-500"}, labs: []string{"a1c", "bmp"}, followUp: true,
		goal: goalSpec{"Hemoglobin A1c below 7.0%", loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), 0, 7, "%", "%", 1}},
	{slug: "hyperlipidemia", snomed: snomed("55822004", "Hyperlipidemia (disorder)"), icd: icd("E78.5", "Hyperlipidemia, unspecified"),
		prevalence: adultBands(0.05, 0.25, 0.45), drugs: []string{"atorvastatin-80"}, labs: []string{"lipid"},
		goal: goalSpec{"LDL cholesterol below 100 mg/dL", loinc("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay"), 0, 100, "mg/dL", "mg/dL", 0}},
	{slug: "asthma", snomed: snomed("195967001", "Asthma (disorder)"), icd: icd("J45.909", "Unspecified asthma, uncomplicated"),
		prevalence: func(age int, _ bool) float64 {
			if age < 18 {
				return 0.09
			}
			return 0.08
		}, drugs: []string{"albuterol-inhaler", "fluticasone-inhaler"}, followUp: true,
		goal: goalSpec{text: "No asthma attacks needing urgent care"}},
	{slug: "copd", snomed: snomed("13645005", "Chronic obstructive lung disease (disorder)"), icd: icd("J44.9", "Chronic obstructive pulmonary disease, unspecified"),
		prevalence: adultBands(0, 0.04, 0.1), drugs: []string{"albuterol-inhaler"}, followUp: true,
		goal: goalSpec{"Oxygen saturation at or above 90% at rest", loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"), 90, 100, "%", "%", 0}},
	{slug: "hypothyroidism", snomed: snomed("40930008", "Hypothyroidism (disorder)"), icd: icd("E03.9", "Hypothyroidism, unspecified"),
		prevalence: func(age int, female bool) float64 {
			switch {
			case age < 18:
				return 0
			case female:
				return 0.07
			}
			return 0.02
		}, drugs: []string{"levothyroxine-75"}, labs: []string{"tsh"}, followUp: true,
		goal: goalSpec{"TSH within the reference range", loinc("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"), 0.4, 4, "mIU/L", "m[IU]/L", 1}},
	{slug: "afib", snomed: snomed("49436004", "Atrial fibrillation (disorder)"), icd: icd("I48.91", "Unspecified atrial fibrillation"),
		prevalence: adultBands(0, 0.02, 0.09), drugs: []string{"warfarin-5"}, labs: []string{"inr"}, followUp: true, device: "pacemaker",
		goal: goalSpec{"INR between 2.0 and 3.0", loinc("6301-6", "INR in Platelet poor plasma by Coagulation assay"), 2, 3, "INR", "{INR}", 1}},
	{slug: "heart-failure", snomed: snomed("84114007", "Heart failure (disorder)"), icd: icd("I50.9", "Heart failure, unspecified"),
		prevalence: adultBands(0, 0.01, 0.06), drugs: []string{"furosemide-20"}, labs: []string{"bnp", "bmp"}, followUp: true,
		goal: goalSpec{text: "Stable weight with no hospital admission for heart failure"}},
	{slug: "cad", snomed: snomed("53741008", "Coronary arteriosclerosis (disorder)"), icd: icd("I25.10", "Atherosclerotic heart disease of native coronary artery without angina pectoris"),
		prevalence: adultBands(0, 0.04, 0.12), drugs: []string{"atorvastatin-80"}, labs: []string{"lipid"}, followUp: true, device: "stent",
		goal: goalSpec{"LDL cholesterol below 70 mg/dL", loinc("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay"), 0, 70, "mg/dL", "mg/dL", 0}},
	{slug: "ckd3", snomed: snomed("433144002", "Chronic kidney disease stage 3 (disorder)"), icd: icd("N18.30", "Chronic kidney disease, stage 3 unspecified"),
		prevalence: adultBands(0, 0.03, 0.1), labs: []string{"bmp"}, followUp: true,
		goal: goalSpec{text: "Keep kidney function stable"}},
	{slug: "hip-oa", snomed: snomed("239872002", "Osteoarthritis of hip (disorder)"), icd: icd("M16.9", "Osteoarthritis of hip, unspecified"),
		prevalence: adultBands(0, 0.04, 0.1), drugs: []string{"acetaminophen-325"}, device: "hip",
		goal: goalSpec{text: "Walk 30 minutes a day without hip pain"}},
	{slug: "migraine", snomed: snomed("37796009", "Migraine (disorder)"), icd: icd("G43.909", "Migraine, unspecified, not intractable, without status migrainosus"),
		prevalence: func(age int, female bool) float64 {
			switch {
			case age < 12:
				return 0
			case female:
				return 0.15
			}
			return 0.06
		}, drugs: []string{"acetaminophen-325"},
		goal: goalSpec{text: "Fewer than two migraine days a month"}},
	{slug: "obesity", snomed: snomed("414916001", "Obesity (disorder)"), icd: icd("E66.9", "Obesity, unspecified"),
		prevalence: func(age int, _ bool) float64 {
			if age < 6 {
				return 0
			}
			if age < 18 {
				return 0.15
			}
			return 0.3
		},
		goal: goalSpec{"Body mass index below 30", loinc("39156-5", "Body mass index (BMI) [Ratio]"), 0, 30, "kg/m2", "kg/m2", 1}},
	{slug: "depression", snomed: snomed("35489007", "Depressive disorder (disorder)"), icd: icd("F32.A", "Depression, unspecified"),
		prevalence: adultBands(0.09, 0.08, 0.06), followUp: true,
		goal: goalSpec{text: "PHQ-9 score below 5"}},
}

func chronicBySlug(s string) *chronic {
	for _, c := range chronicList {
		if c.slug == s {
			return c
		}
	}
	panic("synth: no chronic problem " + s)
}

// acute is a short illness diagnosed at a visit, resolved some days later.
type acute struct {
	slug        string
	snomed, icd code
	symptom     code // the reason for the visit
	drug        string
	days        int  // days until it resolved
	child       bool // also (or only, for otitis) in children
	adultOnly   bool
}

var acuteList = []acute{
	{"bronchitis", snomed("10509002", "Acute bronchitis (disorder)"), icd("J20.9", "Acute bronchitis, unspecified"), snomed("49727002", "Cough (finding)"), "albuterol-inhaler", 14, true, false},
	{"sinusitis", snomed("15805002", "Acute sinusitis (disorder)"), icd("J01.90", "Acute sinusitis, unspecified"), snomed("68235000", "Nasal congestion (finding)"), "amoxicillin-250", 10, true, false},
	{"otitis-media", snomed("65363002", "Otitis media (disorder)"), icd("H66.90", "Otitis media, unspecified, unspecified ear"), snomed("301354004", "Pain of ear (finding)"), "amoxicillin-250", 10, true, false},
	{"uri", snomed("54150009", "Upper respiratory infection (disorder)"), icd("J06.9", "Acute upper respiratory infection, unspecified"), snomed("49727002", "Cough (finding)"), "acetaminophen-325", 7, true, false},
	{"ankle-sprain", snomed("44465007", "Sprain of ankle (disorder)"), icd("S93.409A", "Sprain of unspecified ligament of unspecified ankle, initial encounter"), snomed("247373008", "Ankle pain (finding)"), "acetaminophen-325", 21, true, false},
	{"back-pain", snomed("279039007", "Low back pain (finding)"), icd("M54.50", "Low back pain, unspecified"), snomed("279039007", "Low back pain (finding)"), "acetaminophen-325", 28, false, true},
	{"chest-pain", snomed("29857009", "Chest pain (finding)"), icd("R07.9", "Chest pain, unspecified"), snomed("29857009", "Chest pain (finding)"), "acetaminophen-325", 3, false, true},
	{"uti", snomed("68566005", "Urinary tract infectious disease (disorder)"), icd("N39.0", "Urinary tract infection, site not specified"), snomed("49650001", "Dysuria (finding)"), "amoxicillin-250", 7, false, true},
	{"gastroenteritis", snomed("25374005", "Gastroenteritis (disorder)"), icd("K52.9", "Noninfective gastroenteritis and colitis, unspecified"), snomed("422587007", "Nausea (finding)"), "acetaminophen-325", 5, true, false},
}

// concernSpec is a health concern (US Core Condition, category
// health-concern).
type concernSpec struct {
	slug        string
	snomed, icd code
	sdoh        bool // also categorised sdoh (screening-assessment slice)
}

var (
	foodInsecurity = concernSpec{"food-insecurity", snomed("733423003", "Food insecurity (finding)"), icd("Z59.41", "Food insecurity"), true}
	concerns       = []concernSpec{
		{"stress", snomed("73595000", "Stress (finding)"), icd("Z73.3", "Stress, not elsewhere classified"), false},
		{"sedentary", snomed("415510005", "Sedentary lifestyle (finding)"), icd("Z72.3", "Lack of physical exercise"), false},
	}
)

// labTest is one laboratory test with its reference range. A range end
// that does not apply is 0 (hasLow/hasHigh say which apply).
type labTest struct {
	slug            string
	code            code
	unit, ucum      string
	low, high       float64
	hasLow, hasHigh bool
	normal, spread  float64 // typical value and how far it varies
	places          int
}

var labTests = map[string]*labTest{}

func init() {
	for _, t := range []*labTest{
		{slug: "glucose", code: loinc("2345-7", "Glucose [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", low: 70, high: 99, hasLow: true, hasHigh: true, normal: 88, spread: 10},
		{slug: "bun", code: loinc("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", low: 7, high: 20, hasLow: true, hasHigh: true, normal: 14, spread: 4},
		{slug: "creatinine", code: loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", low: 0.6, high: 1.2, hasLow: true, hasHigh: true, normal: 0.9, spread: 0.15, places: 2},
		{slug: "sodium", code: loinc("2951-2", "Sodium [Moles/volume] in Serum or Plasma"), unit: "mmol/L", ucum: "mmol/L", low: 136, high: 145, hasLow: true, hasHigh: true, normal: 140, spread: 3},
		{slug: "potassium", code: loinc("2823-3", "Potassium [Moles/volume] in Serum or Plasma"), unit: "mmol/L", ucum: "mmol/L", low: 3.5, high: 5.1, hasLow: true, hasHigh: true, normal: 4.2, spread: 0.4, places: 1},
		{slug: "chloride", code: loinc("2075-0", "Chloride [Moles/volume] in Serum or Plasma"), unit: "mmol/L", ucum: "mmol/L", low: 98, high: 107, hasLow: true, hasHigh: true, normal: 102, spread: 3},
		{slug: "co2", code: loinc("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma"), unit: "mmol/L", ucum: "mmol/L", low: 22, high: 29, hasLow: true, hasHigh: true, normal: 25, spread: 2},
		{slug: "calcium", code: loinc("17861-6", "Calcium [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", low: 8.6, high: 10.3, hasLow: true, hasHigh: true, normal: 9.4, spread: 0.4, places: 1},
		{slug: "a1c", code: loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), unit: "%", ucum: "%", low: 4.0, high: 5.6, hasLow: true, hasHigh: true, normal: 5.3, spread: 0.3, places: 1},
		{slug: "cholesterol", code: loinc("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", high: 200, hasHigh: true, normal: 180, spread: 25},
		{slug: "hdl", code: loinc("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", low: 40, hasLow: true, normal: 55, spread: 12},
		{slug: "ldl", code: loinc("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay"), unit: "mg/dL", ucum: "mg/dL", high: 100, hasHigh: true, normal: 95, spread: 25},
		{slug: "triglycerides", code: loinc("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma"), unit: "mg/dL", ucum: "mg/dL", high: 150, hasHigh: true, normal: 120, spread: 35},
		{slug: "hemoglobin", code: loinc("718-7", "Hemoglobin [Mass/volume] in Blood"), unit: "g/dL", ucum: "g/dL", low: 12.0, high: 17.5, hasLow: true, hasHigh: true, normal: 13.8, spread: 1.2, places: 1},
		{slug: "hematocrit", code: loinc("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count"), unit: "%", ucum: "%", low: 36, high: 50, hasLow: true, hasHigh: true, normal: 42, spread: 4, places: 1},
		{slug: "wbc", code: loinc("6690-2", "Leukocytes [#/volume] in Blood by Automated count"), unit: "10*3/uL", ucum: "10*3/uL", low: 4.5, high: 11.0, hasLow: true, hasHigh: true, normal: 7.0, spread: 2, places: 1},
		{slug: "platelets", code: loinc("777-3", "Platelets [#/volume] in Blood by Automated count"), unit: "10*3/uL", ucum: "10*3/uL", low: 150, high: 400, hasLow: true, hasHigh: true, normal: 250, spread: 60},
		{slug: "inr", code: loinc("6301-6", "INR in Platelet poor plasma by Coagulation assay"), unit: "INR", ucum: "{INR}", low: 0.8, high: 1.2, hasLow: true, hasHigh: true, normal: 1.0, spread: 0.1, places: 1},
		{slug: "tsh", code: loinc("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"), unit: "mIU/L", ucum: "m[IU]/L", low: 0.4, high: 4.0, hasLow: true, hasHigh: true, normal: 2.0, spread: 1.2, places: 2},
		{slug: "bnp", code: loinc("30934-4", "Natriuretic peptide B [Mass/volume] in Serum or Plasma"), unit: "pg/mL", ucum: "pg/mL", high: 100, hasHigh: true, normal: 45, spread: 25},
	} {
		labTests[t.slug] = t
	}
}

// labPanel is what one order asks for: a panel, or a single test (whose
// code is then the panel's code).
type labPanel struct {
	slug     string
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
	"bmp":   {"bmp", loinc("51990-0", "Basic metabolic panel - Blood"), bloodSpecimen, []string{"glucose", "bun", "creatinine", "sodium", "potassium", "chloride", "co2", "calcium"}},
	"lipid": {"lipid", loinc("57698-3", "Lipid panel with direct LDL - Serum or Plasma"), serumSpecimen, []string{"cholesterol", "hdl", "ldl", "triglycerides"}},
	"cbc":   {"cbc", loinc("58410-2", "CBC panel - Blood by Automated count"), bloodSpecimen, []string{"hemoglobin", "hematocrit", "wbc", "platelets"}},
	"a1c":   {"a1c", loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), bloodSpecimen, []string{"a1c"}},
	"inr":   {"inr", loinc("6301-6", "INR in Platelet poor plasma by Coagulation assay"), plasmaSpecimen, []string{"inr"}},
	"tsh":   {"tsh", loinc("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"), serumSpecimen, []string{"tsh"}},
	"bnp":   {"bnp", loinc("30934-4", "Natriuretic peptide B [Mass/volume] in Serum or Plasma"), plasmaSpecimen, []string{"bnp"}},
}

// vaccine is a CVX vaccine and who gets it.
type vaccine struct {
	slug string
	code code
	// minAge and maxAge bound the age (years) at which it is given.
	minAge, maxAge int
	yearly         bool // given at every check-up (influenza)
}

var vaccines = []vaccine{
	{"flu-child", cvx("150", "Influenza, injectable, quadrivalent, preservative free"), 0, 17, true},
	{"flu", cvx("140", "Influenza, seasonal, injectable, preservative free"), 18, 64, true},
	{"flu-high-dose", cvx("135", "Influenza, high dose seasonal"), 65, 200, true},
	{"dtap", cvx("20", "DTaP"), 0, 6, false},
	{"ipv", cvx("10", "IPV"), 0, 6, false},
	{"mmr", cvx("03", "MMR"), 1, 6, false},
	{"varicella", cvx("21", "varicella"), 1, 12, false},
	{"hepb", cvx("08", "Hep B, adolescent or pediatric"), 0, 2, false},
	{"hpv", cvx("165", "HPV9"), 11, 26, false},
	{"tdap", cvx("115", "Tdap"), 11, 200, false},
	{"zoster", cvx("187", "zoster recombinant"), 50, 200, false},
	{"ppv23", cvx("33", "pneumococcal polysaccharide PPV23"), 65, 200, false},
}

// allergySpec is an allergy or intolerance with its usual reaction.
type allergySpec struct {
	slug        string
	code        code
	kind        string // allergy, intolerance
	category    string // food, medication, environment, biologic
	criticality string
	reaction    code
	severity    string
}

var (
	noKnownAllergy = snomed("716186003", "No known allergy (situation)")
	allergyList    = []allergySpec{
		{"penicillin", rxnorm("70618", "penicillin"), "allergy", "medication", "high", snomed("247472004", "Wheal (finding)"), "moderate"},
		{"sulfonamide", snomed("387406002", "Sulfonamide (substance)"), "allergy", "medication", "low", snomed("271807003", "Eruption of skin (disorder)"), "mild"},
		{"codeine", rxnorm("2670", "codeine"), "intolerance", "medication", "low", snomed("422587007", "Nausea (finding)"), "mild"},
		{"peanut", snomed("762952008", "Peanut (substance)"), "allergy", "food", "high", snomed("39579001", "Anaphylaxis (disorder)"), "severe"},
		{"latex", snomed("111088007", "Latex (substance)"), "allergy", "environment", "low", snomed("40275004", "Contact dermatitis (disorder)"), "mild"},
		{"pollen", snomed("256259004", "Pollen (substance)"), "allergy", "environment", "low", snomed("76067001", "Sneezing (finding)"), "mild"},
	}
)

// device is an implanted device (US Core Implantable Device) and the
// procedure that placed it.
type deviceSpec struct {
	slug, name, manufacturer, model string
	kind                            code
	procedure                       code
	procedureCPT                    code
	years                           int // usable life from manufacture
}

var devices = map[string]deviceSpec{
	"pacemaker": {"pacemaker", "Dual-chamber pacemaker", "Acme Cardiac Devices", "DR-2200", snomed("14106009", "Cardiac pacemaker, device (physical object)"),
		snomed("307280005", "Implantation of cardiac pacemaker (procedure)"), cpt("33208", "Insertion of new or replacement of permanent pacemaker with transvenous electrode(s); atrial and ventricular"), 12},
	"stent": {"stent", "Drug-eluting coronary stent", "Acme Vascular", "DES-38", snomed("705643001", "Coronary artery stent (physical object)"),
		snomed("36969009", "Placement of stent in coronary artery (procedure)"), cpt("92928", "Percutaneous transcatheter placement of intracoronary stent(s), with coronary angioplasty when performed; single major coronary artery or branch"), 5},
	"hip": {"hip", "Total hip prosthesis", "Acme Orthopedics", "THP-52", snomed("304120007", "Total hip replacement prosthesis (physical object)"),
		snomed("52734007", "Total replacement of hip (procedure)"), cpt("27130", "Arthroplasty, acetabular and proximal femoral prosthetic replacement (total hip arthroplasty), with or without autograft or allograft"), 25},
}

// Procedures the charts record besides those that place a device.
var (
	chestXRay    = snomed("399208008", "Plain chest X-ray (procedure)")
	chestXRayCPT = cpt("71046", "Radiologic examination, chest; 2 views")
	colonoscopy  = snomed("73761001", "Colonoscopy (procedure)")
	colonCPT     = cpt("45378", "Colonoscopy, flexible; diagnostic, including collection of specimen(s) by brushing or washing, when performed")
	mammography  = snomed("71651007", "Mammography (procedure)")
	mammoCPT     = cpt("77067", "Screening mammography, bilateral (2-view study of each breast), including computer-aided detection (CAD) when performed")
	ecg          = snomed("29303009", "Electrocardiographic procedure (procedure)")
	ecgCPT       = cpt("93000", "Electrocardiogram, routine ECG with at least 12 leads; with interpretation and report")
	xrayReport   = loinc("36643-5", "XR Chest 2 Views")
	xrayFinding  = loinc("18782-3", "Radiology Study observation (narrative)")
)
