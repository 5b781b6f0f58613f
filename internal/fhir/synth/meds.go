package synth

import (
	"strconv"
	"time"
)

var (
	oralRoute    = snomed("26643006", "Oral route (qualifier value)")
	inhaledRoute = snomed("447694001", "Respiratory tract route (qualifier value)")
	ordered      = tho("dose-rate-type", "ordered", "Ordered")
	continuous   = tho("medicationrequest-course-of-therapy", "continuous", "Continuous long term therapy")
	acuteCourse  = tho("medicationrequest-course-of-therapy", "acute", "Short course (acute) therapy")
	firstFill    = tho("v3-ActCode", "FF", "First Fill")
	refill       = tho("v3-ActCode", "RF", "Refill")
)

func dosage(d *drug) obj {
	route := oralRoute
	if d.inhaled {
		route = inhaledRoute
	}
	return obj{
		{"sequence", 1},
		{"text", d.sig},
		{"timing", obj{{"repeat", obj{{"frequency", d.perDay}, {"period", 1}, {"periodUnit", "d"}}}}},
		{"asNeededBoolean", d.asNeeded},
		{"route", concept(route)},
		{"doseAndRate", []obj{{
			{"type", concept(ordered)},
			{"doseQuantity", quantity(d.dose, -1, d.per, d.perUCUM)},
		}}},
	}
}

// supply is the quantity dispensed per fill: whole inhalers for inhaled
// drugs, else doses' units.
func supply(d *drug) obj {
	if d.inhaled {
		return quantity(d.supply, -1, "inhaler", "{inhaler}")
	}
	return quantity(d.supply, -1, d.per, d.perUCUM)
}

func days(n int) obj { return obj{{"value", n}, {"unit", "days"}, {"system", sysUCUM}, {"code", "d"}} }

// medication is how a request or dispense names its drug: a reference to
// the shared Medication or the RxNorm code.
func (c *chart) medication(d *drug) member {
	if d.byReference {
		return member{"medicationReference", refd("Medication", c.g.medicationID(d), d.code.display)}
	}
	return member{"medicationCodeableConcept", concept(d.code)}
}

type prescription struct {
	d      *drug
	v      *visit
	reason string // Condition id
	long   bool
}

// medications adds the prescriptions (US Core MedicationRequest) of the
// long-term problems, written at the first visit, and of the illnesses
// diagnosed at visits, with their fills (US Core MedicationDispense).
func (c *chart) medications() {
	var rx []prescription
	seen := map[string]bool{}
	for _, ch := range c.p.chronic {
		for _, s := range ch.drugs {
			if seen[s] {
				continue
			}
			seen[s] = true
			rx = append(rx, prescription{drugBySlug(s), c.visits[0], c.condID(ch), true})
		}
	}
	for _, v := range c.visits {
		if v.acute != nil {
			rx = append(rx, prescription{drugBySlug(v.acute.drug), v, v.dx, false})
		}
	}
	for _, p := range rx {
		d, v := p.d, p.v
		// A long-term drug is prescribed once; an illness's drug per visit
		// (the same drug may be both).
		key := []string{d.slug}
		if !p.long {
			key = append(key, strconv.Itoa(v.n))
		}
		id := c.id(append([]string{"medrx"}, key...)...)
		authored := v.start.Add(25 * time.Minute)
		status, course := "completed", acuteCourse
		if p.long {
			status, course = "active", continuous
			if !c.death.IsZero() {
				status = "stopped"
			}
			c.activeRx = append(c.activeRx, id)
		}
		body := obj{
			{"status", status},
			{"intent", "order"},
			{"category", concepts(catCommunity)},
			{"reportedBoolean", false},
			c.medication(d),
			{"subject", c.subject()},
			{"encounter", c.encounter(v)},
			{"authoredOn", dateTime(authored)},
			{"requester", c.doctor()},
			{"reasonReference", []obj{ref("Condition", p.reason)}},
			{"courseOfTherapyType", concept(course)},
			{"dosageInstruction", []obj{dosage(d)}},
			{"dispenseRequest", obj{
				{"numberOfRepeatsAllowed", d.repeats},
				{"quantity", supply(d)},
				{"expectedSupplyDuration", days(d.days)},
			}},
		}
		c.add("MedicationRequest", id, "us-core-medicationrequest", body)
		fills := 1
		if p.long {
			fills = between(c.r, 1, 2)
		}
		handed := authored.Add(time.Duration(between(c.r, 60, 300)) * time.Minute)
		for f := range fills {
			kind := firstFill
			if f > 0 {
				kind = refill
				handed = handed.AddDate(0, 0, d.days-between(c.r, 0, 5))
			}
			if handed.After(anchor) || (!c.death.IsZero() && handed.After(c.death)) {
				break
			}
			c.add("MedicationDispense", c.id(append(append([]string{"meddisp"}, key...), strconv.Itoa(f+1))...), "us-core-medicationdispense", obj{
				{"status", "completed"},
				c.medication(d),
				{"subject", c.subject()},
				{"context", c.encounter(v)},
				{"performer", []obj{{{"actor", c.org()}}}},
				{"authorizingPrescription", []obj{ref("MedicationRequest", id)}},
				{"type", concept(kind)},
				{"quantity", supply(d)},
				{"daysSupply", days(d.days)},
				{"whenPrepared", dateTime(handed.Add(-45 * time.Minute))},
				{"whenHandedOver", dateTime(handed)},
				{"dosageInstruction", []obj{dosage(d)}},
			})
		}
	}
}

var (
	patientObjection = tho("v3-ActReason", "PATOBJ", "patient objection")
	leftArm          = tho("v3-ActSite", "LA", "left arm")
	intramuscular    = tho("v3-RouteOfAdministration", "IM", "Injection, intramuscular")
	administering    = tho("v2-0443", "AP", "Administering Provider")
	writtenRecord    = tho("immunization-origin", "record", "Written Record")
)

// immunizations adds the vaccines of each check-up: influenza every
// year (sometimes declined: status not-done with a statusReason) and, at
// the last check-up, the others the patient's age calls for; adults also
// have a Tdap given elsewhere on record (primarySource false).
func (c *chart) immunizations() {
	r := c.r
	lastCheckup := c.last(checkup)
	for _, v := range c.visits {
		if v.kind != checkup {
			continue
		}
		age := int(c.ageAt(v.start))
		for _, vc := range vaccines {
			if age < vc.minAge || age > vc.maxAge || (!vc.yearly && v != lastCheckup) {
				continue
			}
			at := v.start.Add(30 * time.Minute)
			id := c.id("imm", vc.slug, strconv.Itoa(v.n))
			body := obj{
				{"status", "completed"},
				{"vaccineCode", concept(vc.code)},
				{"patient", c.subject()},
				{"encounter", c.encounter(v)},
				{"occurrenceDateTime", dateTime(at)},
				{"recorded", dateTime(at)},
				{"primarySource", true},
			}
			if vc.yearly && chance(r, 0.08) {
				body[0] = member{"status", "not-done"}
				body = append(body[:1], append(obj{{"statusReason", concept(patientObjection)}}, body[1:]...)...)
				c.add("Immunization", id, "us-core-immunization", body)
				continue
			}
			body = append(body,
				member{"location", ref("Location", c.site.clinic)},
				member{"manufacturer", obj{{"display", "Acme Vaccines"}}},
				member{"lotNumber", "L" + digits(r, 6)},
				member{"expirationDate", date(at.AddDate(1, between(r, 0, 11), 0))},
				member{"site", concept(leftArm)},
				member{"route", concept(intramuscular)},
				member{"doseQuantity", quantity(0.5, 1, "mL", "mL")},
				member{"performer", []obj{{{"function", concept(administering)}, {"actor", c.doctor()}}}},
			)
			c.add("Immunization", id, "us-core-immunization", body)
		}
	}
	if c.p.age >= 25 {
		when := c.day(between(r, 1200, 3000), 0, 0)
		c.add("Immunization", c.id("imm", "tdap", "history"), "us-core-immunization", obj{
			{"status", "completed"},
			{"vaccineCode", concept(cvx("115", "Tdap"))},
			{"patient", c.subject()},
			{"occurrenceDateTime", date(when)},
			{"primarySource", false},
			{"reportOrigin", concept(writtenRecord)},
		})
	}
}
