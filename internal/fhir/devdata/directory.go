package devdata

import "time"

// The directory: organizations, their locations, practitioners and their
// roles. Every patient is cared for at one site (an organization with a
// clinic and a hospital) by one practitioner.

// Fixed zone offsets keep every dateTime stable; the sites do not observe
// daylight saving time in this data set.
var (
	eastern = time.FixedZone("EST", -5*60*60)
	central = time.FixedZone("CST", -6*60*60)
)

// site is an organization with the locations its encounters happen at.
type site struct {
	org, clinic, hospital string
	zone                  *time.Location
}

var (
	lakeside = &site{org: "org-lakeside", clinic: "loc-lakeside-clinic", hospital: "loc-lakeside-hospital", zone: eastern}
	sunbelt  = &site{org: "org-sunbelt", clinic: "loc-sunbelt-clinic", hospital: "loc-sunbelt-hospital", zone: central}
)

// payer is the health plan every Coverage names.
const payer = "org-acme-health-plan"

type address struct {
	line                    []string
	city, state, postalCode string
}

func (a address) json(use string) obj {
	return obj{"use": use, "line": a.line, "city": a.city, "state": a.state, "postalCode": a.postalCode, "country": "US"}
}

// telecom is a phone number and, when email is not empty, an email address.
func telecom(phone, email, use string) []obj {
	t := []obj{{"system": "phone", "value": phone, "use": use}}
	if email != "" {
		t = append(t, obj{"system": "email", "value": email, "use": use})
	}
	return t
}

type organization struct {
	id, name, npi, phone, email string
	kind                        code
	addr                        address
}

var organizations = []organization{
	{id: "org-lakeside", name: "Lakeside Medical Group", npi: "1990000048", phone: "(617) 555-0100", email: "info@lakeside-medical.example.org",
		kind: tho("organization-type", "prov", "Healthcare Provider"),
		addr: address{[]string{"250 Lakeside Avenue"}, "Boston", "MA", "02116"}},
	{id: "org-sunbelt", name: "Sunbelt Community Health", npi: "1990000055", phone: "(512) 555-0140", email: "info@sunbelt-health.example.org",
		kind: tho("organization-type", "prov", "Healthcare Provider"),
		addr: address{[]string{"4800 South Congress Avenue"}, "Austin", "TX", "78745"}},
	{id: payer, name: "Acme Health Plan", phone: "(860) 555-0199", email: "members@acme-health.example.org",
		kind: tho("organization-type", "pay", "Payer"),
		addr: address{[]string{"500 Main Street", "Suite 1200"}, "Hartford", "CT", "06103"}},
}

type location struct {
	id, name, org, phone string
	kind                 code
	addr                 address
}

var locations = []location{
	{id: "loc-lakeside-clinic", name: "Lakeside Medical Group Back Bay Clinic", org: "org-lakeside", phone: "(617) 555-0101",
		kind: tho("v3-RoleCode", "OF", "Outpatient facility"),
		addr: address{[]string{"250 Lakeside Avenue"}, "Boston", "MA", "02116"}},
	{id: "loc-lakeside-hospital", name: "Lakeside General Hospital", org: "org-lakeside", phone: "(617) 555-0102",
		kind: tho("v3-RoleCode", "HOSP", "Hospital"),
		addr: address{[]string{"1 Lakeside Plaza"}, "Boston", "MA", "02114"}},
	{id: "loc-sunbelt-clinic", name: "Sunbelt Community Health South Austin Clinic", org: "org-sunbelt", phone: "(512) 555-0141",
		kind: tho("v3-RoleCode", "OF", "Outpatient facility"),
		addr: address{[]string{"4800 South Congress Avenue"}, "Austin", "TX", "78745"}},
	{id: "loc-sunbelt-hospital", name: "Sunbelt Community Hospital", org: "org-sunbelt", phone: "(512) 555-0142",
		kind: tho("v3-RoleCode", "HOSP", "Hospital"),
		addr: address{[]string{"1200 Sunbelt Parkway"}, "Austin", "TX", "78756"}},
}

type practitioner struct {
	id, npi, family, phone, email string
	given                         []string
	gender                        string
	site                          *site
	specialty                     code // NUCC provider taxonomy
}

// name is the display name, e.g. "Inés Muñoz, MD".
func (p practitioner) name() string { return p.given[0] + " " + p.family + ", MD" }

// role is the id of the practitioner's PractitionerRole.
func (p practitioner) role() string { return "prr" + p.id[len("pra"):] }

var practitioners = []practitioner{
	{id: "pra-ines-munoz", npi: "1990000014", given: []string{"Inés", "Carolina"}, family: "Muñoz", gender: "female",
		phone: "(617) 555-0110", email: "ines.munoz@lakeside-medical.example.org", site: lakeside,
		specialty: code{sysNUCC, "207Q00000X", "Family Medicine"}},
	{id: "pra-robert-hayes", npi: "1990000022", given: []string{"Robert", "Allen"}, family: "Hayes", gender: "male",
		phone: "(512) 555-0150", email: "robert.hayes@sunbelt-health.example.org", site: sunbelt,
		specialty: code{sysNUCC, "207R00000X", "Internal Medicine"}},
	{id: "pra-priya-raman", npi: "1990000030", given: []string{"Priya"}, family: "Raman", gender: "female",
		phone: "(617) 555-0120", email: "priya.raman@lakeside-medical.example.org", site: lakeside,
		specialty: code{sysNUCC, "208000000X", "Pediatrics"}},
}

func practitionerByID(id string) *practitioner {
	for i := range practitioners {
		if practitioners[i].id == id {
			return &practitioners[i]
		}
	}
	panic("devdata: no practitioner " + id)
}

func locationByID(id string) *location {
	for i := range locations {
		if locations[i].id == id {
			return &locations[i]
		}
	}
	panic("devdata: no location " + id)
}

var physician = snomed("309343006", "Physician (occupation)")

// directory adds the organizations, locations, practitioners and roles.
func (b *builder) directory() {
	for _, o := range organizations {
		body := obj{
			"active":  true,
			"name":    o.name,
			"type":    concepts(o.kind),
			"telecom": telecom(o.phone, o.email, "work"),
			"address": []obj{o.addr.json("work")},
		}
		if o.npi != "" {
			body["identifier"] = []obj{{"system": sysNPI, "value": o.npi}}
		}
		b.add("Organization", o.id, "us-core-organization", body)
	}
	for _, l := range locations {
		b.add("Location", l.id, "us-core-location", obj{
			"status":               "active",
			"name":                 l.name,
			"mode":                 "instance",
			"type":                 concepts(l.kind),
			"telecom":              telecom(l.phone, "", "work"),
			"address":              l.addr.json("work"),
			"physicalType":         concept(tho("location-physical-type", "bu", "Building")),
			"managingOrganization": ref("Organization", l.org),
		})
	}
	for _, p := range practitioners {
		clinic := locationByID(p.site.clinic)
		b.add("Practitioner", p.id, "us-core-practitioner", obj{
			"identifier": []obj{{"system": sysNPI, "value": p.npi}},
			"active":     true,
			"name": []obj{{
				"use": "official", "text": p.name(), "family": p.family,
				"given": p.given, "prefix": []string{"Dr."}, "suffix": []string{"MD"},
			}},
			"telecom": telecom(p.phone, p.email, "work"),
			"address": []obj{clinic.addr.json("work")},
			"gender":  p.gender,
			"qualification": []obj{{
				"code": concept(tho("v2-0360", "MD", "Doctor of Medicine")),
			}},
		})
	}
	for _, p := range practitioners {
		b.add("PractitionerRole", p.role(), "us-core-practitionerrole", obj{
			"active":       true,
			"practitioner": ref("Practitioner", p.id),
			"organization": ref("Organization", p.site.org),
			"code":         concepts(physician),
			"specialty":    concepts(p.specialty),
			"location":     refs("Location", p.site.clinic),
			"telecom":      telecom(p.phone, p.email, "work"),
		})
	}
}
