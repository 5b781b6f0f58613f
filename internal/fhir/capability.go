package fhir

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"smartgate/internal/fhir/spec"
)

// Capabilities builds the CapabilityStatement from what the server really
// supports: the served types, their search parameters (every parameter the
// index extracts), the interactions the handlers implement, and the US
// Core 6.1.0 expectations (profiles, SHALL/SHOULD search combinations),
// all of which the search engine supports.
func (a *API) Capabilities() map[string]any {
	var resources []map[string]any
	interactions := []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"}
	for _, typ := range spec.Types() {
		us, isUS := spec.USCore(typ)
		res := map[string]any{
			"type":              typ,
			"profile":           "http://hl7.org/fhir/StructureDefinition/" + typ,
			"versioning":        "versioned",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": true,
			"conditionalRead":   "not-supported",
			"conditionalUpdate": false,
			"conditionalDelete": "not-supported",
			"referencePolicy":   []string{"literal", "local"},
		}
		var ints []map[string]any
		for _, code := range interactions {
			in := map[string]any{"code": code}
			if isUS && us.Interactions[code] != "" {
				in["extension"] = expectation(us.Interactions[code])
			}
			ints = append(ints, in)
		}
		res["interaction"] = ints
		if isUS {
			if len(us.Profiles) > 0 {
				res["supportedProfile"] = us.Profiles
			}
			if us.Expectation != "" {
				res["extension"] = expectation(us.Expectation)
			}
		}
		var params []map[string]any
		var includes []string
		for _, p := range spec.Params(typ) {
			if !searchable(p) {
				continue
			}
			sp := map[string]any{"name": p.Code, "type": string(p.Type)}
			if p.URL != "" {
				sp["definition"] = p.URL
			}
			if isUS && us.Params[p.Code] != "" {
				sp["extension"] = expectation(us.Params[p.Code])
			}
			params = append(params, sp)
			if p.Type == spec.Reference {
				includes = append(includes, typ+":"+p.Code)
				for _, t := range p.Targets {
					if spec.Supported(t) && len(p.Targets) > 1 {
						includes = append(includes, typ+":"+p.Code+":"+t)
					}
				}
			}
		}
		for _, extra := range []string{"_id", "_lastUpdated"} {
			if !slices.ContainsFunc(params, func(m map[string]any) bool { return m["name"] == extra }) {
				t := "token"
				if extra == "_lastUpdated" {
					t = "date"
				}
				sp := map[string]any{"name": extra, "type": t}
				if isUS && us.Params[extra] != "" {
					sp["extension"] = expectation(us.Params[extra])
				}
				params = append(params, sp)
			}
		}
		slices.SortFunc(params, func(x, y map[string]any) int {
			return cmpString(x["name"].(string), y["name"].(string))
		})
		res["searchParam"] = params
		if len(includes) > 0 {
			res["searchInclude"] = includes
		}
		var ops []map[string]any
		if typ == "DocumentReference" {
			op := map[string]any{"name": "docref", "definition": "http://hl7.org/fhir/us/core/OperationDefinition/docref"}
			if isUS && us.Operations["docref"] != "" {
				op["extension"] = expectation(us.Operations["docref"])
			}
			ops = append(ops, op)
		}
		if a.exports != nil && typ == "Patient" {
			ops = append(ops, map[string]any{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"})
		}
		if a.exports != nil && typ == "Group" {
			ops = append(ops, map[string]any{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"})
		}
		if len(ops) > 0 {
			res["operation"] = ops
		}
		if rev := revIncludes(typ); len(rev) > 0 {
			res["searchRevInclude"] = rev
		}
		if isUS {
			var ext []map[string]any
			if e, ok := res["extension"].([]map[string]any); ok {
				ext = e
			}
			for _, c := range us.Combinations {
				combo := []map[string]any{expectation(c.Expectation)[0]}
				for _, p := range c.Params {
					combo = append(combo, map[string]any{"url": "required", "valueString": p})
				}
				ext = append(ext, map[string]any{
					"url":       "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-parameter-combination",
					"extension": combo,
				})
			}
			if len(ext) > 0 {
				res["extension"] = ext
			}
		}
		resources = append(resources, res)
	}
	security := map[string]any{
		"cors": true,
		"service": []map[string]any{{
			"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}},
			"text":   "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
		}},
		"description": "SMART App Launch 2.2 and SMART Backend Services; discovery at " + a.base + "/.well-known/smart-configuration",
	}
	var uris []map[string]any
	for _, u := range a.oauthURIs() {
		uris = append(uris, map[string]any{"url": u[0], "valueUri": u[1]})
	}
	security["extension"] = []map[string]any{{
		"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
		"extension": uris,
	}}
	rest := map[string]any{
		"mode":        "server",
		"security":    security,
		"resource":    resources,
		"interaction": []map[string]any{{"code": "transaction"}, {"code": "batch"}},
	}
	cs := map[string]any{
		"resourceType":        "CapabilityStatement",
		"id":                  "smartgate",
		"url":                 a.base + "/metadata",
		"name":                "SmartgateFHIRServer",
		"title":               "smartgate FHIR R4 server",
		"status":              "active",
		"experimental":        false,
		"date":                a.start.Format(time.RFC3339),
		"publisher":           "smartgate",
		"kind":                "instance",
		"implementationGuide": []string{"http://hl7.org/fhir/us/core/ImplementationGuide/hl7.fhir.us.core|6.1.0", "http://hl7.org/fhir/smart-app-launch/ImplementationGuide/hl7.fhir.uv.smart-app-launch"},
		"software":            map[string]any{"name": a.soft, "version": a.ver},
		"implementation":      map[string]any{"description": "smartgate FHIR R4 API", "url": a.base},
		"fhirVersion":         spec.FHIRVersion(),
		"format":              []string{"json", "application/fhir+json"},
		"patchFormat":         []string{},
		"rest":                []map[string]any{rest},
	}
	if a.exports != nil {
		// Bulk Data Access 2.0: the server instantiates its
		// CapabilityStatement and declares the system-level export.
		cs["instantiates"] = []string{"http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"}
		rest["operation"] = []map[string]any{{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}}
	}
	return cs
}

// oauthURIs are the SMART oauth-uris extension members: only endpoints
// that exist on this server.
func (a *API) oauthURIs() [][2]string { return a.uris }

func expectation(v string) []map[string]any {
	return []map[string]any{{"url": "http://hl7.org/fhir/StructureDefinition/capabilitystatement-expectation", "valueCode": v}}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// searchable reports whether the search engine answers p.
func searchable(p spec.Param) bool {
	switch p.Type {
	case spec.Composite, spec.Special:
		return false
	}
	return p.Expression != "" || p.Code == "_id" || p.Code == "_lastUpdated"
}

// revIncludes lists Source:param for every reference parameter of a served
// type that can point at typ.
func revIncludes(typ string) []string {
	var out []string
	for _, src := range spec.Types() {
		for _, p := range spec.Params(src) {
			if p.Type == spec.Reference && searchable(p) && (slices.Contains(p.Targets, typ) || slices.Contains(p.Targets, "Resource")) {
				out = append(out, src+":"+p.Code)
			}
		}
	}
	return out
}

func (a *API) metadata(w http.ResponseWriter, r *http.Request) error {
	a.capMu.Lock()
	if a.capJSON == nil {
		a.capJSON, _ = json.Marshal(a.Capabilities())
	}
	body := a.capJSON
	a.capMu.Unlock()
	w.Header().Set("Cache-Control", "public, max-age=300")
	return writeJSON(w, r, http.StatusOK, body)
}
