package synth

import "strconv"

// Groups returns the Groups for Bulk Data export (Group/{id}/$export):
// every patient of the set (syn-<seed>-all) and the cohorts
// (syn-<seed>-diabetes, -hypertension, -pediatric, -older-adults), each an
// actual person Group whose member.entity references the patients. They
// depend on Options.Patients: a larger set updates them. Building them
// draws each patient's plan again (not the chart), so it is cheap.
func (g *Generator) Groups() []Resource {
	all := make([]obj, 0, g.n)
	var cohorts [cohortCount][]obj
	for i := range g.n {
		p := g.plan(i)
		m := obj{{"entity", refd("Patient", p.id, p.fullName())}}
		all = append(all, m)
		for k, in := range p.cohorts() {
			if in {
				cohorts[k] = append(cohorts[k], m)
			}
		}
	}
	b := &builder{}
	group := func(slug, name string, members []obj) {
		b.add("Group", g.prefix+slug, "", obj{
			{"identifier", []obj{{{"system", sysBase + "group"}, {"value", g.prefix + slug}}}},
			{"active", true},
			{"type", "person"},
			{"actual", true},
			{"name", name},
			{"quantity", len(members)},
			{"managingEntity", refd("Organization", g.dir.sites[0].org, g.dir.sites[0].name)},
			{"member", members},
		})
	}
	seed := strconv.FormatUint(g.seed, 10)
	group("all", "Synthetic patients (seed "+seed+")", all)
	for k, c := range cohortNames {
		group(c[0], c[1]+" (synthetic, seed "+seed+")", cohorts[k])
	}
	return b.out
}

// GroupIDs are the ids of the Groups, the one of every patient first.
func (g *Generator) GroupIDs() []string {
	ids := []string{g.prefix + "all"}
	for _, c := range cohortNames {
		ids = append(ids, g.prefix+c[0])
	}
	return ids
}

// Seed is the seed of the set.
func (g *Generator) Seed() uint64 { return g.seed }

// Each calls fn with the shared directory, then with each patient's chart
// in order, then with the Groups: the whole set, one slice at a time, so
// a caller holds one chart at a time (memory stays bounded whatever the
// number of patients; only the Groups grow with it). It stops at the
// first error fn returns.
func (g *Generator) Each(fn func([]Resource) error) error {
	if err := fn(g.Shared()); err != nil {
		return err
	}
	for i := range g.n {
		if err := fn(g.Chart(i)); err != nil {
			return err
		}
	}
	return fn(g.Groups())
}
