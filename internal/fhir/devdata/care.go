package devdata

import (
	"html"
	"strings"
	"time"
)

// device adds the patient's implanted device (US Core Implantable Device:
// UDI carrier, type, patient).
func (c *chart) device() {
	d := c.p.device
	if d == nil {
		return
	}
	c.add("Device", c.id("device", d.slug), "us-core-implantable-device", obj{
		"udiCarrier": []obj{{
			"deviceIdentifier": d.di,
			"issuer":           "http://hl7.org/fhir/NamingSystem/gs1-di",
			"jurisdiction":     "http://hl7.org/fhir/NamingSystem/fda-udi",
			"carrierHRF":       d.hrf,
			"entryType":        "barcode",
		}},
		"status":             "active",
		"distinctIdentifier": d.di,
		"manufacturer":       d.manufacturer,
		"manufactureDate":    d.made,
		"expirationDate":     d.expires,
		"lotNumber":          d.lot,
		"serialNumber":       d.serial,
		"deviceName":         []obj{{"name": d.name, "type": "user-friendly-name"}},
		"modelNumber":        d.model,
		"type":               concept(d.kind),
		"patient":            c.subject(),
	})
}

// procedures adds the patient's procedures (US Core Procedure), during a
// visit or on a day of their own.
func (c *chart) procedures() {
	for _, pr := range c.p.procedures {
		body := obj{
			"status":  "completed",
			"code":    concept(pr.code),
			"subject": c.subject(),
			"performer": []obj{{
				"actor":      c.doctor(),
				"onBehalfOf": ref("Organization", c.p.site.org),
			}},
		}
		var at time.Time
		if pr.visit > 0 {
			at = c.starts[pr.visit-1].Add(time.Duration(pr.offset) * time.Minute)
			body["encounter"] = c.encounter(pr.visit)
			body["location"] = ref("Location", c.location(pr.visit))
		} else {
			at = daysAgo(pr.daysAgo, 9, 0, c.p.site.zone)
			body["location"] = ref("Location", c.p.site.hospital)
		}
		if pr.minutes > 0 {
			body["performedPeriod"] = period(at, at.Add(time.Duration(pr.minutes)*time.Minute))
		} else {
			body["performedDateTime"] = dateTime(at)
		}
		if pr.reason != "" {
			body["reasonReference"] = refs("Condition", c.conditionID(pr.reason))
		}
		if pr.device {
			body["focalDevice"] = []obj{{"manipulated": ref("Device", c.id("device", c.p.device.slug))}}
		}
		id := c.id("proc", pr.slug)
		c.add("Procedure", id, "us-core-procedure", body)
		c.track("Procedure", id)
	}
}

// goal adds the patient's goal (US Core Goal), with a measurable target
// where there is one.
func (c *chart) goal() {
	g := c.p.goal
	target := obj{"dueDate": date(anchor.AddDate(0, 0, g.due))}
	if g.measure.code != "" {
		target["measure"] = concept(g.measure)
		if g.low != 0 {
			target["detailRange"] = obj{"low": quantity(g.low, g.unit, g.ucum), "high": quantity(g.high, g.unit, g.ucum)}
		} else {
			q := quantity(g.high, g.unit, g.ucum)
			q["comparator"] = "<"
			target["detailQuantity"] = q
		}
	}
	body := obj{
		"lifecycleStatus": g.status,
		"description":     obj{"text": g.text},
		"subject":         c.subject(),
		"startDate":       date(c.starts[0]),
		"target":          []obj{target},
		"expressedBy":     c.doctor(),
		"addresses":       refs("Condition", c.conditionID(g.addresses)),
	}
	if g.status == "active" {
		body["achievementStatus"] = concept(tho("goal-achievement", "in-progress", "In Progress"))
	}
	if t, ok := c.deceased(); ok {
		body["statusDate"] = date(t)
		body["statusReason"] = "The patient died."
	}
	c.add("Goal", c.id("goal", g.slug), "us-core-goal", body)
}

// careTeam adds the patient's care team (US Core CareTeam): the
// practitioner, the patient and, for a child, the parent.
func (c *chart) careTeam() {
	participants := []obj{
		{"role": concepts(physician), "member": c.doctor(), "onBehalfOf": ref("Organization", c.p.site.org)},
		{"role": concepts(snomed("116154003", "Patient (person)")), "member": c.subject()},
	}
	if c.p.parent != nil {
		participants = append(participants, obj{
			"role":   concepts(snomed("133932002", "Caregiver (person)")),
			"member": ref("RelatedPerson", c.p.parent.id),
		})
	}
	status, span := c.span()
	if status == "completed" {
		status = "inactive"
	}
	c.add("CareTeam", c.id("careteam"), "us-core-careteam", obj{
		"status":               status,
		"name":                 "Primary care team for " + c.p.fullName(),
		"subject":              c.subject(),
		"period":               span,
		"participant":          participants,
		"managingOrganization": refs("Organization", c.p.site.org),
	})
}

// span is the status and period of the patient's care: active since the
// first visit, or completed on the day the patient died.
func (c *chart) span() (string, obj) {
	span := obj{"start": date(c.starts[0])}
	if t, ok := c.deceased(); ok {
		span["end"] = date(t)
		return "completed", span
	}
	return "active", span
}

// carePlan adds the patient's assessment and plan (US Core CarePlan, with
// the narrative the profile requires).
func (c *chart) carePlan() {
	var problems, lines []string
	for _, cd := range c.p.conditions {
		if cd.category != "encounter-diagnosis" {
			problems = append(problems, c.conditionID(cd.slug))
			lines = append(lines, "Assessment: "+cd.code.text())
		}
	}
	lines = append(lines, "Goal: "+c.p.goal.text)
	var activities []obj
	for _, m := range c.p.meds {
		if m.status == "active" || c.p.deceased != 0 {
			activities = append(activities, obj{"reference": ref("MedicationRequest", c.id("medrx", m.slug))})
			lines = append(lines, "Medication: "+m.drug.display+" ("+m.sig+")")
		}
	}
	title := "Care plan for " + c.p.fullName()
	var div strings.Builder
	div.WriteString(`<div xmlns="http://www.w3.org/1999/xhtml"><p><b>` + html.EscapeString(title) + `</b></p><ul>`)
	for _, l := range lines {
		div.WriteString("<li>" + html.EscapeString(l) + "</li>")
	}
	div.WriteString("</ul></div>")
	status, span := c.span()
	body := obj{
		"text":      obj{"status": "generated", "div": div.String()},
		"status":    status,
		"intent":    "plan",
		"category":  concepts(code{sysUSCoreCS + "careplan-category", "assess-plan", "Assessment and Plan of Treatment"}),
		"title":     title,
		"subject":   c.subject(),
		"period":    span,
		"created":   dateTime(c.starts[0].Add(35 * time.Minute)),
		"author":    c.doctor(),
		"careTeam":  refs("CareTeam", c.id("careteam")),
		"addresses": refs("Condition", problems...),
		"goal":      refs("Goal", c.id("goal", c.p.goal.slug)),
	}
	if len(activities) > 0 {
		body["activity"] = activities
	}
	c.add("CarePlan", c.id("careplan"), "us-core-careplan", body)
}

// phq2Answers are the LOINC answers of PHQ-2 items, by score.
var phq2Answers = []code{
	loinc("LA6568-5", "Not at all"),
	loinc("LA6569-3", "Several days"),
	loinc("LA6570-1", "More than half the days"),
	loinc("LA6571-9", "Nearly every day"),
}

// questionnaire adds the patient's PHQ-2 depression screen at the last
// outpatient visit (US Core QuestionnaireResponse; the questionnaire is
// LOINC's 55757-9, named by its canonical URL).
func (c *chart) questionnaire() {
	if len(c.p.phq2) == 0 {
		return
	}
	visit := 0
	for i, v := range c.p.visits {
		if v.class == "AMB" {
			visit = i + 1
		}
	}
	q1, q2 := c.p.phq2[0], c.p.phq2[1]
	c.add("QuestionnaireResponse", c.id("qr", "phq2"), "us-core-questionnaireresponse", obj{
		"questionnaire": "http://loinc.org/q/55757-9",
		"status":        "completed",
		"subject":       c.subject(),
		"encounter":     c.encounter(visit),
		"authored":      dateTime(c.starts[visit-1].Add(8 * time.Minute)),
		"author":        c.subject(),
		"source":        c.subject(),
		"item": []obj{
			{"linkId": "/44250-9", "text": "Little interest or pleasure in doing things",
				"answer": []obj{{"valueCoding": phq2Answers[q1].coding()}}},
			{"linkId": "/44255-8", "text": "Feeling down, depressed, or hopeless",
				"answer": []obj{{"valueCoding": phq2Answers[q2].coding()}}},
			{"linkId": "/55758-7", "text": "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]",
				"answer": []obj{{"valueInteger": q1 + q2}}},
		},
	})
}

// provenanceRecord adds who authored the patient's record and which
// organization sends it (US Core Provenance: author and transmitter).
func (c *chart) provenanceRecord() {
	last := c.last()
	c.add("Provenance", c.id("prov"), "us-core-provenance", obj{
		"target":   c.provenance,
		"recorded": dateTime(c.ends[last-1]),
		"agent": []obj{
			{
				"type":       concept(tho("provenance-participant-type", "author", "Author")),
				"who":        c.doctor(),
				"onBehalfOf": ref("Organization", c.p.site.org),
			},
			{
				"type": concept(code{sysUSCoreCS + "us-core-provenance-participant-type", "transmitter", "Transmitter"}),
				"who":  ref("Organization", c.p.site.org),
			},
		},
	})
}
