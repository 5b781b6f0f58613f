package synth

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kinds of visit.
const (
	checkup = iota
	followup
	sick
	edVisit
	inpatient
)

type visit struct {
	n          int
	kind       int
	start, end time.Time
	problem    *chronic // followup, inpatient: what it is about
	acute      *acute   // sick, ed: the diagnosis made
	dx         string   // id of the Condition diagnosed at the visit
	hospital   bool
}

// chart builds one patient's resources.
type chart struct {
	builder
	g     *Generator
	p     *person
	r     rng
	site  *site
	doc   *practitioner
	zone  *time.Location
	death time.Time // zero: alive

	visits    []*visit
	condIDs   map[string]string // chronic slug -> Condition id
	goalIDs   []string
	activeRx  []string // MedicationRequest ids of long-term drugs
	supplyO2  bool     // on oxygen at the inpatient stay (pulse oximetry components)
	targets   []obj    // every resource of the chart, for the Provenance
	contactID string   // the RelatedPerson
}

// Chart returns the resources of patient i (0 <= i < Patients()): the
// Patient first and the Provenance of them all last. A chart depends only
// on the seed and i.
func (g *Generator) Chart(i int) []Resource {
	p := g.plan(i)
	c := &chart{g: g, p: p, r: g.chartRand(i), site: &g.dir.sites[p.site], condIDs: map[string]string{}}
	c.doc = &g.dir.practitioners[p.doctor]
	c.zone = c.site.zone
	c.schedule()
	c.patient()
	c.relatedPerson()
	c.coverage()
	c.encounters()
	c.conditions()
	c.allergies()
	for _, v := range c.visits {
		c.vitalSigns(v)
		c.labs(v)
	}
	c.screening()
	c.socialHistory()
	c.medications()
	c.immunizations()
	c.procedures()
	c.imaging()
	c.notes()
	c.goals()
	c.careTeam()
	c.carePlan()
	c.provenance()
	return c.out
}

// add queues a resource of the chart.
func (c *chart) add(typ, id, profile string, body obj) {
	c.builder.add(typ, id, profile, body)
	c.targets = append(c.targets, ref(typ, id))
}

// id is the id of a chart resource: the patient's id, then parts.
func (c *chart) id(parts ...string) string { return c.p.id + "-" + strings.Join(parts, "-") }

func (c *chart) subject() obj { return refd("Patient", c.p.id, c.p.fullName()) }
func (c *chart) doctor() obj  { return refd("Practitioner", c.doc.id, c.doc.name()) }
func (c *chart) org() obj     { return refd("Organization", c.site.org, c.site.name) }
func (c *chart) encounter(v *visit) obj {
	return ref("Encounter", c.encID(v))
}
func (c *chart) encID(v *visit) string { return c.id("enc", strconv.Itoa(v.n)) }

// specialist is the site's practitioner of a specialty.
func (c *chart) specialist(spec int) *practitioner {
	return &c.g.dir.practitioners[c.site.practitioners[spec]]
}

// day is the calendar day n days before the anchor, at hh:mm local time.
func (c *chart) day(n, hh, mm int) time.Time {
	d := anchor.AddDate(0, 0, -n)
	return time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, c.zone)
}

// ageAt is the patient's age in years (fractional) at t.
func (c *chart) ageAt(t time.Time) float64 { return t.Sub(c.p.birth).Hours() / 24 / 365.25 }

// schedule draws the visits of the last three years: a check-up a year,
// follow-ups of long-term problems, maybe a sick visit, one emergency
// visit and, for heart failure or COPD, maybe a hospital stay.
func (c *chart) schedule() {
	r, p := c.r, c.p
	end := 0 // days before the anchor the record ends
	if p.deceased {
		end = between(r, 10, 200)
		c.death = c.day(end, between(r, 0, 23), between(r, 0, 59))
	}
	born := int(anchor.Sub(p.birth).Hours()/24) - 1
	span := min(1095, born-end-1)
	at := func(kind int, hh0, hh1, minutes int) *visit {
		d := end + 1 + r.IntN(max(span, 1))
		start := c.day(d, between(r, hh0, hh1), 15*r.IntN(4))
		return &visit{kind: kind, start: start, end: start.Add(time.Duration(minutes) * time.Minute)}
	}
	for y := range 3 {
		if y*365 > span {
			break
		}
		d := end + 1 + y*365 + r.IntN(max(min(340, span-y*365), 1))
		start := c.day(d, between(r, 8, 16), 15*r.IntN(4))
		c.visits = append(c.visits, &visit{kind: checkup, start: start, end: start.Add(30 * time.Minute)})
	}
	// Well-child visits of the first three years: 2, 4, 6, 9, 12, 15, 18,
	// 24 and 30 months.
	for _, months := range []int{2, 4, 6, 9, 12, 15, 18, 24, 30} {
		d := p.birth.AddDate(0, months, between(r, 0, 10))
		if !d.Before(anchor) || d.Before(anchor.AddDate(0, 0, -span)) {
			continue
		}
		start := time.Date(d.Year(), d.Month(), d.Day(), between(r, 8, 16), 15*r.IntN(4), 0, 0, c.zone)
		c.visits = append(c.visits, &visit{kind: checkup, start: start, end: start.Add(30 * time.Minute)})
	}
	follow := 0
	for _, ch := range p.chronic {
		if !ch.followUp || follow >= 4 {
			continue
		}
		for range between(r, 1, 2) {
			v := at(followup, 8, 16, 20)
			v.problem = ch
			c.visits = append(c.visits, v)
			follow++
		}
	}
	acutes := make([]*acute, 0, len(acuteList))
	for k := range acuteList {
		a := &acuteList[k]
		if (p.age < 18 && a.adultOnly) || (p.age >= 18 && a.slug == "otitis-media") {
			continue
		}
		acutes = append(acutes, a)
	}
	if chance(r, 0.5) {
		v := at(sick, 8, 17, 20)
		v.acute = pick(r, acutes)
		c.visits = append(c.visits, v)
	}
	ed := at(edVisit, 0, 23, between(r, 150, 330))
	ed.acute = pick(r, acutes)
	ed.hospital = true
	c.visits = append(c.visits, ed)
	if (p.has("heart-failure") || p.has("copd")) && chance(r, 0.45) {
		v := at(inpatient, 0, 23, 60*24*between(r, 2, 4)+between(r, 0, 600))
		v.problem = chronicBySlug("copd")
		if p.has("heart-failure") {
			v.problem = chronicBySlug("heart-failure")
		}
		v.hospital = true
		if v.end.After(anchor) || (!c.death.IsZero() && v.end.After(c.death)) {
			v.end = v.start.Add(26 * time.Hour)
		}
		c.visits = append(c.visits, v)
	}
	slices.SortStableFunc(c.visits, func(a, b *visit) int { return a.start.Compare(b.start) })
	for k, v := range c.visits {
		v.n = k + 1
		if v.acute != nil {
			v.dx = c.id("cond", v.acute.slug, strconv.Itoa(v.n))
		}
	}
}

// last returns the latest visit of a kind, or nil.
func (c *chart) last(kind int) *visit {
	for k := len(c.visits) - 1; k >= 0; k-- {
		if c.visits[k].kind == kind {
			return c.visits[k]
		}
	}
	return nil
}

func (c *chart) first(kind int) *visit {
	for _, v := range c.visits {
		if v.kind == kind {
			return v
		}
	}
	return nil
}

// ombExtension is a US Core race or ethnicity extension: OMB category,
// detailed codes and the required text.
func ombExtension(name string, omb string, detailed []string, text string) obj {
	var ext []obj
	ext = append(ext, obj{{"url", "ombCategory"}, {"valueCoding", code{sysCDCRace, omb, cdcRace[omb]}.coding()}})
	for _, d := range detailed {
		ext = append(ext, obj{{"url", "detailed"}, {"valueCoding", code{sysCDCRace, d, cdcRace[d]}.coding()}})
	}
	ext = append(ext, obj{{"url", "text"}, {"valueString", text}})
	return obj{{"extension", ext}, {"url", usCore + name}}
}

func (c *chart) gender() string {
	if c.p.female {
		return "female"
	}
	return "male"
}

func (c *chart) homeAddress() obj {
	r := c.g.chartRand(c.p.i ^ 1<<30) // a stream of its own: the address is shared with the contact
	return address([]string{strconv.Itoa(between(r, 1, 9999)) + " " + pick(r, streets)}, c.site.city, "home")
}

func (c *chart) email() string {
	return strings.ToLower(ascii.Replace(c.p.given[0]+"."+c.p.family)) + strconv.Itoa(c.p.i+1) + "@mail.example.org"
}

func (c *chart) patient() {
	p, r := c.p, c.r
	raceText := cdcRace[p.race.omb]
	if len(p.raceDet) > 0 {
		raceText = cdcRace[p.raceDet[0]]
	}
	eth, ethText := "2186-5", "Not Hispanic or Latino"
	var ethDet []string
	if p.hispanic {
		eth, ethText, ethDet = "2135-2", cdcRace[p.ethDet], []string{p.ethDet}
	}
	birthSex, sex, identity := "M", sexMale, identifiesMale
	if p.female {
		birthSex, sex, identity = "F", sexFemale, identifiesFemale
	}
	if p.nonbinary {
		identity = identifiesNonbinary
	}
	ext := []obj{
		ombExtension("us-core-race", p.race.omb, p.raceDet, raceText),
		ombExtension("us-core-ethnicity", eth, ethDet, ethText),
		{{"url", usCore + "us-core-birthsex"}, {"valueCode", birthSex}},
		{{"url", usCore + "us-core-sex"}, {"valueCode", sex}},
		{{"url", usCore + "us-core-genderIdentity"}, {"valueCodeableConcept", concept(identity)}},
	}
	mrn := strconv.Itoa(p.i+1) + "-" + strconv.FormatUint(c.g.seed, 10)
	names := []obj{{{"use", "official"}, {"text", p.fullName()}, {"family", p.family}, {"given", p.given}}}
	if p.female && p.marital == married && chance(r, 0.5) {
		maiden := pick(r, familyNames)
		if maiden != p.family {
			names = append(names, obj{{"use", "maiden"}, {"text", p.given[0] + " " + maiden}, {"family", maiden}, {"given", p.given},
				{"period", obj{{"end", date(p.birth.AddDate(between(r, 20, 35), 0, between(r, 0, 364)))}}}})
		}
	}
	lang := languages[p.lang]
	comm := []obj{{{"language", concept(code{sysLanguage, lang.tag, lang.display})}, {"preferred", true}}}
	if lang.tag != "en" && chance(r, 0.5) {
		comm = append(comm, obj{{"language", concept(code{sysLanguage, "en", "English"})}, {"preferred", false}})
	}
	phone := c.g.phone(r, c.site.city)
	tel := telecom(phone, "", "home")
	if p.age >= 16 {
		tel = append(tel, obj{{"system", "phone"}, {"value", c.g.phone(r, c.site.city)}, {"use", "mobile"}},
			obj{{"system", "email"}, {"value", c.email()}, {"use", "home"}})
	}
	body := obj{
		{"extension", ext},
		{"identifier", []obj{{
			{"use", "usual"}, {"type", concept(tho("v2-0203", "MR", "Medical record number"))},
			{"system", sysBase + "mrn"}, {"value", "SYN" + mrn},
			{"assigner", obj{{"display", c.site.name}}},
		}}},
		{"active", true},
		{"name", names},
		{"telecom", tel},
		{"gender", c.gender()},
		{"birthDate", date(p.birth)},
	}
	if !c.death.IsZero() {
		body.set("deceasedDateTime", dateTime(c.death))
	}
	body.set("address", []obj{c.homeAddress()})
	body.set("maritalStatus", concept(p.marital))
	body.set("contact", []obj{{
		{"relationship", concepts(c.contactRelationship())},
		{"name", obj{{"use", "official"}, {"family", p.family}, {"given", []string{c.contactGiven()}}}},
		{"telecom", telecom(phone, "", "home")},
	}})
	body.set("communication", comm)
	body.set("generalPractitioner", []obj{c.doctor()})
	body.set("managingOrganization", c.org())
	c.add("Patient", p.id, "us-core-patient", body)
}

// The contact is a parent for a child, else a spouse or grown child.
func (c *chart) contactRole() (role code, female bool) {
	r := c.g.chartRand(c.p.i ^ 1<<31)
	female = chance(r, 0.5)
	switch {
	case c.p.age < 18 && female:
		return roleMother, true
	case c.p.age < 18:
		return roleFather, false
	case c.p.marital == married:
		return roleSpouse, !c.p.female
	case female:
		return roleDau, true
	}
	return roleSon, false
}

func (c *chart) contactRelationship() code {
	if c.p.age < 18 {
		return nextOfKin
	}
	return emergContact
}

func (c *chart) contactGiven() string {
	r := c.g.chartRand(c.p.i ^ 1<<29)
	if _, female := c.contactRole(); female {
		return pick(r, femaleNames)
	}
	return pick(r, maleNames)
}

func (c *chart) relatedPerson() {
	role, female := c.contactRole()
	gender := "male"
	if female {
		gender = "female"
	}
	given := c.contactGiven()
	c.contactID = c.id("rp")
	c.add("RelatedPerson", c.contactID, "us-core-relatedperson", obj{
		{"active", true},
		{"patient", c.subject()},
		{"relationship", []obj{concept(role), concept(c.contactRelationship())}},
		{"name", []obj{{{"use", "official"}, {"text", given + " " + c.p.family}, {"family", c.p.family}, {"given", []string{given}}}}},
		{"telecom", telecom(c.g.phone(c.r, c.site.city), strings.ToLower(ascii.Replace(given+"."+c.p.family))+strconv.Itoa(c.p.i+1)+"@mail.example.org", "home")},
		{"gender", gender},
		{"address", []obj{c.homeAddress()}},
	})
}

// coverage adds the patient's health plan (US Core Coverage: member id,
// relationship to the subscriber, payer, group and plan classes).
func (c *chart) coverage() {
	r := c.r
	py := &c.g.dir.payers[c.p.payer]
	member := strings.ToUpper(py.id[len(py.id)-3:]) + digits(r, 9)
	subscriber, rel, subscriberID := c.subject(), relSelf, member
	if c.p.age < 18 && c.p.payer >= 2 {
		subscriber, rel, subscriberID = refd("RelatedPerson", c.contactID, c.contactGiven()+" "+c.p.family), relChild, member[:len(member)-2]+"01"
	} else if c.p.payer >= 2 && c.p.marital == married && chance(r, 0.3) {
		subscriber, rel, subscriberID = refd("RelatedPerson", c.contactID, c.contactGiven()+" "+c.p.family), relSpouse, member[:len(member)-2]+"01"
	}
	since := c.day(between(r, 400, 3000), 0, 0)
	span := obj{{"start", date(time.Date(since.Year(), since.Month(), 1, 0, 0, 0, 0, time.UTC))}}
	status := "active"
	if !c.death.IsZero() {
		status = "cancelled"
		span.set("end", date(c.death))
	}
	c.add("Coverage", c.id("coverage"), "us-core-coverage", obj{
		{"identifier", []obj{{
			{"type", concept(tho("v2-0203", "MB", "Member Number"))},
			{"system", sysBase + "member-id"}, {"value", member},
		}}},
		{"status", status},
		{"type", concept(py.kind)},
		{"subscriber", subscriber},
		{"subscriberId", subscriberID},
		{"beneficiary", c.subject()},
		{"relationship", concept(rel)},
		{"period", span},
		{"payor", []obj{refd("Organization", py.id, py.name)}},
		{"class", []obj{
			{{"type", concept(tho("coverage-class", "group", "Group"))}, {"value", py.plans[0][0]}, {"name", py.plans[0][1]}},
			{{"type", concept(tho("coverage-class", "plan", "Plan"))}, {"value", py.plans[1][0]}, {"name", py.plans[1][1]}},
		}},
	})
}

// encounters adds one Encounter per visit (US Core Encounter).
func (c *chart) encounters() {
	for _, v := range c.visits {
		when := period(v.start, v.end)
		class := classAMB
		types := []obj{}
		var reasonCode []obj
		var reasonRef []obj
		loc := c.site.clinic
		switch v.kind {
		case checkup:
			if c.p.age < 18 {
				types = append(types, concept(wellChild))
			} else {
				types = append(types, concept(checkUp))
			}
			types = append(types, concept(officeLow))
		case followup:
			types = append(types, concept(followUp), concept(officeEst))
			reasonCode = concepts(v.problem.snomed, v.problem.icd)
			reasonRef = []obj{ref("Condition", c.condID(v.problem))}
		case sick:
			types = append(types, concept(snomed("185345009", "Encounter for symptom (procedure)")), concept(officeLow))
			reasonCode = concepts(v.acute.symptom)
			reasonRef = []obj{ref("Condition", v.dx)}
		case edVisit:
			class, loc = classEMER, c.site.hospital
			types = append(types, concept(emergency), concept(erVisit))
			reasonCode = concepts(v.acute.symptom)
			reasonRef = []obj{ref("Condition", v.dx)}
		case inpatient:
			class, loc = classIMP, c.site.hospital
			types = append(types, concept(admission))
			reasonCode = concepts(v.problem.snomed, v.problem.icd)
			reasonRef = []obj{ref("Condition", c.condID(v.problem))}
		}
		body := obj{
			{"identifier", []obj{{{"system", sysBase + "encounter"}, {"value", "V" + c.p.id[len(c.g.prefix):] + "-" + strconv.Itoa(v.n)}}}},
			{"status", "finished"},
			{"class", class.coding()},
			{"type", types},
			{"subject", c.subject()},
			{"participant", []obj{{
				{"type", concepts(attender)},
				{"period", when},
				{"individual", c.doctor()},
			}}},
			{"period", when},
			{"reasonCode", reasonCode},
			{"reasonReference", reasonRef},
		}
		if v.hospital {
			body.set("hospitalization", obj{{"dischargeDisposition", concept(dischHome)}})
		}
		body.set("location", []obj{{{"location", ref("Location", loc)}, {"status", "completed"}, {"period", when}}})
		body.set("serviceProvider", c.org())
		c.add("Encounter", c.encID(v), "us-core-encounter", body)
	}
}

func (c *chart) condID(ch *chronic) string { return c.id("cond", ch.slug) }

func assertedDate(t time.Time) []obj {
	return []obj{{{"url", "http://hl7.org/fhir/StructureDefinition/condition-assertedDate"}, {"valueDateTime", date(t)}}}
}

var (
	clinicalActive   = tho("condition-clinical", "active", "Active")
	clinicalResolved = tho("condition-clinical", "resolved", "Resolved")
	confirmed        = tho("condition-ver-status", "confirmed", "Confirmed")
)

// conditions adds the problem list (long-term problems), the health
// concern and the diagnoses of sick, emergency and inpatient visits.
func (c *chart) conditions() {
	r := c.r
	for _, ch := range c.p.chronic {
		years := between(r, 1, max(1, min(25, c.p.age-1)))
		onset := c.day(365*years+r.IntN(300), 0, 0)
		if onset.Before(c.p.birth) {
			onset = c.p.birth.AddDate(0, 6, 0)
		}
		recorded := onset.AddDate(0, 0, between(r, 0, 30)).Add(10 * time.Hour)
		if recorded.After(anchor) {
			recorded = anchor.Add(-48 * time.Hour)
		}
		id := c.condID(ch)
		c.condIDs[ch.slug] = id
		body := obj{
			{"extension", assertedDate(recorded)},
			{"clinicalStatus", concept(clinicalActive)},
			{"verificationStatus", concept(confirmed)},
			{"category", concepts(catProblem)},
			{"code", concept(ch.snomed, ch.icd)},
			{"subject", c.subject()},
			{"onsetDateTime", date(onset)},
			{"recordedDate", dateTime(recorded)},
			{"recorder", c.doctor()},
			{"asserter", c.doctor()},
		}
		c.add("Condition", id, "us-core-condition-problems-health-concerns", body)
	}
	// A problem that was on the list and resolved (abatement), for some.
	if c.p.age >= 2 && chance(r, 0.3) {
		a := &acuteList[3] // upper respiratory infection
		onset := c.day(between(r, 1200, 2500), 0, 0)
		if onset.After(c.p.birth) {
			c.add("Condition", c.id("cond", "history", a.slug), "us-core-condition-problems-health-concerns", obj{
				{"extension", assertedDate(onset)},
				{"clinicalStatus", concept(clinicalResolved)},
				{"verificationStatus", concept(confirmed)},
				{"category", concepts(catProblem)},
				{"code", concept(a.snomed, a.icd)},
				{"subject", c.subject()},
				{"onsetDateTime", date(onset)},
				{"abatementDateTime", date(onset.AddDate(0, 0, a.days))},
				{"recordedDate", dateTime(onset.Add(11 * time.Hour))},
				{"recorder", c.doctor()},
			})
		}
	}
	// The health concern, raised at the last check-up.
	v := c.last(checkup)
	cat := concepts(catConcern)
	if c.p.concern.sdoh {
		cat = append(cat, concept(catSDOH))
	}
	at := v.start.Add(20 * time.Minute)
	c.add("Condition", c.id("cond", c.p.concern.slug), "us-core-condition-problems-health-concerns", obj{
		{"extension", assertedDate(at)},
		{"clinicalStatus", concept(clinicalActive)},
		{"verificationStatus", concept(confirmed)},
		{"category", cat},
		{"code", concept(c.p.concern.snomed, c.p.concern.icd)},
		{"subject", c.subject()},
		{"encounter", c.encounter(v)},
		{"onsetDateTime", date(at.AddDate(0, -between(r, 1, 18), 0))},
		{"recordedDate", dateTime(at)},
		{"recorder", c.doctor()},
		{"asserter", c.subject()},
	})
	for _, v := range c.visits {
		if v.dx == "" {
			continue
		}
		at := v.start.Add(40 * time.Minute)
		onset := v.start.AddDate(0, 0, -between(r, 1, 5))
		body := obj{
			{"extension", assertedDate(at)},
			{"clinicalStatus", concept(clinicalResolved)},
			{"verificationStatus", concept(confirmed)},
			{"category", concepts(catDiagnosis)},
			{"code", concept(v.acute.snomed, v.acute.icd)},
			{"subject", c.subject()},
			{"encounter", c.encounter(v)},
			{"onsetDateTime", date(onset)},
			{"abatementDateTime", date(v.start.AddDate(0, 0, v.acute.days))},
			{"recordedDate", dateTime(at)},
			{"recorder", c.doctor()},
			{"asserter", c.doctor()},
		}
		if end := v.start.AddDate(0, 0, v.acute.days); end.After(anchor) || (!c.death.IsZero() && end.After(c.death)) {
			body = slices.DeleteFunc(body, func(m member) bool { return m.k == "abatementDateTime" })
			body[1] = member{"clinicalStatus", concept(clinicalActive)}
		}
		c.add("Condition", v.dx, "us-core-condition-encounter-diagnosis", body)
	}
	for _, v := range c.visits {
		if v.kind != inpatient {
			continue
		}
		code, icd := snomed("195951007", "Acute exacerbation of chronic obstructive airways disease (disorder)"), icdCode("J44.1", "Chronic obstructive pulmonary disease with (acute) exacerbation")
		if v.problem.slug == "heart-failure" {
			code, icd = snomed("10633002", "Acute congestive heart failure (disorder)"), icdCode("I50.9", "Heart failure, unspecified")
		}
		v.dx = c.id("cond", "admission", strconv.Itoa(v.n))
		at := v.start.Add(2 * time.Hour)
		c.add("Condition", v.dx, "us-core-condition-encounter-diagnosis", obj{
			{"extension", assertedDate(at)},
			{"clinicalStatus", concept(clinicalResolved)},
			{"verificationStatus", concept(confirmed)},
			{"category", concepts(catDiagnosis)},
			{"code", concept(code, icd)},
			{"subject", c.subject()},
			{"encounter", c.encounter(v)},
			{"onsetDateTime", dateTime(v.start.Add(-18 * time.Hour))},
			{"abatementDateTime", dateTime(v.end)},
			{"recordedDate", dateTime(at)},
			{"recorder", c.doctor()},
		})
	}
}

func icdCode(c, display string) code { return icd(c, display) }

// allergies adds the patient's allergies, or a "no known allergy" record.
func (c *chart) allergies() {
	v := c.visits[0]
	recorded := v.start.Add(5 * time.Minute)
	if len(c.p.allergies) == 0 {
		c.add("AllergyIntolerance", c.id("allergy", "none-known"), "us-core-allergyintolerance", obj{
			{"clinicalStatus", concept(tho("allergyintolerance-clinical", "active", "Active"))},
			{"verificationStatus", concept(tho("allergyintolerance-verification", "confirmed", "Confirmed"))},
			{"code", concept(noKnownAllergy)},
			{"patient", c.subject()},
			{"encounter", c.encounter(v)},
			{"recordedDate", dateTime(recorded)},
			{"recorder", c.doctor()},
		})
		return
	}
	for _, k := range c.p.allergies {
		a := allergyList[k]
		onset := c.p.birth.AddDate(between(c.r, 1, max(1, c.p.age)), 0, 0)
		if onset.After(recorded) {
			onset = recorded.AddDate(0, 0, -30)
		}
		c.add("AllergyIntolerance", c.id("allergy", a.slug), "us-core-allergyintolerance", obj{
			{"clinicalStatus", concept(tho("allergyintolerance-clinical", "active", "Active"))},
			{"verificationStatus", concept(tho("allergyintolerance-verification", "confirmed", "Confirmed"))},
			{"type", a.kind},
			{"category", []string{a.category}},
			{"criticality", a.criticality},
			{"code", concept(a.code)},
			{"patient", c.subject()},
			{"encounter", c.encounter(v)},
			{"onsetDateTime", date(onset)},
			{"recordedDate", dateTime(recorded)},
			{"recorder", c.doctor()},
			{"reaction", []obj{{
				{"substance", concept(a.code)},
				{"manifestation", concepts(a.reaction)},
				{"severity", a.severity},
			}}},
		})
	}
}

// provenance adds who authored the patient's record and which
// organization sends it (US Core Provenance: author and transmitter),
// naming every resource of the chart as a target.
func (c *chart) provenance() {
	recorded := c.visits[len(c.visits)-1].end
	targets := c.targets
	c.builder.add("Provenance", c.id("provenance"), "us-core-provenance", obj{
		{"target", targets},
		{"recorded", dateTime(recorded)},
		{"agent", []obj{
			{
				{"type", concept(tho("provenance-participant-type", "author", "Author"))},
				{"who", c.doctor()},
				{"onBehalfOf", c.org()},
			},
			{
				{"type", concept(code{sysUSCoreCS + "us-core-provenance-participant-type", "transmitter", "Transmitter"})},
				{"who", c.org()},
				{"onBehalfOf", c.org()},
			},
		}},
	})
}
