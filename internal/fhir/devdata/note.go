package devdata

import (
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// noteContentType is the media type of the clinical notes. The notes hold
// accented names, so the charset is stated rather than left to the
// text/plain default (US-ASCII, RFC 6657).
const noteContentType = "text/plain; charset=utf-8"

// clinicalNote adds a plain-text clinical note of one visit: the
// DocumentReference (US Core DocumentReference, category clinical-note)
// whose attachment points at "Binary/<id>", and that Binary, whose
// securityContext is the DocumentReference so it shares its access rules.
func (c *chart) clinicalNote() {
	nt := c.p.note
	n := strconv.Itoa(nt.visit)
	docID, binID := c.id("docref", "note", n), c.id("bin", "note", n)
	text := []byte(c.noteText(nt))
	data := base64.StdEncoding.EncodeToString(text)
	sum := sha1.Sum(text)
	start, end := c.starts[nt.visit-1], c.ends[nt.visit-1]
	title := nt.kind.display + ", " + date(start)

	c.add("DocumentReference", docID, "us-core-documentreference", obj{
		"identifier":  []obj{{"system": sysMRN + "/documents", "value": strings.ToUpper(docID[len("docref-"):])}},
		"status":      "current",
		"docStatus":   "final",
		"type":        concept(nt.kind),
		"category":    concepts(code{sysUSCoreCS + "us-core-documentreference-category", "clinical-note", "Clinical Note"}),
		"subject":     c.subject(),
		"date":        dateTime(end),
		"author":      []obj{c.doctor()},
		"custodian":   ref("Organization", c.p.site.org),
		"description": title,
		"content": []obj{{
			"attachment": obj{
				"contentType": noteContentType,
				"language":    "en",
				"url":         "Binary/" + binID,
				"size":        len(text),
				"hash":        base64.StdEncoding.EncodeToString(sum[:]),
				"title":       title,
				"creation":    dateTime(end),
			},
			"format": code{"http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode", "urn:ihe:iti:xds:2017:mimeTypeSufficient", "mimeType Sufficient"}.coding(),
		}},
		"context": obj{
			"encounter": []obj{c.encounter(nt.visit)},
			"period":    period(start, end),
		},
	})
	c.add("Binary", binID, "", obj{
		"contentType":     noteContentType,
		"securityContext": ref("DocumentReference", docID),
		"data":            data,
	})
}

// noteText writes the note from the chart, so it agrees with the coded
// data.
func (c *chart) noteText(nt note) string {
	p, v := c.p, c.p.visits[nt.visit-1]
	start, end := c.starts[nt.visit-1], c.ends[nt.visit-1]
	var b strings.Builder
	line := func(s ...string) { b.WriteString(strings.Join(s, "") + "\n") }
	line(strings.ToUpper(nt.kind.display))
	line("Patient: ", p.fullName(), "   MRN: ", p.mrn, "   Date of birth: ", p.birthDate)
	line("Clinician: ", c.doc.name(), "   Location: ", locationByID(c.location(nt.visit)).name)
	if v.class == "IMP" {
		line("Admitted: ", start.Format(time.DateTime), "   Discharged: ", end.Format(time.DateTime))
	} else {
		line("Date of service: ", start.Format(time.DateTime))
	}
	if v.reason.code != "" {
		line("Reason for visit: ", v.reason.text())
	}
	line()
	line("Assessment:")
	for _, cd := range p.conditions {
		if cd.category == "encounter-diagnosis" && cd.visit != nt.visit {
			continue
		}
		line("- ", cd.code.text())
	}
	var done []string
	for _, pr := range p.procedures {
		if pr.visit == nt.visit {
			done = append(done, "- "+pr.code.text())
		}
	}
	if len(done) > 0 {
		line()
		line("Procedures:")
		line(strings.Join(done, "\n"))
	}
	line()
	line("Medications:")
	for _, m := range p.meds {
		if m.visit <= nt.visit {
			line("- ", m.drug.display, ": ", m.sig)
		}
	}
	line()
	line("Allergies:")
	for _, a := range p.allergies {
		s := "- " + a.code.text()
		if a.reaction.code != "" {
			s += " (reaction: " + a.reaction.text() + ", " + a.severity + ")"
		}
		line(s)
	}
	line()
	line("Plan:")
	line("- ", p.goal.text, ".")
	line("- Follow up at ", locationByID(p.site.clinic).name, " in three months, sooner if symptoms worsen.")
	line()
	line("Electronically signed by ", c.doc.name(), " on ", end.Format(time.DateTime))
	return b.String()
}
