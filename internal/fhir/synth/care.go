package synth

import (
	"crypto/sha1"
	"encoding/base64"
	"html"
	"strconv"
	"strings"
	"time"
)

// procedures adds the screening procedures of age (colonoscopy from 50,
// mammography for women from 40), an ECG at a cardiac follow-up, and the
// operations that placed the patient's devices, with the devices (US Core
// Implantable Device).
func (c *chart) procedures() {
	r := c.r
	proc := func(id string, codes []code, at time.Time, minutes int, v *visit, loc, reason string, extra ...member) {
		body := obj{
			{"status", "completed"},
			{"code", concept(codes...)},
			{"subject", c.subject()},
		}
		if v != nil {
			body.set("encounter", c.encounter(v))
		}
		if minutes > 0 {
			body.set("performedPeriod", period(at, at.Add(time.Duration(minutes)*time.Minute)))
		} else {
			body.set("performedDateTime", dateTime(at))
		}
		body.set("performer", []obj{{{"actor", c.doctor()}, {"onBehalfOf", c.org()}}})
		body.set("location", ref("Location", loc))
		if reason != "" {
			body.set("reasonReference", []obj{ref("Condition", reason)})
		}
		body = append(body, extra...)
		c.add("Procedure", id, "us-core-procedure", body)
	}
	if c.p.age >= 50 && chance(r, 0.6) {
		proc(c.id("proc", "colonoscopy"), []code{colonoscopy, colonCPT}, c.day(between(r, 200, 3000), between(r, 7, 11), 0), 40, nil, c.site.hospital, "")
	}
	if c.p.female && c.p.age >= 40 && chance(r, 0.7) {
		proc(c.id("proc", "mammography"), []code{mammography, mammoCPT}, c.day(between(r, 30, 700), between(r, 8, 15), 30), 0, nil, c.site.clinic, "")
	}
	for _, v := range c.visits {
		if v.kind == followup && (v.problem.slug == "afib" || v.problem.slug == "heart-failure" || v.problem.slug == "cad") {
			proc(c.id("proc", "ecg", strconv.Itoa(v.n)), []code{ecg, ecgCPT}, v.start.Add(12*time.Minute), 0, v, c.site.clinic, c.condID(v.problem))
		}
	}
	for _, slug := range c.p.devices {
		d := devices[slug]
		years := between(r, 1, 8)
		placed := c.day(365*years+r.IntN(300), between(r, 7, 12), 0)
		if placed.Before(c.p.birth.AddDate(30, 0, 0)) {
			placed = c.day(400, 9, 0)
		}
		made := placed.AddDate(0, -between(r, 2, 10), -between(r, 0, 27))
		expires := made.AddDate(d.years, 0, 0)
		di := gtin(r)
		lot, serial := strings.ToUpper(d.slug[:2])+digits(r, 5), digits(r, 10)
		devID := c.id("device", d.slug)
		c.add("Device", devID, "us-core-implantable-device", obj{
			{"udiCarrier", []obj{{
				{"deviceIdentifier", di},
				{"issuer", "http://hl7.org/fhir/NamingSystem/gs1-di"},
				{"jurisdiction", "http://hl7.org/fhir/NamingSystem/fda-udi"},
				{"carrierHRF", "(01)" + di + "(11)" + made.Format("060102") + "(17)" + expires.Format("060102") + "(10)" + lot + "(21)" + serial},
				{"entryType", "barcode"},
			}}},
			{"distinctIdentifier", di},
			{"status", "active"},
			{"manufacturer", d.manufacturer},
			{"manufactureDate", date(made)},
			{"expirationDate", date(expires)},
			{"lotNumber", lot},
			{"serialNumber", serial},
			{"deviceName", []obj{{{"name", d.name}, {"type", "user-friendly-name"}}}},
			{"modelNumber", d.model},
			{"type", concept(d.kind)},
			{"patient", c.subject()},
		})
		reason := ""
		for _, ch := range c.p.chronic {
			if ch.device == slug {
				reason = c.condID(ch)
			}
		}
		proc(c.id("proc", d.slug), []code{d.procedure, d.procedureCPT}, placed, between(r, 60, 150), nil, c.site.hospital, reason,
			member{"focalDevice", []obj{{{"manipulated", ref("Device", devID)}}}})
	}
}

// gtin is a GS1 GTIN-14 with its check digit (the UDI device identifier).
func gtin(r rng) string {
	s := "0" + "0614141" + digits(r, 5)
	sum := 0
	for i := 0; i < 13; i++ {
		d := int(s[i] - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return s + strconv.Itoa((10-sum%10)%10)
}

// onePixelPNG is the image of the chest X-ray Media: a valid PNG (1x1
// grey), enough for clients that render the attachment.
const onePixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg=="

// imaging adds the chest X-ray of the emergency visit: the order, the
// procedure, the finding (US Core Observation Clinical Result, category
// imaging), the image (a contained Media) and the report (US Core DiagnosticReport
// for Report and Note Exchange, with the report text as presentedForm).
func (c *chart) imaging() {
	v := c.last(edVisit)
	r := c.r
	n := strconv.Itoa(v.n)
	rad := c.specialist(specRadiology)
	ordered := v.start.Add(20 * time.Minute)
	taken := v.start.Add(50 * time.Minute)
	read := taken.Add(time.Duration(between(r, 30, 90)) * time.Minute)
	srID, obsID, drID := c.id("sr", "cxr", n), c.id("obs", "cxr", n), c.id("dr", "cxr", n)
	c.add("ServiceRequest", srID, "us-core-servicerequest", obj{
		{"status", "completed"},
		{"intent", "order"},
		{"category", concepts(catImgOrder)},
		{"code", concept(chestXRay, chestXRayCPT)},
		{"subject", c.subject()},
		{"encounter", c.encounter(v)},
		{"occurrenceDateTime", dateTime(taken)},
		{"authoredOn", dateTime(ordered)},
		{"requester", c.doctor()},
		{"reasonReference", []obj{ref("Condition", v.dx)}},
	})
	c.add("Procedure", c.id("proc", "cxr", n), "us-core-procedure", obj{
		{"basedOn", []obj{ref("ServiceRequest", srID)}},
		{"status", "completed"},
		{"code", concept(chestXRay, chestXRayCPT)},
		{"subject", c.subject()},
		{"encounter", c.encounter(v)},
		{"performedPeriod", period(taken, taken.Add(10*time.Minute))},
		{"performer", []obj{{{"actor", refd("Practitioner", rad.id, rad.name())}, {"onBehalfOf", c.org()}}}},
		{"location", ref("Location", c.site.hospital)},
		{"reasonReference", []obj{ref("Condition", v.dx)}},
	})
	finding := "No acute cardiopulmonary process. Heart size is normal. Lungs are clear."
	if v.acute.slug == "bronchitis" {
		finding = "Mild peribronchial thickening, consistent with bronchitis. No focal consolidation."
	}
	if c.p.has("heart-failure") {
		finding = "Mild cardiomegaly with small bilateral pleural effusions. No focal consolidation."
	}
	value := member{"valueString", finding}
	if chance(r, 0.05) {
		finding = "Non-diagnostic study: the images are under-penetrated. Repeat the study if clinically indicated."
		value = member{"dataAbsentReason", dataAbsent("error", "Error")}
	}
	c.add("Observation", obsID, "us-core-observation-clinical-result", obj{
		{"status", "final"},
		{"category", concepts(catImaging)},
		{"code", concept(xrayFinding)},
		{"subject", c.subject()},
		{"encounter", c.encounter(v)},
		{"effectiveDateTime", dateTime(taken)},
		{"issued", dateTime(read)},
		{"performer", []obj{refd("Practitioner", rad.id, rad.name())}},
		value,
	})
	report := "CHEST X-RAY, 2 VIEWS\nPatient: " + c.p.fullName() + "\nIndication: " + v.acute.symptom.text() + "\n\nFindings: " + finding +
		"\n\nImpression: " + strings.SplitN(finding, ".", 2)[0] + ".\n\nRead by " + rad.name() + " on " + read.Format(time.DateTime) + "\n"
	// The image, contained in the report (this server does not serve Media
	// on its own).
	image := obj{
		{"resourceType", "Media"},
		{"id", "image"},
		{"basedOn", []obj{ref("ServiceRequest", srID)}},
		{"status", "completed"},
		{"type", concept(tho("media-type", "image", "Image"))},
		{"view", concept(snomed("399348003", "Anteroposterior (qualifier value)"))},
		{"subject", c.subject()},
		{"encounter", c.encounter(v)},
		{"createdDateTime", dateTime(taken)},
		{"operator", refd("Practitioner", rad.id, rad.name())},
		{"content", obj{{"contentType", "image/png"}, {"data", onePixelPNG}, {"title", "Chest X-ray, " + date(taken)}}},
	}
	c.add("DiagnosticReport", drID, "us-core-diagnosticreport-note", obj{
		{"contained", []obj{image}},
		{"basedOn", []obj{ref("ServiceRequest", srID)}},
		{"status", "final"},
		{"category", concepts(catRadiology)},
		{"code", concept(xrayReport)},
		{"subject", c.subject()},
		{"encounter", c.encounter(v)},
		{"effectiveDateTime", dateTime(taken)},
		{"issued", dateTime(read)},
		{"performer", []obj{refd("Practitioner", rad.id, rad.name())}},
		{"resultsInterpreter", []obj{refd("Practitioner", rad.id, rad.name())}},
		{"result", []obj{ref("Observation", obsID)}},
		{"media", []obj{{{"comment", "Chest X-ray image"}, {"link", obj{{"reference", "#image"}}}}}},
		{"conclusion", strings.SplitN(finding, ".", 2)[0] + "."},
		{"presentedForm", []obj{attachment([]byte(report), "Chest X-ray report, "+date(read), read, true)}},
	})
}

// noteContentType is the media type of notes: plain text, its charset
// stated (the default of text/plain is US-ASCII, RFC 6657).
const noteContentType = "text/plain; charset=utf-8"

// attachment describes text: type, size, SHA-1 hash, title and creation,
// and the text itself when inline.
func attachment(text []byte, title string, created time.Time, inline bool) obj {
	sum := sha1.Sum(text)
	a := obj{{"contentType", noteContentType}, {"language", "en"}}
	if inline {
		a.set("data", base64.StdEncoding.EncodeToString(text))
	}
	return append(a, member{"size", len(text)}, member{"hash", base64.StdEncoding.EncodeToString(sum[:])},
		member{"title", title}, member{"creation", dateTime(created)})
}

// notes adds the clinical notes (US Core DocumentReference, category
// clinical-note): a progress note of the last check-up and a discharge
// summary of a hospital stay, each pointing at a Binary that holds the
// text (whose securityContext is the DocumentReference), and the note of
// the emergency visit with the text inline.
func (c *chart) notes() {
	type note struct {
		kind   code
		v      *visit
		inline bool
	}
	notes := []note{{progressNote, c.last(checkup), false}, {edNote, c.last(edVisit), true}}
	if v := c.last(inpatient); v != nil {
		notes = append(notes, note{dischargeNote, v, false})
	}
	for _, nt := range notes {
		v := nt.v
		n := strconv.Itoa(v.n)
		slug := slug(nt.kind.display)
		docID, binID := c.id("docref", slug, n), c.id("bin", slug, n)
		text := []byte(c.noteText(nt.kind, v))
		title := nt.kind.display + ", " + date(v.start)
		att := attachment(text, title, v.end, nt.inline)
		if !nt.inline {
			att = append(att[:2], append(obj{{"url", "Binary/" + binID}}, att[2:]...)...)
		}
		c.add("DocumentReference", docID, "us-core-documentreference", obj{
			{"identifier", []obj{{{"system", sysBase + "document"}, {"value", strings.ToUpper(strings.TrimPrefix(docID, c.g.prefix))}}}},
			{"status", "current"},
			{"docStatus", "final"},
			{"type", concept(nt.kind)},
			{"category", concepts(catClinical)},
			{"subject", c.subject()},
			{"date", dateTime(v.end)},
			{"author", []obj{c.doctor()}},
			{"custodian", c.org()},
			{"description", title},
			{"content", []obj{{
				{"attachment", att},
				{"format", code{sysFormat, "urn:ihe:iti:xds:2017:mimeTypeSufficient", "mimeType Sufficient"}.coding()},
			}}},
			{"context", obj{
				{"encounter", []obj{c.encounter(v)}},
				{"period", period(v.start, v.end)},
			}},
		})
		if !nt.inline {
			c.add("Binary", binID, "", obj{
				{"contentType", noteContentType},
				{"securityContext", ref("DocumentReference", docID)},
				{"data", base64.StdEncoding.EncodeToString(text)},
			})
		}
	}
}

// noteText writes a note from the chart, so it agrees with the coded data.
func (c *chart) noteText(kind code, v *visit) string {
	p := c.p
	var b strings.Builder
	line := func(s ...string) { b.WriteString(strings.Join(s, "") + "\n") }
	line(strings.ToUpper(kind.display))
	line("Patient: ", p.fullName(), "   Date of birth: ", date(p.birth))
	line("Clinician: ", c.doc.name(), "   ", c.site.name)
	line("Date of service: ", v.start.Format(time.DateTime))
	switch {
	case v.acute != nil:
		line("Reason for visit: ", v.acute.symptom.text())
	case v.problem != nil:
		line("Reason for visit: ", v.problem.snomed.text())
	default:
		line("Reason for visit: routine check-up")
	}
	line()
	line("Assessment:")
	for _, ch := range p.chronic {
		line("- ", ch.snomed.text())
	}
	if v.acute != nil {
		line("- ", v.acute.snomed.text())
	}
	if len(p.chronic) == 0 && v.acute == nil {
		line("- Healthy; no active problems.")
	}
	line()
	line("Allergies:")
	if len(p.allergies) == 0 {
		line("- No known allergies.")
	}
	for _, k := range p.allergies {
		a := allergyList[k]
		line("- ", a.code.text(), " (reaction: ", a.reaction.text(), ", ", a.severity, ")")
	}
	line()
	line("Plan:")
	for _, ch := range p.chronic {
		if ch.goal.text != "" {
			line("- ", ch.goal.text, ".")
		}
	}
	line("- Follow up in clinic in three months, sooner if symptoms worsen.")
	line()
	line("Electronically signed by ", c.doc.name(), " on ", v.end.Format(time.DateTime))
	return b.String()
}

// goals adds a goal per long-term problem (at most three), or a healthy
// weight goal (US Core Goal, with a measurable target where there is one).
func (c *chart) goals() {
	start := c.visits[0].start
	specs := []struct {
		g      goalSpec
		reason string
		slug   string
	}{}
	for _, ch := range c.p.chronic {
		if len(specs) < 3 {
			specs = append(specs, struct {
				g      goalSpec
				reason string
				slug   string
			}{ch.goal, c.condID(ch), ch.slug})
		}
	}
	if len(specs) == 0 {
		specs = append(specs, struct {
			g      goalSpec
			reason string
			slug   string
		}{goalSpec{text: "Stay active: 60 minutes of physical activity a day"}, "", "activity"})
	}
	for _, s := range specs {
		target := obj{}
		if s.g.measure.code != "" {
			target.set("measure", concept(s.g.measure))
			if s.g.low != 0 {
				target.set("detailRange", obj{{"low", quantity(s.g.low, s.g.places, s.g.unit, s.g.ucum)}, {"high", quantity(s.g.high, s.g.places, s.g.unit, s.g.ucum)}})
			} else {
				q := quantity(s.g.high, s.g.places, s.g.unit, s.g.ucum)
				target.set("detailQuantity", append(q[:1], append(obj{{"comparator", "<"}}, q[1:]...)...))
			}
		}
		target.set("dueDate", date(anchor.AddDate(0, between(c.r, 3, 12), 0)))
		status, achievement := "active", tho("goal-achievement", "in-progress", "In Progress")
		body := obj{
			{"lifecycleStatus", status},
			{"achievementStatus", concept(achievement)},
			{"description", obj{{"text", s.g.text}}},
			{"subject", c.subject()},
			{"startDate", date(start)},
			{"target", []obj{target}},
		}
		if !c.death.IsZero() {
			body[0] = member{"lifecycleStatus", "cancelled"}
			body = append(body, member{"statusDate", date(c.death)}, member{"statusReason", "The patient died."})
		}
		body = append(body, member{"expressedBy", c.doctor()})
		if s.reason != "" {
			body = append(body, member{"addresses", []obj{ref("Condition", s.reason)}})
		}
		id := c.id("goal", s.slug)
		c.goalIDs = append(c.goalIDs, id)
		c.add("Goal", id, "us-core-goal", body)
	}
}

// span is the status and period of the patient's care.
func (c *chart) span() (string, obj) {
	s := obj{{"start", date(c.visits[0].start)}}
	if !c.death.IsZero() {
		s.set("end", date(c.death))
		return "completed", s
	}
	return "active", s
}

// careTeam adds the care team (US Core CareTeam): the primary care
// physician, a cardiologist for heart problems, the patient and the
// contact (caregiver of a child or an older adult).
func (c *chart) careTeam() {
	members := []obj{
		{{"role", concepts(physician)}, {"member", c.doctor()}, {"onBehalfOf", c.org()}},
	}
	if c.p.has("afib") || c.p.has("heart-failure") || c.p.has("cad") {
		cardio := c.specialist(specCardiology)
		members = append(members, obj{{"role", concepts(physician)}, {"member", refd("Practitioner", cardio.id, cardio.name())}, {"onBehalfOf", c.org()}})
	}
	members = append(members, obj{{"role", concepts(patientRol)}, {"member", c.subject()}})
	if c.p.age < 18 || c.p.age >= 75 {
		members = append(members, obj{{"role", concepts(caregiver)}, {"member", refd("RelatedPerson", c.contactID, c.contactGiven()+" "+c.p.family)}})
	}
	status, span := c.span()
	if status == "completed" {
		status = "inactive"
	}
	c.add("CareTeam", c.id("careteam"), "us-core-careteam", obj{
		{"status", status},
		{"name", "Care team of " + c.p.fullName()},
		{"subject", c.subject()},
		{"period", span},
		{"participant", members},
		{"managingOrganization", []obj{c.org()}},
	})
}

// carePlan adds the assessment and plan (US Core CarePlan, with the
// narrative the profile requires).
func (c *chart) carePlan() {
	var lines []string
	var addresses []obj
	for _, ch := range c.p.chronic {
		lines = append(lines, "Assessment: "+ch.snomed.text())
		addresses = append(addresses, ref("Condition", c.condID(ch)))
	}
	lines = append(lines, "Health concern: "+c.p.concern.snomed.text())
	addresses = append(addresses, ref("Condition", c.id("cond", c.p.concern.slug)))
	var activities []obj
	for _, id := range c.activeRx {
		activities = append(activities, obj{{"reference", ref("MedicationRequest", id)}})
	}
	for _, ch := range c.p.chronic {
		for _, s := range ch.drugs {
			lines = append(lines, "Medication: "+drugBySlug(s).code.display+" ("+drugBySlug(s).sig+")")
		}
	}
	title := "Care plan of " + c.p.fullName()
	var div strings.Builder
	div.WriteString(`<div xmlns="http://www.w3.org/1999/xhtml"><p><b>` + html.EscapeString(title) + `</b></p><ul>`)
	for _, l := range lines {
		div.WriteString("<li>" + html.EscapeString(l) + "</li>")
	}
	div.WriteString("</ul></div>")
	status, span := c.span()
	goals := make([]obj, len(c.goalIDs))
	for k, id := range c.goalIDs {
		goals[k] = ref("Goal", id)
	}
	c.add("CarePlan", c.id("careplan"), "us-core-careplan", obj{
		{"text", obj{{"status", "generated"}, {"div", div.String()}}},
		{"status", status},
		{"intent", "plan"},
		{"category", concepts(catAssessPlan)},
		{"title", title},
		{"subject", c.subject()},
		{"period", span},
		{"created", dateTime(c.visits[0].start.Add(35 * time.Minute))},
		{"author", c.doctor()},
		{"careTeam", []obj{ref("CareTeam", c.id("careteam"))}},
		{"addresses", addresses},
		{"goal", goals},
		{"activity", activities},
	})
}
