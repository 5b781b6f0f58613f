package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// readChoiceElements returns the sorted names of the choice elements of the
// supported resource types and of the data types (not their profiles).
func readChoiceElements(dir string) ([]string, error) {
	var names []string
	for _, file := range []string{"profiles-resources.json.gz", "profiles-types.json.gz"} {
		path := filepath.Join(dir, file)
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var bundle struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.NewDecoder(zr).Decode(&bundle); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for i, e := range bundle.Entry {
			// Other resource types reuse these field names with other JSON
			// types: read the head first.
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil {
				return nil, fmt.Errorf("%s: entry %d: %w", path, i, err)
			}
			if head.ResourceType != "StructureDefinition" {
				continue
			}
			var sd struct {
				Kind       string `json:"kind"`
				Type       string `json:"type"`
				Derivation string `json:"derivation"`
				Snapshot   struct {
					Element []struct {
						Path string `json:"path"`
					} `json:"element"`
				} `json:"snapshot"`
			}
			if err := json.Unmarshal(e.Resource, &sd); err != nil {
				return nil, fmt.Errorf("%s: entry %d: %w", path, i, err)
			}
			if sd.Derivation == "constraint" || sd.Kind == "resource" && !slices.Contains(supported, sd.Type) {
				continue
			}
			for _, el := range sd.Snapshot.Element {
				if base, ok := strings.CutSuffix(el.Path, "[x]"); ok {
					names = append(names, base[strings.LastIndexByte(base, '.')+1:])
				}
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, must := range []string{"value", "effective", "onset", "deceased", "medication"} {
		if _, ok := slices.BinarySearch(names, must); !ok {
			return nil, fmt.Errorf("choice element %s[x] missing from %s", must, dir)
		}
	}
	return names, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readBundle(path string) ([]searchParameter, error) {
	var bundle struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource searchParameter `json:"resource"`
		} `json:"entry"`
	}
	if err := readJSON(path, &bundle); err != nil {
		return nil, err
	}
	if bundle.ResourceType != "Bundle" {
		return nil, fmt.Errorf("%s: resourceType %q, want Bundle", path, bundle.ResourceType)
	}
	var sps []searchParameter
	for i, e := range bundle.Entry {
		if e.Resource.ResourceType != "SearchParameter" || e.Resource.Code == "" {
			return nil, fmt.Errorf("%s: entry %d is not a SearchParameter with a code", path, i)
		}
		sps = append(sps, e.Resource)
	}
	return sps, nil
}

// readUSCoreParams reads the US Core SearchParameters, checking that the
// fhir-r4 folder's copy of the seven new ones agrees with the IG's.
func readUSCoreParams(r4Dir, usCoreDir string) ([]searchParameter, error) {
	files, err := filepath.Glob(filepath.Join(usCoreDir, "[sS]earch[pP]arameter-*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) < 50 {
		return nil, fmt.Errorf("found %d US Core SearchParameters in %s; expected about 90", len(files), usCoreDir)
	}
	slices.Sort(files)
	byURL := map[string]searchParameter{}
	var sps []searchParameter
	for _, f := range files {
		var sp searchParameter
		if err := readJSON(f, &sp); err != nil {
			return nil, err
		}
		if sp.ResourceType != "SearchParameter" || sp.Code == "" || sp.Expression == "" {
			return nil, fmt.Errorf("%s: not a SearchParameter with a code and an expression", f)
		}
		byURL[sp.URL] = sp
		sps = append(sps, sp)
	}
	extra, err := readBundle(filepath.Join(r4Dir, "search-parameters-uscore.json"))
	if err != nil {
		return nil, err
	}
	for _, sp := range extra {
		ig, ok := byURL[sp.URL]
		if !ok || ig.Expression != sp.Expression || ig.Code != sp.Code || ig.Type != sp.Type {
			return nil, fmt.Errorf("search-parameters-uscore.json: %s differs from the US Core IG's definition", sp.URL)
		}
	}
	return sps, nil
}

func readCompartment(path string) (map[string][]string, error) {
	var cd struct {
		ResourceType string `json:"resourceType"`
		Code         string `json:"code"`
		Resource     []struct {
			Code  string   `json:"code"`
			Param []string `json:"param"`
		} `json:"resource"`
	}
	if err := readJSON(path, &cd); err != nil {
		return nil, err
	}
	if cd.ResourceType != "CompartmentDefinition" || cd.Code != "Patient" {
		return nil, fmt.Errorf("%s: not the Patient CompartmentDefinition", path)
	}
	comp := map[string][]string{}
	for _, r := range cd.Resource {
		if slices.Contains(supported, r.Code) && len(r.Param) > 0 {
			comp[r.Code] = r.Param
		}
	}
	return comp, nil
}

// expectation is the capabilitystatement-expectation extension's value
// among exts, "" when there is none.
func expectation(exts []extension) string {
	for _, e := range exts {
		if e.URL == "http://hl7.org/fhir/StructureDefinition/capabilitystatement-expectation" {
			return e.ValueCode
		}
	}
	return ""
}

type extension struct {
	URL         string      `json:"url"`
	ValueCode   string      `json:"valueCode"`
	ValueString string      `json:"valueString"`
	Extension   []extension `json:"extension"`
}

// capability is the generator's view of spec.Expectation.
type capability struct {
	Expectation  string
	Interactions map[string]string
	Params       map[string]string
	Combinations []combination
	Includes     []string
	RevIncludes  []string
	Profiles     []string
	Operations   map[string]string
}

type combination struct {
	Params      []string
	Expectation string
}

func readCapabilities(path string) (map[string]capability, error) {
	type named struct {
		Extension []extension `json:"extension"`
		Code      string      `json:"code"`
		Name      string      `json:"name"`
	}
	var cs struct {
		ResourceType string `json:"resourceType"`
		URL          string `json:"url"`
		Rest         []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Extension        []extension `json:"extension"`
				Type             string      `json:"type"`
				SupportedProfile []string    `json:"supportedProfile"`
				Interaction      []named     `json:"interaction"`
				SearchParam      []named     `json:"searchParam"`
				Operation        []named     `json:"operation"`
				SearchInclude    []string    `json:"searchInclude"`
				SearchRevInclude []string    `json:"searchRevInclude"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := readJSON(path, &cs); err != nil {
		return nil, err
	}
	if cs.ResourceType != "CapabilityStatement" || len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" {
		return nil, fmt.Errorf("%s: not a server CapabilityStatement with one rest entry", path)
	}
	caps := map[string]capability{}
	for _, r := range cs.Rest[0].Resource {
		if !slices.Contains(supported, r.Type) {
			continue
		}
		c := capability{
			Expectation:  expectation(r.Extension),
			Interactions: map[string]string{},
			Params:       map[string]string{},
			Operations:   map[string]string{},
			Includes:     r.SearchInclude,
			RevIncludes:  r.SearchRevInclude,
			Profiles:     r.SupportedProfile,
		}
		for _, in := range r.Interaction {
			c.Interactions[in.Code] = expectation(in.Extension)
		}
		for _, sp := range r.SearchParam {
			c.Params[sp.Name] = expectation(sp.Extension)
		}
		for _, op := range r.Operation {
			c.Operations[op.Name] = expectation(op.Extension)
		}
		for _, e := range r.Extension {
			if e.URL != "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-parameter-combination" {
				continue
			}
			comb := combination{Expectation: expectation(e.Extension)}
			for _, part := range e.Extension {
				if part.URL == "required" {
					comb.Params = append(comb.Params, part.ValueString)
				}
			}
			c.Combinations = append(c.Combinations, comb)
		}
		caps[r.Type] = c
	}
	if len(caps) < 20 {
		return nil, fmt.Errorf("%s: only %d supported types in the CapabilityStatement", path, len(caps))
	}
	return caps, nil
}
