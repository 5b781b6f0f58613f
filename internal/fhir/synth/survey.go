package synth

import (
	"strconv"
	"time"
)

// A screening instrument: a LOINC panel whose items are answered with
// LOINC answer codes, and a scored result.
type question struct {
	code    code
	answers []code
}

var (
	phq2Panel = loinc("55757-9", "Patient Health Questionnaire 2 item (PHQ-2) [Reported]")
	phq2Items = []question{
		{loinc("44250-9", "Little interest or pleasure in doing things in last 2 weeks"), phqAnswers},
		{loinc("44255-8", "Feeling down, depressed, or hopeless in last 2 weeks"), phqAnswers},
	}
	phq2Total  = loinc("55758-7", "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]")
	phqAnswers = []code{
		loinc("LA6568-5", "Not at all"),
		loinc("LA6569-3", "Several days"),
		loinc("LA6570-1", "More than half the days"),
		loinc("LA6571-9", "Nearly every day"),
	}

	hvsPanel = loinc("88121-9", "Hunger Vital Sign [HVS]")
	hvsItems = []question{
		{loinc("88122-7", "Within the past 12 months we worried whether our food would run out before we got money to buy more"), hvsAnswers},
		{loinc("88123-5", "Within the past 12 months the food we bought just didn't last and we didn't have money to get more"), hvsAnswers},
	}
	hvsRisk    = loinc("88124-3", "Food insecurity risk [HVS]")
	hvsAnswers = []code{
		loinc("LA28398-8", "Never true"),
		loinc("LA6729-3", "Sometimes true"),
		loinc("LA28397-0", "Often true"),
	}
	atRisk = loinc("LA19952-3", "At risk")
	noRisk = loinc("LA19983-8", "No risk")
)

// screening adds, at the last check-up, the Hunger Vital Sign (an SDOH
// screen, for everyone) and from age 12 the PHQ-2 depression screen:
// each a QuestionnaireResponse (US Core QuestionnaireResponse) and the
// Observations made of it (US Core Observation Screening Assessment): the
// panel with hasMember, one per answer and the scored result, each
// derivedFrom the response.
func (c *chart) screening() {
	v := c.last(checkup)
	at := v.start.Add(8 * time.Minute)
	// HVS: food insecure patients answer "sometimes" or "often".
	var hvs []int
	for range hvsItems {
		a := 0
		if c.p.foodInsec {
			a = between(c.r, 1, 2)
		}
		hvs = append(hvs, a)
	}
	risk := noRisk
	if c.p.foodInsec {
		risk = atRisk
	}
	c.instrument(v, at, "hvs", hvsPanel, "http://loinc.org/q/88121-9", hvsItems, hvs, hvsRisk,
		member{"valueCodeableConcept", concept(risk)}, obj{{"valueCoding", risk.coding()}}, true)
	if c.p.age >= 12 {
		a1, a2 := c.r.IntN(2), c.r.IntN(2)
		if c.p.has("depression") {
			a1, a2 = between(c.r, 1, 3), between(c.r, 1, 3)
		}
		value := member{"valueQuantity", obj{{"value", a1 + a2}, {"unit", "{score}"}, {"system", sysUCUM}, {"code", "{score}"}}}
		answer := obj{{"valueInteger", a1 + a2}}
		if chance(c.r, 0.04) { // the patient declined the second question: no total
			a2 = -1
			value, answer = member{"dataAbsentReason", dataAbsent("asked-declined", "Asked But Declined")}, nil
		}
		c.instrument(v, at, "phq2", phq2Panel, "http://loinc.org/q/55757-9", phq2Items, []int{a1, a2}, phq2Total, value, answer, false)
	}
}

// instrument adds one completed screen: value is the scored result as an
// Observation value, answer the same as a QuestionnaireResponse answer.
func (c *chart) instrument(v *visit, at time.Time, slug string, panel code, canonical string, items []question, answers []int,
	result code, value member, answer obj, sdoh bool) {
	qrID := c.id("qr", slug, strconv.Itoa(v.n))
	author := c.subject()
	if c.p.age < 12 {
		author = refd("RelatedPerson", c.contactID, c.contactGiven()+" "+c.p.family)
	}
	var qrItems []obj
	for k, q := range items {
		item := obj{{"linkId", "/" + q.code.code}, {"text", q.code.display}}
		if answers[k] >= 0 {
			item.set("answer", []obj{{{"valueCoding", q.answers[answers[k]].coding()}}})
		}
		qrItems = append(qrItems, item)
	}
	result0 := obj{{"linkId", "/" + result.code}, {"text", result.display}}
	if answer != nil {
		result0.set("answer", []obj{answer})
	}
	qrItems = append(qrItems, result0)
	c.add("QuestionnaireResponse", qrID, "us-core-questionnaireresponse", obj{
		{"questionnaire", canonical},
		{"_questionnaire", obj{{"extension", []obj{{{"url", usCore + "us-core-extension-questionnaire-uri"}, {"valueUri", canonical}}}}}},
		{"status", "completed"},
		{"subject", c.subject()},
		{"encounter", c.encounter(v)},
		{"authored", dateTime(at)},
		{"author", author},
		{"source", author},
		{"item", qrItems},
	})
	cats := concepts(catSurvey)
	if sdoh {
		cats = append(cats, concept(catSDOH))
	}
	obs := func(id string, cd code, rest ...member) {
		body := obj{
			{"status", "final"},
			{"category", cats},
			{"code", concept(cd)},
			{"subject", c.subject()},
			{"encounter", c.encounter(v)},
			{"effectiveDateTime", dateTime(at)},
			{"performer", []obj{author}},
		}
		body = append(body, rest...)
		c.add("Observation", id, "us-core-observation-screening-assessment", body)
	}
	var members []obj
	for k, q := range items {
		id := c.id("obs", slug, strconv.Itoa(k+1), strconv.Itoa(v.n))
		value := member{"dataAbsentReason", dataAbsent("asked-declined", "Asked But Declined")}
		if answers[k] >= 0 {
			value = member{"valueCodeableConcept", concept(q.answers[answers[k]])}
		}
		obs(id, q.code, value, member{"derivedFrom", []obj{ref("QuestionnaireResponse", qrID)}})
		members = append(members, ref("Observation", id))
	}
	resultID := c.id("obs", slug, "result", strconv.Itoa(v.n))
	obs(resultID, result, value, member{"derivedFrom", []obj{ref("QuestionnaireResponse", qrID)}})
	members = append(members, ref("Observation", resultID))
	obs(c.id("obs", slug, strconv.Itoa(v.n)), panel, member{"hasMember", members}, member{"derivedFrom", []obj{ref("QuestionnaireResponse", qrID)}})
}

// socialHistory adds, at the last check-up, tobacco smoking status (from
// age 12), sexual orientation and alcohol use (adults), and pregnancy
// status and intent (women 15 to 49).
func (c *chart) socialHistory() {
	v := c.last(checkup)
	at := v.start.Add(6 * time.Minute)
	n := strconv.Itoa(v.n)
	social := func(id, profile string, cd code, cats []obj, value member) {
		c.add("Observation", id, profile, obj{
			{"status", "final"},
			{"category", cats},
			{"code", concept(cd)},
			{"subject", c.subject()},
			{"encounter", c.encounter(v)},
			{"effectiveDateTime", dateTime(at)},
			{"performer", []obj{c.doctor()}},
			value,
		})
	}
	age := c.ageAt(at)
	if age >= 12 {
		social(c.id("obs", "smoking", n), "us-core-smokingstatus", smokingStatus, concepts(catSocial), member{"valueCodeableConcept", concept(c.p.smoking)})
	}
	if age >= 18 {
		w := make([]int, len(orientations))
		for k, o := range orientations {
			w[k] = o.weight
		}
		social(c.id("obs", "orientation", n), "us-core-observation-sexual-orientation", sexualOrientation, concepts(catSocial),
			member{"valueCodeableConcept", concept(orientations[weighted(c.r, w...)].code)})
		drinks := 0
		if chance(c.r, 0.55) {
			drinks = between(c.r, 1, 3)
		}
		social(c.id("obs", "alcohol", n), "us-core-simple-observation", alcoholPerDay, concepts(catSocial),
			member{"valueQuantity", obj{{"value", drinks}, {"unit", "drinks/day"}, {"system", sysUCUM}, {"code", "{drinks}/d"}}})
	}
	if c.p.female && age >= 15 && age < 50 && c.death.IsZero() {
		status, intent := notPregnant, pick(c.r, []code{intentNo, intentNo, intentYes, intentUnsure, intentEither})
		if chance(c.r, 0.05) {
			status, intent = pregnant, intentYes
		}
		social(c.id("obs", "pregnancy", n), "us-core-observation-pregnancystatus", pregnancyStatus, concepts(catSocial), member{"valueCodeableConcept", concept(status)})
		social(c.id("obs", "pregnancy-intent", n), "us-core-observation-pregnancyintent", pregnancyIntent, concepts(catSocial), member{"valueCodeableConcept", concept(intent)})
	}
}
