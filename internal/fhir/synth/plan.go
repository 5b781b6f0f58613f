package synth

import (
	"math/rand/v2"
	"time"
)

// person is the plan of one patient's chart: who they are and what they
// live with. It is drawn first, from a stream of its own, so Groups can
// draw it again without building the chart.
type person struct {
	i         int
	id        string
	female    bool
	birth     time.Time
	age       int // whole years at the anchor
	given     []string
	family    string
	race      race
	raceDet   []string
	hispanic  bool
	ethDet    string
	lang      int // index into languages
	marital   code
	site      int
	doctor    int // index into the directory's practitioners
	nonbinary bool
	deceased  bool
	chronic   []*chronic
	allergies []int // indexes into allergyList; empty: no known allergy
	smoking   code
	foodInsec bool
	concern   concernSpec
	payer     int
	devices   []string
}

// Cohorts the Groups are made of.
const (
	cohortDiabetes = iota
	cohortHypertension
	cohortPediatric
	cohortElderly
	cohortCount
)

var cohortNames = [cohortCount][2]string{
	{"diabetes", "Patients with type 2 diabetes"},
	{"hypertension", "Patients with essential hypertension"},
	{"pediatric", "Patients under 18"},
	{"older-adults", "Patients aged 65 and over"},
}

func (p *person) cohorts() [cohortCount]bool {
	var c [cohortCount]bool
	for _, ch := range p.chronic {
		switch ch.slug {
		case "diabetes":
			c[cohortDiabetes] = true
		case "hypertension":
			c[cohortHypertension] = true
		}
	}
	c[cohortPediatric] = p.age < 18
	c[cohortElderly] = p.age >= 65
	return c
}

func (p *person) has(slug string) bool {
	for _, c := range p.chronic {
		if c.slug == slug {
			return true
		}
	}
	return false
}

func (p *person) fullName() string {
	s := ""
	for _, g := range p.given {
		s += g + " "
	}
	return s + p.family
}

// minAgeDays is the youngest a patient is at the anchor.
const minAgeDays = 14

// plan draws patient i. The order of draws is part of the data set: change
// it and every chart changes.
func (g *Generator) plan(i int) *person {
	r := g.planRand(i)
	p := &person{i: i, id: g.PatientID(i)}
	p.female = chance(r, 0.51)
	switch weighted(r, 22, 43, 35) {
	case 0:
		p.age = r.IntN(18)
	case 1:
		p.age = between(r, 18, 64)
	default:
		p.age = between(r, 65, 94)
	}
	p.birth = anchor.AddDate(-p.age-1, 0, 1+r.IntN(364))
	// A newborn is at least two weeks old at the anchor, so that its
	// record has room for its first check-up (one born the day before had
	// none, and its chart could not be made).
	if latest := anchor.AddDate(0, 0, -minAgeDays); p.birth.After(latest) {
		p.birth = latest
	}
	names := maleNames
	if p.female {
		names = femaleNames
	}
	p.given = []string{pick(r, names)}
	if chance(r, 0.4) {
		if second := pick(r, names); second != p.given[0] {
			p.given = append(p.given, second)
		}
	}
	p.family = pick(r, familyNames)
	w := make([]int, len(races))
	for k, x := range races {
		w[k] = x.weight
	}
	p.race = races[weighted(r, w...)]
	if len(p.race.detailed) > 0 && chance(r, 0.6) {
		p.raceDet = []string{pick(r, p.race.detailed)}
	}
	p.hispanic = chance(r, 0.19)
	if p.hispanic {
		p.ethDet = pick(r, hispanicDetailed)
	}
	lw := make([]int, len(languages))
	for k, l := range languages {
		lw[k] = l.weight
	}
	p.lang = weighted(r, lw...)
	if p.hispanic && p.lang == 0 && chance(r, 0.35) {
		p.lang = 1
	}
	switch {
	case p.age < 18:
		p.marital = single
	case p.age >= 75 && chance(r, 0.4):
		p.marital = widowed
	default:
		p.marital = []code{married, married, single, divorced, maritalNA}[r.IntN(5)]
	}
	p.site = r.IntN(siteCount)
	s := &g.dir.sites[p.site]
	switch {
	case p.age < 18:
		p.doctor = s.practitioners[specPediatrics]
	case chance(r, 0.5):
		p.doctor = s.practitioners[specFamily]
	default:
		p.doctor = s.practitioners[specInternal]
	}
	p.nonbinary = p.age >= 16 && chance(r, 0.01)
	p.deceased = p.age >= 75 && chance(r, 0.04)
	for _, c := range chronicList {
		if chance(r, c.prevalence(p.age, p.female)) {
			p.chronic = append(p.chronic, c)
		}
	}
	if chance(r, 0.45) {
		first := r.IntN(len(allergyList))
		p.allergies = []int{first}
		if second := r.IntN(len(allergyList)); chance(r, 0.2) && second != first {
			p.allergies = append(p.allergies, second)
		}
	}
	switch {
	case p.age < 12:
		p.smoking = neverSmoked
	case p.has("copd"):
		p.smoking = []code{exSmoker, exSmoker, dailySmoker}[r.IntN(3)]
	default:
		p.smoking = []code{neverSmoked, neverSmoked, neverSmoked, neverSmoked, exSmoker, exSmoker, dailySmoker, someDays}[r.IntN(8)]
	}
	p.foodInsec = chance(r, 0.12)
	p.concern = foodInsecurity
	if !p.foodInsec {
		p.concern = pick(r, concerns)
	}
	switch {
	case p.age >= 65:
		p.payer = 0
	case p.foodInsec && chance(r, 0.6):
		p.payer = 1
	default:
		p.payer = 2 + r.IntN(2)
	}
	for _, c := range p.chronic {
		if c.device != "" && chance(r, 0.35) {
			p.devices = append(p.devices, c.device)
		}
	}
	return p
}

// rng is the generator the rest of a chart draws from.
type rng = *rand.Rand
