package synth

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// The directory every chart shares: provider organizations with a clinic
// and a hospital each, their practitioners (each with a PractitionerRole
// and a Direct endpoint), the payers, and a Medication per drug. Its size
// does not depend on the number of patients.

// siteCount is the number of provider organizations; each patient is
// cared for at one of them.
const siteCount = 6

// Specialties (NUCC provider taxonomy) of each site's practitioners, in
// order: who a patient's primary care physician is depends on age.
var specialties = []code{
	{sysNUCC, "207Q00000X", "Family Medicine"},
	{sysNUCC, "207R00000X", "Internal Medicine"},
	{sysNUCC, "208000000X", "Pediatrics"},
	{sysNUCC, "207RC0000X", "Cardiovascular Disease"},
	{sysNUCC, "2085R0202X", "Diagnostic Radiology"},
}

const (
	specFamily = iota
	specInternal
	specPediatrics
	specCardiology
	specRadiology
)

var orgWords = []string{"Riverside", "Lakeview", "Summit", "Harbor", "Prairie", "Cedar Valley", "Bayside", "Northgate", "Pinecrest", "Sunrise"}

type site struct {
	org, clinic, hospital string // ids
	name                  string
	city                  city
	zone                  *time.Location
	street                string
	practitioners         []int // indexes into directory.practitioners, by specialty order
}

type practitioner struct {
	id, role     string
	npi          string
	given        []string
	family       string
	female       bool
	site         int
	specialty    code
	phone, email string
}

func (p *practitioner) name() string { return p.given[0] + " " + p.family + ", MD" }

type payer struct {
	id, name string
	kind     code
	plans    [2][2]string // group and plan: value, name
}

type directory struct {
	sites         []site
	practitioners []practitioner
	payers        []payer
	out           []Resource
}

// npi makes a valid NPI from nine digits (Luhn check digit over "80840"
// and the nine digits, US Core us-core-16/17).
func npi(nine string) string {
	s := "80840" + nine
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 0 { // these double once the check digit is appended
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return nine + strconv.Itoa((10-sum%10)%10)
}

func (g *Generator) phone(r *rand.Rand, c city) string {
	return "(" + c.area + ") 555-01" + digits(r, 2)
}

func address(line []string, c city, use string) obj {
	return obj{{"use", use}, {"line", line}, {"city", c.name}, {"state", c.state}, {"postalCode", c.zip}, {"country", "US"}}
}

func telecom(phone, email, use string) []obj {
	t := []obj{{{"system", "phone"}, {"value", phone}, {"use", use}}}
	if email != "" {
		t = append(t, obj{{"system", "email"}, {"value", email}, {"use", use}})
	}
	return t
}

// slug is s lower-cased with runs of other characters turned into one "-".
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// ascii folds the accented letters of the name tables, for e-mail addresses.
var ascii = strings.NewReplacer("á", "a", "é", "e", "í", "i", "ó", "o", "ú", "u", "ñ", "n", "ç", "c", "è", "e",
	"ë", "e", "ü", "u", "ö", "o", "ô", "o", "Á", "a", "É", "e", "'", "")

func (g *Generator) buildDirectory() directory {
	r := g.dirRand()
	d := directory{}
	b := &builder{}
	words := append([]string(nil), orgWords...)
	r.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
	for k := range siteCount {
		c := cities[r.IntN(len(cities))]
		n := strconv.Itoa(k + 1)
		s := site{
			org: g.prefix + "org-" + n, clinic: g.prefix + "loc-" + n + "-clinic", hospital: g.prefix + "loc-" + n + "-hospital",
			name: words[k] + " Health", city: c, zone: time.FixedZone("", c.zone*3600),
			street: strconv.Itoa(between(r, 100, 4999)) + " " + pick(r, streets),
		}
		for si, spec := range specialties {
			female := chance(r, 0.5)
			given := pick(r, maleNames)
			if female {
				given = pick(r, femaleNames)
			}
			p := practitioner{
				id: g.prefix + "pra-" + n + "-" + strconv.Itoa(si+1), npi: npi("19" + digits(r, 7)),
				given: []string{given}, family: pick(r, familyNames), female: female, site: k, specialty: spec,
				phone: g.phone(r, c),
			}
			p.role = g.prefix + "prr-" + n + "-" + strconv.Itoa(si+1)
			p.email = strings.ToLower(ascii.Replace(p.given[0]+"."+p.family)) + "@" + slug(s.name) + ".example.org"
			s.practitioners = append(s.practitioners, len(d.practitioners))
			d.practitioners = append(d.practitioners, p)
		}
		d.sites = append(d.sites, s)
		orgBody := obj{
			{"identifier", []obj{{{"system", sysNPI}, {"value", npi("16" + digits(r, 7))}}}},
			{"active", true},
			{"type", concepts(tho("organization-type", "prov", "Healthcare Provider"))},
			{"name", s.name},
			{"telecom", telecom(g.phone(r, c), "info@"+slug(s.name)+".example.org", "work")},
			{"address", []obj{address([]string{s.street}, c, "work")}},
		}
		b.add("Organization", s.org, "us-core-organization", orgBody)
		for _, loc := range []struct {
			id, name string
			kind     code
		}{
			{s.clinic, s.name + " " + c.name + " Clinic", tho("v3-RoleCode", "OF", "Outpatient facility")},
			{s.hospital, s.name + " " + c.name + " Hospital", tho("v3-RoleCode", "HOSP", "Hospital")},
		} {
			b.add("Location", loc.id, "us-core-location", obj{
				{"status", "active"},
				{"name", loc.name},
				{"mode", "instance"},
				{"type", concepts(loc.kind)},
				{"telecom", telecom(g.phone(r, c), "", "work")},
				{"address", address([]string{strconv.Itoa(between(r, 1, 999)) + " " + pick(r, streets)}, c, "work")},
				{"physicalType", concept(tho("location-physical-type", "bu", "Building"))},
				{"managingOrganization", refd("Organization", s.org, s.name)},
			})
		}
	}
	d.payers = []payer{
		{g.prefix + "org-payer-medicare", "Medicare", medicare, [2][2]string{{"MEDICARE-A-B", "Medicare Parts A and B"}, {"MEDICARE-ORIG", "Original Medicare"}}},
		{g.prefix + "org-payer-medicaid", "State Medicaid Program", medicaid, [2][2]string{{"MCD-STD", "Medicaid Standard"}, {"MCD-MANAGED", "Medicaid Managed Care"}}},
		{g.prefix + "org-payer-acme", "Acme Health Plan", private, [2][2]string{{"ACME-EMP-2025", "Employer Group 2025"}, {"ACME-PPO", "Acme PPO Silver"}}},
		{g.prefix + "org-payer-evergreen", "Evergreen Mutual Insurance", private, [2][2]string{{"EVG-IND", "Individual Market"}, {"EVG-HMO", "Evergreen HMO Gold"}}},
	}
	for _, p := range d.payers {
		c := cities[r.IntN(len(cities))]
		b.add("Organization", p.id, "us-core-organization", obj{
			{"identifier", []obj{{{"system", "urn:oid:2.16.840.1.113883.6.300"}, {"value", digits(r, 5)}}}}, // NAIC company code
			{"active", true},
			{"type", concepts(tho("organization-type", "pay", "Payer"))},
			{"name", p.name},
			{"telecom", telecom(g.phone(r, c), "members@"+slug(p.name)+".example.org", "work")},
			{"address", []obj{address([]string{strconv.Itoa(between(r, 100, 999)) + " " + pick(r, streets)}, c, "work")}},
		})
	}
	for i := range d.practitioners {
		p := &d.practitioners[i]
		s := &d.sites[p.site]
		gender := "male"
		if p.female {
			gender = "female"
		}
		b.add("Practitioner", p.id, "us-core-practitioner", obj{
			{"identifier", []obj{{{"system", sysNPI}, {"value", p.npi}}}},
			{"active", true},
			{"name", []obj{{{"use", "official"}, {"text", p.name()}, {"family", p.family}, {"given", p.given}, {"prefix", []string{"Dr."}}, {"suffix", []string{"MD"}}}}},
			{"telecom", telecom(p.phone, p.email, "work")},
			{"address", []obj{address([]string{s.street}, s.city, "work")}},
			{"gender", gender},
			{"qualification", []obj{{{"code", concept(tho("v2-0360", "MD", "Doctor of Medicine"))}}}},
		})
	}
	for i := range d.practitioners {
		p := &d.practitioners[i]
		s := &d.sites[p.site]
		loc := s.clinic
		if p.specialty.code == specialties[specRadiology].code {
			loc = s.hospital
		}
		// The practitioner's Direct address, contained in the role (this
		// server does not serve Endpoint on its own).
		endpoint := obj{
			{"resourceType", "Endpoint"},
			{"id", "direct"},
			{"status", "active"},
			{"connectionType", tho("endpoint-connection-type", "direct-project", "Direct Project").coding()},
			{"name", "Direct address of " + p.name()},
			{"managingOrganization", refd("Organization", s.org, s.name)},
			{"payloadType", concepts(tho("endpoint-payload-type", "any", "Any"))},
			{"payloadMimeType", []string{"application/fhir+json", "application/pdf"}},
			{"address", "mailto:" + strings.Replace(p.email, "@", "@direct.", 1)},
		}
		b.add("PractitionerRole", p.role, "us-core-practitionerrole", obj{
			{"contained", []obj{endpoint}},
			{"active", true},
			{"practitioner", refd("Practitioner", p.id, p.name())},
			{"organization", refd("Organization", s.org, s.name)},
			{"code", concepts(physician)},
			{"specialty", concepts(p.specialty)},
			{"location", []obj{ref("Location", loc)}},
			{"telecom", telecom(p.phone, p.email, "work")},
			{"endpoint", []obj{{{"reference", "#direct"}}}},
		})
	}
	for _, m := range drugList {
		body := obj{
			{"code", concept(m.code)},
			{"status", "active"},
			{"form", concept(m.form)},
		}
		if m.ingredient.code != "" {
			body.set("ingredient", []obj{{
				{"itemCodeableConcept", concept(m.ingredient)},
				{"isActive", true},
				{"strength", obj{{"numerator", quantity(m.strength, -1, m.strengthUnit, m.strengthUCUM)}, {"denominator", quantity(1, -1, m.per, m.perUCUM)}}},
			}})
		}
		b.add("Medication", g.medicationID(m), "us-core-medication", body)
	}
	d.out = b.out
	return d
}

func (g *Generator) medicationID(m *drug) string { return g.prefix + "med-" + m.slug }

// Shared returns the directory: Organizations (providers and payers),
// Locations, Practitioners, PractitionerRoles (each with its Direct
// Endpoint contained) and Medications,
// in load order (a resource after those it references).
func (g *Generator) Shared() []Resource { return append([]Resource(nil), g.dir.out...) }
