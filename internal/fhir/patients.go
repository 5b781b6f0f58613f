package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"smartgate/internal/fhir/index"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// PatientChoice is one patient the launch-context picker offers.
type PatientChoice struct {
	ID         string
	Name       string
	BirthDate  string
	Gender     string
	Identifier string // the first identifier, "system|value" shortened to its value
}

// reachable is the condition on Patient resources a user (its fhirUser
// reference) may act for in a launch context: a patient their own record,
// a related person the patients they relate to, a practitioner every
// patient or, under fhir.practitioner_access care-relationship, the
// patients linked to them. ok is false when the user may act for none.
func (a *API) reachable(ctx context.Context, fhirUser string) (cond store.Cond, ok bool, err error) {
	typ, id, _ := index.SplitReference(fhirUser, a.base)
	switch typ {
	case "Patient":
		return store.IDIn{IDs: []string{id}}, id != "", nil
	case "RelatedPerson":
		pats, err := a.relatedPatients(ctx, id)
		if err != nil {
			return nil, false, err
		}
		return store.IDIn{IDs: pats}, len(pats) > 0, nil
	case "Practitioner":
		if a.practitionerAccess == "care-relationship" {
			return store.LinkedPatients{Type: "Practitioner", ID: id, Via: careLinks}, true, nil
		}
		return nil, true, nil
	}
	return nil, false, nil
}

// FindPatients searches the patients fhirUser may act for with the
// picker's criteria (name, birthdate, identifier: FHIR search syntax) and
// returns at most limit of them, and whether there were more.
func (a *API) FindPatients(ctx context.Context, fhirUser string, criteria url.Values, limit int) ([]PatientChoice, bool, error) {
	reach, ok, err := a.reachable(ctx, fhirUser)
	if err != nil || !ok {
		return nil, false, err
	}
	q := url.Values{}
	for _, k := range []string{"name", "birthdate", "identifier"} {
		if v := strings.TrimSpace(criteria.Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	s, err := a.parseSearch("Patient", q, true)
	if err != nil {
		return nil, false, err
	}
	where := andConds(reach, s.where)
	res, err := a.store.Search(ctx, store.Query{Type: "Patient", Where: where, Sort: []store.Sort{{Param: "name", Kind: "string"}}, Page: store.Page{Count: limit}})
	if err != nil {
		return nil, false, problem.Internal(err)
	}
	out := make([]PatientChoice, 0, len(res.Resources))
	for _, f := range res.Resources {
		out = append(out, patientChoice(f.ID, f.Body))
	}
	return out, res.More, nil
}

// MayActFor reports whether fhirUser may act for the patient with this id
// (which must exist): the check an EHR launch and the picker make.
func (a *API) MayActFor(ctx context.Context, fhirUser, patientID string) (bool, error) {
	reach, ok, err := a.reachable(ctx, fhirUser)
	if err != nil || !ok || patientID == "" {
		return false, err
	}
	res, err := a.store.Search(ctx, store.Query{Type: "Patient", Where: andConds(reach, store.IDIn{IDs: []string{patientID}}), Page: store.Page{Count: 1}})
	if err != nil {
		return false, problem.Internal(err)
	}
	return len(res.Resources) == 1, nil
}

// OwnPatients lists the patients a patient or related-person user acts
// for (their own record, the patients they relate to); nil for others.
func (a *API) OwnPatients(ctx context.Context, fhirUser string) ([]PatientChoice, error) {
	typ, _, _ := index.SplitReference(fhirUser, a.base)
	if typ != "Patient" && typ != "RelatedPerson" {
		return nil, nil
	}
	out, _, err := a.FindPatients(ctx, fhirUser, nil, 50)
	return out, err
}

func andConds(cs ...store.Cond) store.Cond {
	var and store.And
	for _, c := range cs {
		if c != nil {
			and = append(and, c)
		}
	}
	switch len(and) {
	case 0:
		return nil
	case 1:
		return and[0]
	}
	return and
}

// patientChoice reads what the picker shows from a Patient's JSON.
func patientChoice(id string, body []byte) PatientChoice {
	var p struct {
		Name []struct {
			Text   string   `json:"text"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		BirthDate  string `json:"birthDate"`
		Gender     string `json:"gender"`
		Identifier []struct {
			Value string `json:"value"`
		} `json:"identifier"`
	}
	_ = json.Unmarshal(body, &p)
	c := PatientChoice{ID: id, BirthDate: p.BirthDate, Gender: p.Gender}
	if len(p.Name) > 0 {
		n := p.Name[0]
		c.Name = n.Text
		if c.Name == "" {
			c.Name = strings.TrimSpace(strings.Join(n.Given, " ") + " " + n.Family)
		}
	}
	if c.Name == "" {
		c.Name = "Patient/" + id
	}
	if len(p.Identifier) > 0 {
		c.Identifier = p.Identifier[0].Value
	}
	return c
}

// Exists reports whether a current (not deleted) resource exists and,
// when patient is not empty, whether it belongs with that patient: it is
// in the patient's compartment, or it holds no patient data at all (a
// Practitioner, a Location, ...).
func (a *API) Exists(ctx context.Context, typ, id, patient string) (bool, error) {
	var access store.Cond
	if patient != "" && !patientFree[typ] {
		if typ == "Patient" {
			access = store.IDIn{IDs: []string{patient}}
		} else {
			access = compartmentCond(typ, []string{patient})
		}
	}
	_, err := a.store.ReadResource(ctx, typ, id, access)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGone), errors.Is(err, store.ErrAccessDenied):
		return false, nil
	}
	return false, problem.Internal(err)
}
