package devdata

import "time"

// allergies adds the patient's allergies and intolerances (US Core
// AllergyIntolerance). A "no known allergy" record has a code and no
// type, category or reaction.
func (c *chart) allergies() {
	for _, a := range c.p.allergies {
		body := obj{
			"clinicalStatus":     concept(tho("allergyintolerance-clinical", "active", "Active")),
			"verificationStatus": concept(tho("allergyintolerance-verification", "confirmed", "Confirmed")),
			"code":               concept(a.code),
			"patient":            c.subject(),
			"encounter":          c.encounter(1),
			"recordedDate":       dateTime(c.starts[0].Add(5 * time.Minute)),
			"recorder":           c.doctor(),
		}
		if a.kind != "" {
			body["type"] = a.kind
			body["category"] = []string{a.category}
			body["criticality"] = a.criticality
		}
		if a.onset > 0 {
			body["onsetDateTime"] = date(daysAgo(a.onset, 0, 0, c.p.site.zone))
		}
		if a.reaction.code != "" {
			body["reaction"] = []obj{{
				"substance":     concept(a.code),
				"manifestation": concepts(a.reaction),
				"severity":      a.severity,
			}}
		}
		id := c.id("allergy", a.slug)
		c.add("AllergyIntolerance", id, "us-core-allergyintolerance", body)
		c.track("AllergyIntolerance", id)
	}
}

// medicationResource returns the body of the Medication resource with
// the given id (US Core Medication).
func medicationResource(id string) obj {
	switch id {
	case "med-metformin-er-500":
		return obj{
			"code":   concept(rxnorm("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet")),
			"status": "active",
			"ingredient": []obj{{
				"itemCodeableConcept": concept(rxnorm("6809", "metformin")),
				"isActive":            true,
				"strength": obj{
					"numerator":   quantity(500, "mg", "mg"),
					"denominator": quantity(1, "tablet", "{tbl}"),
				},
			}},
		}
	}
	panic("devdata: no Medication " + id)
}

// medication sets the drug of a request or dispense: a reference to a
// Medication resource when the order names one, else the RxNorm code.
func (c *chart) medication(body obj, m med) {
	if m.medication == "" {
		body["medicationCodeableConcept"] = concept(m.drug)
		return
	}
	if !c.added["Medication/"+m.medication] {
		c.add("Medication", m.medication, "us-core-medication", medicationResource(m.medication))
	}
	body["medicationReference"] = obj{"reference": "Medication/" + m.medication, "display": m.drug.display}
}

func dosage(m med) obj {
	route := snomed("26643006", "Oral route (qualifier value)")
	if m.inhaled {
		route = snomed("447694001", "Respiratory tract route (qualifier value)")
	}
	return obj{
		"sequence":        1,
		"text":            m.sig,
		"timing":          obj{"repeat": obj{"frequency": m.frequency, "period": m.period, "periodUnit": m.periodUnit}},
		"asNeededBoolean": m.asNeeded,
		"route":           concept(route),
		"doseAndRate": []obj{{
			"type":         concept(tho("dose-rate-type", "ordered", "Ordered")),
			"doseQuantity": quantity(m.dose, m.unit, m.ucum),
		}},
	}
}

// supply is the quantity dispensed per fill: whole inhalers for inhaled
// drugs, else doses' units.
func supply(m med) obj {
	if m.inhaled {
		return quantity(m.supply, "inhaler", "{inhaler}")
	}
	return quantity(m.supply, m.unit, m.ucum)
}

func days(n int) obj { return obj{"value": n, "unit": "days", "system": sysUCUM, "code": "d"} }

// medications adds the patient's prescriptions (US Core MedicationRequest)
// and, for those marked dispensed, the first fill (US Core
// MedicationDispense).
func (c *chart) medications() {
	for _, m := range c.p.meds {
		id := c.id("medrx", m.slug)
		authored := c.starts[m.visit-1].Add(25 * time.Minute)
		course := tho("medicationrequest-course-of-therapy", "continuous", "Continuous long term therapy")
		if m.repeats == 0 {
			course = tho("medicationrequest-course-of-therapy", "acute", "Short course (acute) therapy")
		}
		body := obj{
			"status":              m.status,
			"intent":              "order",
			"category":            concepts(tho("medicationrequest-category", "community", "Community")),
			"reportedBoolean":     false,
			"subject":             c.subject(),
			"encounter":           c.encounter(m.visit),
			"authoredOn":          dateTime(authored),
			"requester":           c.doctor(),
			"reasonReference":     refs("Condition", c.conditionID(m.reason)),
			"courseOfTherapyType": concept(course),
			"dosageInstruction":   []obj{dosage(m)},
			"dispenseRequest": obj{
				"numberOfRepeatsAllowed": m.repeats,
				"quantity":               supply(m),
				"expectedSupplyDuration": days(m.days),
			},
		}
		c.medication(body, m)
		c.add("MedicationRequest", id, "us-core-medicationrequest", body)
		c.track("MedicationRequest", id)
		if !m.dispensed {
			continue
		}
		handed := authored.Add(3 * time.Hour)
		dispense := obj{
			"status":                  "completed",
			"subject":                 c.subject(),
			"context":                 c.encounter(m.visit),
			"performer":               []obj{{"actor": ref("Organization", c.p.site.org)}},
			"authorizingPrescription": refs("MedicationRequest", id),
			"type":                    concept(tho("v3-ActCode", "FF", "First Fill")),
			"quantity":                supply(m),
			"daysSupply":              days(m.days),
			"whenPrepared":            dateTime(handed.Add(-time.Hour)),
			"whenHandedOver":          dateTime(handed),
			"dosageInstruction":       []obj{dosage(m)},
		}
		c.medication(dispense, m)
		c.add("MedicationDispense", c.id("meddisp", m.slug), "us-core-medicationdispense", dispense)
	}
}

// immunizations adds vaccinations given at a visit, vaccinations recorded
// from elsewhere (primarySource false) and declined ones (status not-done
// with a statusReason), per US Core Immunization.
func (c *chart) immunizations() {
	for _, im := range c.p.immunizations {
		body := obj{
			"vaccineCode": concept(im.vaccine),
			"patient":     c.subject(),
		}
		switch {
		case im.notDone.code != "":
			at := c.starts[im.visit-1].Add(30 * time.Minute)
			body["status"] = "not-done"
			body["statusReason"] = concept(im.notDone)
			body["encounter"] = c.encounter(im.visit)
			body["occurrenceDateTime"] = dateTime(at)
			body["recorded"] = dateTime(at)
			body["primarySource"] = true
		case im.visit == 0:
			body["status"] = "completed"
			body["occurrenceDateTime"] = date(daysAgo(im.daysAgo, 0, 0, c.p.site.zone))
			body["primarySource"] = false
			body["reportOrigin"] = concept(tho("immunization-origin", "record", "Written Record"))
		default:
			at := c.starts[im.visit-1].Add(30 * time.Minute)
			body["status"] = "completed"
			body["encounter"] = c.encounter(im.visit)
			body["occurrenceDateTime"] = dateTime(at)
			body["recorded"] = dateTime(at)
			body["primarySource"] = true
			body["location"] = ref("Location", c.location(im.visit))
			body["lotNumber"] = im.lot
			body["site"] = concept(tho("v3-ActSite", "LA", "left arm"))
			body["route"] = concept(tho("v3-RouteOfAdministration", "IM", "Injection, intramuscular"))
			body["doseQuantity"] = quantity(0.5, "mL", "mL")
			body["performer"] = []obj{{
				"function": concept(tho("v2-0443", "AP", "Administering Provider")),
				"actor":    c.doctor(),
			}}
		}
		id := c.id("imm", im.slug)
		c.add("Immunization", id, "us-core-immunization", body)
		c.track("Immunization", id)
	}
}
