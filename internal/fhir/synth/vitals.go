package synth

import (
	"math"
	"strconv"
	"time"
)

// vitalSign is one single-value US Core vital signs profile.
type vitalSign struct {
	slug, profile string
	codes         []code
	unit, ucum    string
	places        int
}

var (
	bloodPressure = loinc("85354-9", "Blood pressure panel with all children optional")
	systolic      = loinc("8480-6", "Systolic blood pressure")
	diastolic     = loinc("8462-4", "Diastolic blood pressure")

	heartRate  = vitalSign{"heart-rate", "us-core-heart-rate", []code{loinc("8867-4", "Heart rate")}, "beats/minute", "/min", 0}
	respRate   = vitalSign{"resp-rate", "us-core-respiratory-rate", []code{loinc("9279-1", "Respiratory rate")}, "breaths/minute", "/min", 0}
	bodyTemp   = vitalSign{"temp", "us-core-body-temperature", []code{loinc("8310-5", "Body temperature")}, "°C", "Cel", 1}
	pulseOx    = vitalSign{"spo2", "us-core-pulse-oximetry", []code{loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"), loinc("2708-6", "Oxygen saturation in Arterial blood")}, "%", "%", 0}
	bodyWeight = vitalSign{"weight", "us-core-body-weight", []code{loinc("29463-7", "Body weight")}, "kg", "kg", 1}
	bodyHeight = vitalSign{"height", "us-core-body-height", []code{loinc("8302-2", "Body height")}, "cm", "cm", 1}
	bodyMass   = vitalSign{"bmi", "us-core-bmi", []code{loinc("39156-5", "Body mass index (BMI) [Ratio]")}, "kg/m2", "kg/m2", 1}
	headCirc   = vitalSign{"head", "us-core-head-circumference", []code{loinc("9843-4", "Head Occipital-frontal circumference")}, "cm", "cm", 1}
	headPct    = vitalSign{"head-pct", "head-occipital-frontal-circumference-percentile", []code{loinc("8289-1", "Head Occipital-frontal circumference Percentile")}, "%", "%", 0}
	bmiPct     = vitalSign{"bmi-pct", "pediatric-bmi-for-age", []code{loinc("59576-9", "Body mass index (BMI) [Percentile] Per age and sex")}, "%", "%", 0}
	wflPct     = vitalSign{"wfl-pct", "pediatric-weight-for-height", []code{loinc("77606-2", "Weight-for-length Per age and sex")}, "%", "%", 0}
)

// heightAt is a typical height (cm) at an age in years, for a child's
// growth; adults keep their adult height.
func heightAt(age float64, female bool) float64 {
	switch {
	case age < 1:
		return 50 + 25*age
	case age < 2:
		return 75 + 12*(age-1)
	case age < 3:
		return 87 + 8*(age-2)
	case age < 12:
		return 95 + 6*(age-3)
	case female:
		return math.Min(149+4*(age-12), 162)
	}
	return math.Min(149+6*(age-12), 176)
}

// headAt is a typical head circumference (cm) under age 3.
func headAt(age float64) float64 {
	switch {
	case age < 1:
		return 35 + 11*age
	case age < 2:
		return 46 + 2.5*(age-1)
	}
	return 48.5 + 1.5*(age-2)
}

// bmiAt is a typical BMI for age (children's BMI dips and rises again).
func bmiAt(age float64) float64 {
	switch {
	case age < 1:
		return 14 + 3*age
	case age < 6:
		return 17 - 0.3*(age-1)
	case age < 18:
		return 15.5 + 0.55*(age-6)
	}
	return 24
}

// vital adds one single-value vital sign; the caller may change the body
// before it is added through the returned function.
func (c *chart) vital(s vitalSign, v *visit, at time.Time, value float64, extra ...member) string {
	id := c.id("obs", s.slug, strconv.Itoa(v.n))
	body := obj{
		{"status", "final"},
		{"category", concepts(catVitals)},
		{"code", concept(s.codes...)},
		{"subject", c.subject()},
		{"encounter", c.encounter(v)},
		{"effectiveDateTime", dateTime(at)},
		{"performer", []obj{c.doctor()}},
	}
	miss := 0.02
	if s.slug == "head" || s.slug == "wfl-pct" || s.slug == "head-pct" {
		miss = 0.05 // an infant who would not keep still
	}
	if math.IsNaN(value) || chance(c.r, miss) {
		body.set("dataAbsentReason", dataAbsent("not-performed", "Not Performed"))
	} else {
		body.set("valueQuantity", quantity(value, s.places, s.unit, s.ucum))
	}
	body = append(body, extra...)
	c.add("Observation", id, s.profile, body)
	return id
}

// vitalSigns adds the vital signs of a visit, each per its US Core
// profile: the children's growth charts below age 20 (head circumference
// under 3), blood pressure from age 3.
func (c *chart) vitalSigns(v *visit) {
	r, p := c.r, c.p
	at := v.start.Add(10 * time.Minute)
	age := c.ageAt(at)
	female := p.female
	pctile := 10 + float64(p.i%80) // each child keeps roughly to one percentile
	height := heightAt(age, female)
	if age >= 18 {
		height = heightAt(18, female) + float64(p.i%13) - 6
	}
	height = math.Round(around(r, height, 0.5)*10) / 10
	bmi := bmiAt(age)
	if age >= 18 {
		bmi = 20 + float64(p.i%9)
		if p.has("obesity") {
			bmi = 31 + float64(p.i%8)
		}
	} else if p.has("obesity") {
		bmi *= 1.25
	}
	weight := math.Round(bmi*height*height/1000) / 10
	weight = math.Round(around(r, weight, weight*0.01)*10) / 10

	if age >= 3 {
		sys, dia := 112+0.5*math.Min(age, 70), 72+0.15*math.Min(age, 60)
		if p.has("hypertension") {
			sys, dia = sys+14, dia+8
		}
		comps := []obj{
			{{"code", concept(systolic)}, {"valueQuantity", quantity(math.Round(around(r, sys, 8)), 0, "mmHg", "mm[Hg]")}},
			{{"code", concept(diastolic)}, {"valueQuantity", quantity(math.Round(around(r, dia, 5)), 0, "mmHg", "mm[Hg]")}},
		}
		var absent obj
		switch x := r.Float64(); {
		case x < 0.02: // the diastolic pressure could not be read
			comps[1] = obj{{"code", concept(diastolic)}, {"dataAbsentReason", dataAbsent("error", "Error")}}
		case x < 0.03: // not taken at all
			absent = dataAbsent("not-performed", "Not Performed")
			comps = []obj{
				{{"code", concept(systolic)}, {"dataAbsentReason", absent}},
				{{"code", concept(diastolic)}, {"dataAbsentReason", absent}},
			}
		}
		c.add("Observation", c.id("obs", "bp", strconv.Itoa(v.n)), "us-core-blood-pressure", obj{
			{"status", "final"},
			{"category", concepts(catVitals)},
			{"code", concept(bloodPressure)},
			{"subject", c.subject()},
			{"encounter", c.encounter(v)},
			{"effectiveDateTime", dateTime(at)},
			{"performer", []obj{c.doctor()}},
			{"dataAbsentReason", absent},
			{"component", comps},
		})
	}
	pulse := 80 - 0.5*math.Min(age, 40)
	if age < 1 {
		pulse = 130
	}
	c.vital(heartRate, v, at, math.Round(around(r, pulse, 8)))
	resp := 16.0
	if age < 12 {
		resp = 30 - age
	}
	c.vital(respRate, v, at, math.Round(around(r, resp, 2)))
	temp := 36.8
	if v.acute != nil && (v.acute.slug == "bronchitis" || v.acute.slug == "otitis-media" || v.acute.slug == "uri") {
		temp = 38.2
	}
	c.vital(bodyTemp, v, at, math.Round(around(r, temp, 0.3)*10)/10)
	spo2 := 98.0
	if p.has("copd") || p.has("heart-failure") {
		spo2 = 93
	}
	if v.kind == inpatient {
		spo2 = 91
		c.supplyO2 = true
		c.vital(pulseOx, v, at, math.Min(100, math.Round(around(r, spo2, 1))), member{"component", []obj{
			{{"code", concept(loinc("3151-8", "Inhaled oxygen flow rate"))}, {"valueQuantity", quantity(float64(between(r, 2, 4)), 0, "L/min", "L/min")}},
			{{"code", concept(loinc("3150-0", "Inhaled oxygen concentration"))}, {"valueQuantity", quantity(float64(between(r, 28, 36)), 0, "%", "%")}},
		}})
	} else {
		c.vital(pulseOx, v, at, math.Min(100, math.Round(around(r, spo2, 1.5))))
	}
	weightID := c.vital(bodyWeight, v, at, weight)
	measured := height
	if v.n > 1 && chance(r, 0.03) {
		measured = math.NaN() // not measured this time
	}
	heightID := c.vital(bodyHeight, v, at, measured)
	if math.IsNaN(measured) {
		c.vital(bodyMass, v, at, math.NaN())
	} else {
		c.vital(bodyMass, v, at, math.Round(weight/math.Pow(height/100, 2)*10)/10,
			member{"derivedFrom", []obj{ref("Observation", weightID), ref("Observation", heightID)}})
	}
	if age < 3 {
		c.vital(headCirc, v, at, math.Round(around(r, headAt(age), 0.4)*10)/10)
		c.vital(headPct, v, at, math.Round(math.Min(99, math.Max(1, around(r, pctile, 3)))))
		c.vital(wflPct, v, at, math.Round(math.Min(99, math.Max(1, around(r, pctile, 4)))))
	}
	if age >= 2 && age < 20 {
		bp := pctile
		if p.has("obesity") {
			bp = 96
		}
		c.vital(bmiPct, v, at, math.Round(math.Min(99, math.Max(1, around(r, bp, 3)))))
	}
}
