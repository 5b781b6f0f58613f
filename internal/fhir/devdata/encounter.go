package devdata

import (
	"strconv"
	"time"
)

// encounters adds one Encounter per visit (US Core Encounter: class from
// v3 ActCode, SNOMED CT type, attending practitioner, location and the
// organization that provided the service).
func (c *chart) encounters() {
	p := c.p
	for i, v := range p.visits {
		n := i + 1
		when := period(c.starts[i], c.ends[i])
		body := obj{
			"identifier": []obj{{"system": sysMRN + "/encounters", "value": "V" + p.mrn + "-" + strconv.Itoa(n)}},
			"status":     "finished",
			"class":      code{sysTHO + "v3-ActCode", v.class, encClasses[v.class]}.coding(),
			"type":       concepts(v.kind),
			"subject":    c.subject(),
			"participant": []obj{{
				"type":       concepts(tho("v3-ParticipationType", "ATND", "attender")),
				"period":     when,
				"individual": c.doctor(),
			}},
			"period":          when,
			"location":        []obj{{"location": ref("Location", c.location(n)), "status": "completed", "period": when}},
			"serviceProvider": ref("Organization", p.site.org),
		}
		if v.reason.code != "" {
			body["reasonCode"] = concepts(v.reason)
		}
		if v.class != "AMB" {
			body["hospitalization"] = obj{"dischargeDisposition": concept(tho("discharge-disposition", "home", "Home"))}
		}
		c.add("Encounter", c.encounterID(n), "us-core-encounter", body)
	}
}

var conditionCategories = map[string]code{
	"problem-list-item":   tho("condition-category", "problem-list-item", "Problem List Item"),
	"encounter-diagnosis": tho("condition-category", "encounter-diagnosis", "Encounter Diagnosis"),
	"health-concern":      {sysUSCoreCS + "condition-category", "health-concern", "Health Concern"},
}

func (c *chart) conditionID(slug string) string { return c.id("cond", slug) }

// conditions adds the problem list, health concerns and encounter
// diagnoses (US Core Condition Problems and Health Concerns, and US Core
// Condition Encounter Diagnosis).
func (c *chart) conditions() {
	zone := c.p.site.zone
	for _, cd := range c.p.conditions {
		var onset, recorded time.Time
		profile := "us-core-condition-problems-health-concerns"
		body := obj{
			"verificationStatus": concept(tho("condition-ver-status", "confirmed", "Confirmed")),
			"category":           concepts(conditionCategories[cd.category]),
			"code":               concept(cd.code),
			"subject":            c.subject(),
			"recorder":           c.doctor(),
			"asserter":           c.doctor(),
		}
		if cd.category == "encounter-diagnosis" {
			profile = "us-core-condition-encounter-diagnosis"
			start := c.starts[cd.visit-1]
			onset = start.AddDate(0, 0, -cd.onset)
			recorded = start.Add(25 * time.Minute)
			body["encounter"] = c.encounter(cd.visit)
		} else {
			onset = daysAgo(cd.onset, 0, 0, zone)
			recorded = daysAgo(cd.onset-7, 10, 0, zone)
			for i, v := range c.p.visits {
				if v.daysAgo == cd.onset {
					recorded = c.starts[i].Add(25 * time.Minute)
				}
			}
		}
		if cd.span > 0 {
			body["onsetPeriod"] = obj{"start": date(onset.AddDate(0, 0, -cd.span)), "end": date(onset)}
		} else {
			body["onsetDateTime"] = date(onset)
		}
		status := tho("condition-clinical", "active", "Active")
		if cd.resolved > 0 {
			status = tho("condition-clinical", "resolved", "Resolved")
			base := onset
			if cd.category == "encounter-diagnosis" {
				base = c.starts[cd.visit-1]
			}
			body["abatementDateTime"] = date(base.AddDate(0, 0, cd.resolved))
		}
		body["clinicalStatus"] = concept(status)
		body["recordedDate"] = dateTime(recorded)
		body["extension"] = []obj{{"url": "http://hl7.org/fhir/StructureDefinition/condition-assertedDate", "valueDateTime": date(recorded)}}
		id := c.conditionID(cd.slug)
		c.add("Condition", id, profile, body)
		c.track("Condition", id)
	}
}
