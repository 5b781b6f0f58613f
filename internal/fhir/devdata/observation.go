package devdata

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// vitalSign is one US Core vital signs profile: its LOINC code(s) and the
// UCUM unit the profile fixes.
type vitalSign struct {
	suffix, profile string
	codes           []code
	unit, ucum      string
	places          int
}

var (
	bloodPressure = loinc("85354-9", "Blood pressure panel with all children optional")
	systolic      = loinc("8480-6", "Systolic blood pressure")
	diastolic     = loinc("8462-4", "Diastolic blood pressure")

	heartRate = vitalSign{"heart-rate", "us-core-heart-rate", []code{loinc("8867-4", "Heart rate")}, "beats/minute", "/min", 0}
	respRate  = vitalSign{"resp-rate", "us-core-respiratory-rate", []code{loinc("9279-1", "Respiratory rate")}, "breaths/minute", "/min", 0}
	bodyTemp  = vitalSign{"temp", "us-core-body-temperature", []code{loinc("8310-5", "Body temperature")}, "°C", "Cel", 1}
	pulseOx   = vitalSign{"spo2", "us-core-pulse-oximetry", []code{
		loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
		loinc("2708-6", "Oxygen saturation in Arterial blood"),
	}, "%", "%", 0}
	bodyWeight = vitalSign{"weight", "us-core-body-weight", []code{loinc("29463-7", "Body weight")}, "kg", "kg", 1}
	bodyHeight = vitalSign{"height", "us-core-body-height", []code{loinc("8302-2", "Body height")}, "cm", "cm", 1}
	bodyMass   = vitalSign{"bmi", "us-core-bmi", []code{loinc("39156-5", "Body mass index (BMI) [Ratio]")}, "kg/m2", "kg/m2", 1}
)

// vary returns base moved by up to spread either way.
func (c *chart) vary(base, spread float64) float64 {
	return base + (c.rng.Float64()*2-1)*spread
}

// observation is the part every Observation of a visit shares.
func (c *chart) observation(category code, visit int, effective time.Time) obj {
	return obj{
		"status":            "final",
		"category":          concepts(category),
		"subject":           c.subject(),
		"encounter":         c.encounter(visit),
		"effectiveDateTime": dateTime(effective),
	}
}

var vitalSignsCategory = tho("observation-category", "vital-signs", "Vital Signs")

func dataAbsent(c, display string) obj {
	return concept(tho("data-absent-reason", c, display))
}

// vitalSigns adds a full set of vital signs at every visit, each per its
// US Core vital signs profile. A height not measured is recorded with a
// dataAbsentReason, and the BMI then uses the previous visit's height.
func (c *chart) vitalSigns() {
	vs := c.p.vitals
	var height float64
	var heightID string
	for i, v := range c.p.visits {
		n := i + 1
		at := c.starts[i].Add(10 * time.Minute)
		years := float64(v.daysAgo) / 365.25
		measured := round(c.vary(vs.height-vs.growthHeight*years, 0.4), 1)
		weight := round(c.vary(vs.weight-vs.growthWeight*years, vs.weight*0.015), 1)
		spo2 := math.Min(100, math.Round(c.vary(vs.spo2, 1)))

		bp := c.observation(vitalSignsCategory, n, at)
		bp["code"] = concept(bloodPressure)
		bp["performer"] = []obj{c.doctor()}
		dia := obj{"code": concept(diastolic), "valueQuantity": quantity(math.Round(c.vary(vs.diastolic, 4)), "mmHg", "mm[Hg]")}
		if vs.noDiastolic == n {
			dia = obj{"code": concept(diastolic), "dataAbsentReason": dataAbsent("error", "Error")}
		}
		bp["component"] = []obj{
			{"code": concept(systolic), "valueQuantity": quantity(math.Round(c.vary(vs.systolic, 6)), "mmHg", "mm[Hg]")},
			dia,
		}
		c.add("Observation", c.id("obs", "bp", strconv.Itoa(n)), "us-core-blood-pressure", bp)

		c.vital(heartRate, n, at, math.Round(c.vary(vs.pulse, 6)), nil)
		c.vital(respRate, n, at, math.Round(c.vary(vs.resp, 2)), nil)
		c.vital(bodyTemp, n, at, round(c.vary(vs.temp, 0.3), 1), nil)
		ox := c.vital(pulseOx, n, at, spo2, nil)
		if vs.oxygen == n {
			ox["component"] = []obj{
				{"code": concept(loinc("3151-8", "Inhaled oxygen flow rate")), "valueQuantity": quantity(vs.flow, "L/min", "L/min")},
				{"code": concept(loinc("3150-0", "Inhaled oxygen concentration")), "valueQuantity": quantity(vs.fiO2, "%", "%")},
			}
		}
		c.vital(bodyWeight, n, at, weight, nil)
		h := c.vital(bodyHeight, n, at, measured, nil)
		if vs.noHeight == n {
			delete(h, "valueQuantity")
			h["dataAbsentReason"] = dataAbsent("not-performed", "Not Performed")
		} else {
			height, heightID = measured, c.vitalID(bodyHeight, n)
		}
		c.vital(bodyMass, n, at, round(weight/math.Pow(height/100, 2), 1), []string{c.vitalID(bodyWeight, n), heightID})
	}
}

// vital adds one single-value vital sign and returns its body, which the
// caller may still change. derivedFrom names the Observations it was
// computed from.
func (c *chart) vital(s vitalSign, visit int, at time.Time, value float64, derivedFrom []string) obj {
	o := c.observation(vitalSignsCategory, visit, at)
	o["code"] = concept(s.codes...)
	o["performer"] = []obj{c.doctor()}
	o["valueQuantity"] = quantity(round(value, s.places), s.unit, s.ucum)
	if len(derivedFrom) > 0 {
		o["derivedFrom"] = refs("Observation", derivedFrom...)
	}
	c.add("Observation", c.vitalID(s, visit), s.profile, o)
	return o
}

func (c *chart) vitalID(s vitalSign, visit int) string {
	return c.id("obs", s.suffix, strconv.Itoa(visit))
}

// labs adds, per order, the ServiceRequest, the Specimen, one Observation
// per test (US Core Laboratory Result Observation, with reference range
// and interpretation) and the DiagnosticReport that lists them (US Core
// DiagnosticReport for Laboratory Results Reporting).
func (c *chart) labs() {
	for _, o := range c.p.labs {
		panel := labPanels[o.panel]
		n := strconv.Itoa(o.visit)
		start := c.starts[o.visit-1]
		ordered, collected := start.Add(15*time.Minute), start.Add(35*time.Minute)
		issued := collected.Add(3 * time.Hour)
		srID, spmID, drID := c.id("sr", o.panel, n), c.id("spm", o.panel, n), c.id("dr", o.panel, n)

		c.add("ServiceRequest", srID, "us-core-servicerequest", obj{
			"status":             "completed",
			"intent":             "order",
			"category":           concepts(snomed("108252007", "Laboratory procedure")),
			"code":               concept(panel.code),
			"subject":            c.subject(),
			"encounter":          c.encounter(o.visit),
			"occurrenceDateTime": dateTime(collected),
			"authoredOn":         dateTime(ordered),
			"requester":          c.doctor(),
			"performer":          refs("Organization", c.p.site.org),
		})
		c.add("Specimen", spmID, "us-core-specimen", obj{
			"accessionIdentifier": obj{"system": sysMRN + "/accession", "value": strings.ToUpper(spmID[len("spm-"):])},
			"status":              "available",
			"type":                concept(panel.specimen),
			"subject":             c.subject(),
			"receivedTime":        dateTime(collected.Add(20 * time.Minute)),
			"request":             refs("ServiceRequest", srID),
			"collection":          obj{"collector": c.doctor(), "collectedDateTime": dateTime(collected)},
		})

		var results []string
		var abnormal []string
		for _, slug := range panel.tests {
			t := labTests[slug]
			obs := c.observation(tho("observation-category", "laboratory", "Laboratory"), o.visit, collected)
			obs["code"] = concept(t.code)
			obs["issued"] = dateTime(issued)
			obs["performer"] = refs("Organization", c.p.site.org)
			obs["referenceRange"] = []obj{referenceRange(t)}
			obs["specimen"] = ref("Specimen", spmID)
			obs["basedOn"] = refs("ServiceRequest", srID)
			v, ok := o.values[slug]
			if !ok {
				v = c.vary(t.normal, t.spread)
			}
			v = round(v, t.places)
			switch flag := interpretation(t, v); {
			case slug == o.failed:
				obs["dataAbsentReason"] = dataAbsent("error", "Error")
				obs["note"] = []obj{{"text": "Specimen hemolyzed; result not reported."}}
				abnormal = append(abnormal, t.code.display+" not reported (specimen hemolyzed)")
			default:
				if flag.code != "N" {
					abnormal = append(abnormal, t.code.display+" "+strconv.FormatFloat(v, 'f', t.places, 64)+" "+t.unit+" ("+strings.ToLower(flag.display)+")")
				}
				obs["valueQuantity"] = quantity(v, t.unit, t.ucum)
				obs["interpretation"] = concepts(flag)
			}
			id := c.id("obs", slug, n)
			c.add("Observation", id, "us-core-observation-lab", obs)
			results = append(results, id)
		}

		conclusion := "All results are within the reference range."
		if len(abnormal) > 0 {
			conclusion = "Outside the reference range or not reported: " + strings.Join(abnormal, "; ") + "."
		}
		c.add("DiagnosticReport", drID, "us-core-diagnosticreport-lab", obj{
			"status":             "final",
			"category":           concepts(tho("v2-0074", "LAB", "Laboratory")),
			"code":               concept(panel.code),
			"subject":            c.subject(),
			"encounter":          c.encounter(o.visit),
			"effectiveDateTime":  dateTime(collected),
			"issued":             dateTime(issued),
			"performer":          refs("Organization", c.p.site.org),
			"resultsInterpreter": []obj{c.doctor()},
			"specimen":           refs("Specimen", spmID),
			"result":             refs("Observation", results...),
			"basedOn":            refs("ServiceRequest", srID),
			"conclusion":         conclusion,
		})
	}
}

// interpretation flags v against the test's reference range
// (v3 ObservationInterpretation: H, L, N).
func interpretation(t labTest, v float64) code {
	switch {
	case t.hasHigh && v > t.high:
		return tho("v3-ObservationInterpretation", "H", "High")
	case t.hasLow && v < t.low:
		return tho("v3-ObservationInterpretation", "L", "Low")
	}
	return tho("v3-ObservationInterpretation", "N", "Normal")
}

func referenceRange(t labTest) obj {
	r := obj{}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	switch {
	case t.hasLow && t.hasHigh:
		r["text"] = num(t.low) + "-" + num(t.high) + " " + t.unit
	case t.hasHigh:
		r["text"] = "<=" + num(t.high) + " " + t.unit
	default:
		r["text"] = ">=" + num(t.low) + " " + t.unit
	}
	if t.hasLow {
		r["low"] = quantity(t.low, t.unit, t.ucum)
	}
	if t.hasHigh {
		r["high"] = quantity(t.high, t.unit, t.ucum)
	}
	return r
}

// smokingStatus adds the patient's tobacco smoking status at the last
// visit (US Core Smoking Status Observation).
func (c *chart) smokingStatus() {
	last := c.last()
	o := c.observation(tho("observation-category", "social-history", "Social History"), last, c.starts[last-1].Add(5*time.Minute))
	o["code"] = concept(loinc("72166-2", "Tobacco smoking status"))
	o["performer"] = []obj{c.doctor()}
	o["valueCodeableConcept"] = concept(c.p.smoking)
	c.add("Observation", c.id("obs", "smoking"), "us-core-smokingstatus", o)
}
