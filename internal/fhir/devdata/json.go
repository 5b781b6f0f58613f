package devdata

import (
	"math"
	"strings"
	"time"
)

// obj is one JSON object. encoding/json writes map keys sorted, which is
// what makes the bodies byte-for-byte stable.
type obj = map[string]any

// code is one concept of a code system.
type code struct{ system, code, display string }

// Code systems and naming systems the set uses.
const (
	usCore      = "http://hl7.org/fhir/us/core/StructureDefinition/"
	sysLOINC    = "http://loinc.org"
	sysSNOMED   = "http://snomed.info/sct"
	sysRxNorm   = "http://www.nlm.nih.gov/research/umls/rxnorm"
	sysCVX      = "http://hl7.org/fhir/sid/cvx"
	sysCPT      = "http://www.ama-assn.org/go/cpt"
	sysUCUM     = "http://unitsofmeasure.org"
	sysNPI      = "http://hl7.org/fhir/sid/us-npi"
	sysNUCC     = "http://nucc.org/provider-taxonomy"
	sysCDCRace  = "urn:oid:2.16.840.1.113883.6.238"
	sysLanguage = "urn:ietf:bcp:47"
	sysTHO      = "http://terminology.hl7.org/CodeSystem/"
	sysUSCoreCS = "http://hl7.org/fhir/us/core/CodeSystem/"

	// sysMRN is the medical record number system of the demo hospital
	// network (the one the SMART sandbox uses).
	sysMRN = "http://hospital.smarthealthit.org"
)

func loinc(c, display string) code  { return code{sysLOINC, c, display} }
func snomed(c, display string) code { return code{sysSNOMED, c, display} }
func rxnorm(c, display string) code { return code{sysRxNorm, c, display} }
func cvx(c, display string) code    { return code{sysCVX, c, display} }

// tho is a code of an HL7 terminology (terminology.hl7.org) code system.
func tho(cs, c, display string) code { return code{sysTHO + cs, c, display} }

func (c code) coding() obj {
	o := obj{"system": c.system, "code": c.code}
	if c.display != "" {
		o["display"] = c.display
	}
	return o
}

// concept is a CodeableConcept of one or more codings, its text the first
// display as a person would say it.
func concept(cs ...code) obj {
	codings := make([]obj, len(cs))
	for i, c := range cs {
		codings[i] = c.coding()
	}
	return obj{"coding": codings, "text": cs[0].text()}
}

// text is the display without a SNOMED CT semantic tag: "Asthma", not
// "Asthma (disorder)".
func (c code) text() string {
	if c.system == sysSNOMED && strings.HasSuffix(c.display, ")") {
		if i := strings.LastIndex(c.display, " ("); i > 0 {
			return c.display[:i]
		}
	}
	return c.display
}

// concepts is a list of one CodeableConcept, for elements with max "*".
func concepts(cs ...code) []obj { return []obj{concept(cs...)} }

// ref is a relative literal reference, "Type/id".
func ref(typ, id string) obj { return obj{"reference": typ + "/" + id} }

// refs is a list of relative references of one type.
func refs(typ string, ids ...string) []obj {
	out := make([]obj, len(ids))
	for i, id := range ids {
		out[i] = ref(typ, id)
	}
	return out
}

// quantity is a UCUM Quantity; unit is the human-readable unit.
func quantity(v float64, unit, ucum string) obj {
	return obj{"value": v, "unit": unit, "system": sysUCUM, "code": ucum}
}

// dateTime is a FHIR dateTime (and instant) with seconds and a zone offset,
// as FHIR requires whenever a time is given.
func dateTime(t time.Time) string { return t.Format(time.RFC3339) }

// date is a FHIR date.
func date(t time.Time) string { return t.Format(time.DateOnly) }

func period(start, end time.Time) obj {
	return obj{"start": dateTime(start), "end": dateTime(end)}
}

// daysAgo is the calendar day n days before the anchor, at hh:mm in zone.
func daysAgo(n, hh, mm int, zone *time.Location) time.Time {
	d := anchor.AddDate(0, 0, -n)
	return time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, zone)
}

// round keeps places decimals, so a value prints as e.g. 7.2, not
// 7.199999999999999.
func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}
