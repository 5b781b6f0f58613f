package synth

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// panelsFor is what the lab is asked for at a visit.
func (c *chart) panelsFor(v *visit) []string {
	p := c.p
	var out []string
	add := func(s ...string) {
		for _, x := range s {
			if !strings.Contains(strings.Join(out, ","), x) {
				out = append(out, x)
			}
		}
	}
	switch v.kind {
	case checkup:
		if v == c.last(checkup) {
			add("cbc")
		}
		if p.age >= 18 {
			if p.age >= 40 || len(p.chronic) > 0 {
				add("bmp")
			}
			if p.age >= 20 && (v == c.last(checkup) || p.has("hyperlipidemia")) {
				add("lipid")
			}
			if p.has("diabetes") {
				add("a1c")
			}
		}
	case followup:
		add(v.problem.labs...)
	case edVisit:
		if p.age >= 18 {
			add("cbc", "bmp")
		}
	case inpatient:
		add("cbc", "bmp")
		if v.problem.slug == "heart-failure" {
			add("bnp")
		}
	}
	return out
}

// reasonFor is why tests were ordered at a visit: the problem followed
// up or the diagnosis made; nothing for a routine check-up.
func (c *chart) reasonFor(v *visit) []obj {
	switch {
	case v.dx != "":
		return []obj{ref("Condition", v.dx)}
	case v.problem != nil:
		return []obj{ref("Condition", c.condID(v.problem))}
	}
	return nil
}

// typical moves a test's normal value for the patient's problems.
func (c *chart) typical(t *labTest) float64 {
	p := c.p
	switch {
	case t.slug == "a1c" && p.has("diabetes"):
		return 7.4
	case t.slug == "glucose" && p.has("diabetes"):
		return 135
	case t.slug == "ldl" && (p.has("hyperlipidemia") || p.has("cad")):
		return 128
	case t.slug == "cholesterol" && p.has("hyperlipidemia"):
		return 225
	case t.slug == "creatinine" && p.has("ckd3"):
		return 1.6
	case t.slug == "inr" && p.has("afib"):
		return 2.5
	case t.slug == "bnp" && p.has("heart-failure"):
		return 420
	case t.slug == "tsh" && p.has("hypothyroidism"):
		return 3.6
	}
	return t.normal
}

var (
	interpHigh   = tho("v3-ObservationInterpretation", "H", "High")
	interpLow    = tho("v3-ObservationInterpretation", "L", "Low")
	interpNormal = tho("v3-ObservationInterpretation", "N", "Normal")
)

func interpretation(t *labTest, v float64) code {
	switch {
	case t.hasHigh && v > t.high:
		return interpHigh
	case t.hasLow && v < t.low:
		return interpLow
	}
	return interpNormal
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func referenceRange(t *labTest) obj {
	r := obj{}
	if t.hasLow {
		r.set("low", quantity(t.low, -1, t.unit, t.ucum))
	}
	if t.hasHigh {
		r.set("high", quantity(t.high, -1, t.unit, t.ucum))
	}
	switch {
	case t.hasLow && t.hasHigh:
		r.set("text", num(t.low)+"-"+num(t.high)+" "+t.unit)
	case t.hasHigh:
		r.set("text", "<="+num(t.high)+" "+t.unit)
	default:
		r.set("text", ">="+num(t.low)+" "+t.unit)
	}
	return r
}

// labs adds, per order of a visit, the ServiceRequest, the Specimen, one
// Observation per test (US Core Laboratory Result Observation, with
// reference range and interpretation) and the DiagnosticReport (US Core
// DiagnosticReport for Laboratory Results Reporting).
func (c *chart) labs(v *visit) {
	r := c.r
	n := strconv.Itoa(v.n)
	for _, slug := range c.panelsFor(v) {
		panel := labPanels[slug]
		ordered, collected := v.start.Add(15*time.Minute), v.start.Add(35*time.Minute)
		issued := collected.Add(time.Duration(between(r, 90, 300)) * time.Minute)
		srID, spmID, drID := c.id("sr", slug, n), c.id("spm", slug, n), c.id("dr", slug, n)
		c.add("ServiceRequest", srID, "us-core-servicerequest", obj{
			{"status", "completed"},
			{"intent", "order"},
			{"category", concepts(catLabOrder)},
			{"code", concept(panel.code)},
			{"subject", c.subject()},
			{"encounter", c.encounter(v)},
			{"occurrenceDateTime", dateTime(collected)},
			{"authoredOn", dateTime(ordered)},
			{"requester", c.doctor()},
			{"performer", []obj{c.org()}},
			{"reasonReference", c.reasonFor(v)},
		})
		c.add("Specimen", spmID, "us-core-specimen", obj{
			{"accessionIdentifier", obj{{"system", sysBase + "accession"}, {"value", strings.ToUpper(strings.TrimPrefix(spmID, c.g.prefix))}}},
			{"status", "available"},
			{"type", concept(panel.specimen)},
			{"subject", c.subject()},
			{"receivedTime", dateTime(collected.Add(20 * time.Minute))},
			{"request", []obj{ref("ServiceRequest", srID)}},
			{"collection", obj{{"collector", c.doctor()}, {"collectedDateTime", dateTime(collected)}}},
		})
		var results []obj
		var flagged []string
		for _, ts := range panel.tests {
			t := labTests[ts]
			id := c.id("lab", ts, n)
			body := obj{
				{"status", "final"},
				{"category", concepts(catLab)},
				{"code", concept(t.code)},
				{"subject", c.subject()},
				{"encounter", c.encounter(v)},
				{"effectiveDateTime", dateTime(collected)},
				{"issued", dateTime(issued)},
				{"performer", []obj{c.org()}},
			}
			if ts == "potassium" && chance(r, 0.03) {
				body.set("dataAbsentReason", dataAbsent("error", "Error"))
				body.set("note", []obj{{{"text", "Specimen hemolyzed; result not reported."}}})
				flagged = append(flagged, t.code.display+" not reported (specimen hemolyzed)")
			} else {
				val := around(r, c.typical(t), t.spread)
				p := math.Pow(10, float64(t.places))
				val = math.Max(math.Round(val*p)/p, 1/p)
				flag := interpretation(t, val)
				body.set("valueQuantity", quantity(val, t.places, t.unit, t.ucum))
				body.set("interpretation", concepts(flag))
				if flag != interpNormal {
					flagged = append(flagged, t.code.display+" "+strconv.FormatFloat(val, 'f', t.places, 64)+" "+t.unit+" ("+strings.ToLower(flag.display)+")")
				}
			}
			body.set("referenceRange", []obj{referenceRange(t)})
			body.set("specimen", ref("Specimen", spmID))
			body.set("basedOn", []obj{ref("ServiceRequest", srID)})
			c.add("Observation", id, "us-core-observation-lab", body)
			results = append(results, ref("Observation", id))
		}
		conclusion := "All results are within the reference range."
		if len(flagged) > 0 {
			conclusion = "Outside the reference range or not reported: " + strings.Join(flagged, "; ") + "."
		}
		c.add("DiagnosticReport", drID, "us-core-diagnosticreport-lab", obj{
			{"basedOn", []obj{ref("ServiceRequest", srID)}},
			{"status", "final"},
			{"category", concepts(catLabReport)},
			{"code", concept(panel.code)},
			{"subject", c.subject()},
			{"encounter", c.encounter(v)},
			{"effectiveDateTime", dateTime(collected)},
			{"issued", dateTime(issued)},
			{"performer", []obj{c.org()}},
			{"resultsInterpreter", []obj{c.doctor()}},
			{"specimen", []obj{ref("Specimen", spmID)}},
			{"result", results},
			{"conclusion", conclusion},
		})
	}
}
