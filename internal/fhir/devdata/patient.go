package devdata

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// seed fixes the variation of vital signs and unlisted lab values. Each
// patient draws from a PCG of its own (seed, roster index), so changing
// one chart never changes another.
const seed = 20250602

// chart builds one patient's resources.
type chart struct {
	*builder
	p      *patient
	doc    *practitioner
	rng    *rand.Rand
	starts []time.Time // visit starts, index 0 is visit 1
	ends   []time.Time
	// provenance lists the records the patient's Provenance covers.
	provenance []obj
}

// chart adds every resource of roster[i]. The order of the steps fixes the
// order of random draws, so it must not depend on anything but the data.
func (b *builder) chart(i int, p *patient) {
	c := &chart{builder: b, p: p, doc: practitionerByID(p.doctor), rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	for _, v := range p.visits {
		start := daysAgo(v.daysAgo, v.hour, v.minute, p.site.zone)
		c.starts = append(c.starts, start)
		c.ends = append(c.ends, start.Add(time.Duration(v.minutes)*time.Minute))
	}
	c.patient()
	c.relatedPerson()
	c.encounters()
	c.conditions()
	c.allergies()
	c.medications()
	c.immunizations()
	c.vitalSigns()
	c.labs()
	c.smokingStatus()
	c.device()
	c.procedures()
	c.goal()
	c.careTeam()
	c.carePlan()
	c.clinicalNote()
	c.coverage()
	c.questionnaire()
	c.provenanceRecord()
}

// id is prefix-slug-parts..., the id pattern of every chart resource.
func (c *chart) id(prefix string, parts ...string) string {
	return strings.Join(append([]string{prefix, c.p.slug}, parts...), "-")
}

func (c *chart) subject() obj { return ref("Patient", c.p.id()) }

func (c *chart) encounter(visit int) obj { return ref("Encounter", c.encounterID(visit)) }

func (c *chart) encounterID(visit int) string { return c.id("enc", strconv.Itoa(visit)) }

func (c *chart) doctor() obj { return ref("Practitioner", c.doc.id) }

// location is where a visit happened: the hospital for emergency and
// inpatient visits, the clinic otherwise.
func (c *chart) location(visit int) string {
	if c.p.visits[visit-1].class == "AMB" {
		return c.p.site.clinic
	}
	return c.p.site.hospital
}

func (c *chart) last() int { return len(c.p.visits) }

func (c *chart) deceased() (time.Time, bool) {
	if c.p.deceased == 0 {
		return time.Time{}, false
	}
	return daysAgo(c.p.deceased, 6, 40, c.p.site.zone), true
}

// track adds a resource to the patient's Provenance targets.
func (c *chart) track(typ, id string) { c.provenance = append(c.provenance, ref(typ, id)) }

// ombExtension is a US Core race or ethnicity extension: OMB categories,
// detailed codes and the required text
// (StructureDefinition-us-core-race / us-core-ethnicity).
func ombExtension(name string, d demographic) obj {
	var ext []obj
	for _, c := range d.omb {
		ext = append(ext, obj{"url": "ombCategory", "valueCoding": code{sysCDCRace, c, cdcRace[c]}.coding()})
	}
	for _, c := range d.detailed {
		ext = append(ext, obj{"url": "detailed", "valueCoding": code{sysCDCRace, c, cdcRace[c]}.coding()})
	}
	ext = append(ext, obj{"url": "text", "valueString": d.text})
	return obj{"url": usCore + name, "extension": ext}
}

func (c *chart) patient() {
	p := c.p
	names := []obj{{"use": "official", "text": p.fullName(), "family": p.family, "given": p.given}}
	if p.maiden != "" {
		born, _ := time.Parse(time.DateOnly, p.birthDate)
		names = append(names, obj{
			"use": "maiden", "text": p.given[0] + " " + p.maiden, "family": p.maiden, "given": p.given,
			"period": obj{"end": date(born.AddDate(22, 7, 18))},
		})
	}
	langs := make([]obj, len(p.languages))
	for i, l := range p.languages {
		langs[i] = obj{"language": concept(code{sysLanguage, l.code, l.display}), "preferred": l.preferred}
	}
	body := obj{
		"extension": []obj{
			ombExtension("us-core-race", p.race),
			ombExtension("us-core-ethnicity", p.ethnicity),
			{"url": usCore + "us-core-birthsex", "valueCode": p.birthSex},
		},
		"identifier": []obj{{
			"use": "usual", "type": concept(tho("v2-0203", "MR", "Medical record number")),
			"system": sysMRN, "value": p.mrn,
			"assigner": obj{"display": "SMART Health IT demo hospital network"},
		}},
		"active":               true,
		"name":                 names,
		"telecom":              telecom(p.phone, p.email, "home"),
		"gender":               p.gender,
		"birthDate":            p.birthDate,
		"address":              []obj{p.addr.json("home")},
		"communication":        langs,
		"generalPractitioner":  refs("Practitioner", p.doctor),
		"managingOrganization": ref("Organization", p.site.org),
	}
	if p.marital.code != "" {
		body["maritalStatus"] = concept(p.marital)
	}
	if t, ok := c.deceased(); ok {
		body["deceasedDateTime"] = dateTime(t)
	}
	if p.parent != nil {
		body["contact"] = []obj{{
			"relationship": concepts(tho("v2-0131", "N", "Next-of-Kin")),
			"name":         obj{"use": "official", "family": p.parent.family, "given": p.parent.given},
			"telecom":      telecom(p.phone, "", "home"),
		}}
	}
	c.add("Patient", p.id(), "us-core-patient", body)
	c.track("Patient", p.id())
}

// relatedPerson adds the parent of a child patient.
func (c *chart) relatedPerson() {
	rp := c.p.parent
	if rp == nil {
		return
	}
	c.add("RelatedPerson", rp.id, "us-core-relatedperson", obj{
		"active":       true,
		"patient":      c.subject(),
		"relationship": concepts(rp.relationship),
		"name": []obj{{
			"use": "official", "text": strings.Join(rp.given, " ") + " " + rp.family,
			"family": rp.family, "given": rp.given,
		}},
		"telecom":   telecom(c.p.phone, strings.ToLower(rp.given[0]+"."+rp.family)+"@example.com", "home"),
		"gender":    rp.gender,
		"birthDate": rp.birthDate,
		"address":   []obj{c.p.addr.json("home")},
	})
}

// coverage adds the patient's health plan (US Core Coverage: member id,
// relationship to the subscriber, payer, group and plan classes).
func (c *chart) coverage() {
	cv := c.p.coverage
	subscriber, relationship := c.subject(), tho("subscriber-relationship", "self", "Self")
	subscriberID := cv.member
	if cv.childOfParent {
		subscriber, relationship = ref("RelatedPerson", c.p.parent.id), tho("subscriber-relationship", "child", "Child")
		subscriberID = cv.subscriberID
	}
	start := daysAgo(cv.since, 0, 0, c.p.site.zone)
	span := obj{"start": date(time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC))}
	status := "active"
	if t, ok := c.deceased(); ok {
		status = "cancelled"
		span["end"] = date(t)
	}
	c.add("Coverage", c.id("coverage"), "us-core-coverage", obj{
		"identifier": []obj{{
			"type":   concept(tho("v2-0203", "MB", "Member Number")),
			"system": "http://acme-health.example.org/member-id", "value": cv.member,
		}},
		"status":       status,
		"type":         concept(cv.kind),
		"subscriber":   subscriber,
		"subscriberId": subscriberID,
		"beneficiary":  c.subject(),
		"relationship": concept(relationship),
		"period":       span,
		"payor":        refs("Organization", payer),
		"class": []obj{
			{"type": concept(tho("coverage-class", "group", "Group")), "value": cv.group[0], "name": cv.group[1]},
			{"type": concept(tho("coverage-class", "plan", "Plan")), "value": cv.plan[0], "name": cv.plan[1]},
		},
	})
}

// group adds the Group of every demo patient, for Group-level $export.
func (b *builder) group() {
	members := make([]obj, len(roster))
	for i := range roster {
		members[i] = obj{"entity": ref("Patient", roster[i].id())}
	}
	b.add("Group", "grp-demo-patients", "", obj{
		"identifier": []obj{{"system": sysMRN + "/groups", "value": "demo-patients"}},
		"active":     true,
		"type":       "person",
		"actual":     true,
		"name":       "smartgate demo patients",
		"quantity":   len(roster),
		"member":     members,
	})
}
