package synth

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// Resource is one generated resource: its type, id and FHIR JSON body
// (resourceType and id first, then meta.profile naming the US Core profile
// it follows; Binary and Group have none). The store adds meta.versionId
// and meta.lastUpdated.
type Resource struct {
	Type, ID string
	Body     []byte
}

// Options say what to generate.
type Options struct {
	// Patients is how many patients the set has.
	Patients int
	// Seed picks the set: the same Seed gives the same bytes; ids carry it,
	// so sets of different seeds live side by side in one store.
	Seed uint64
}

// Generator builds the set. It holds only the shared directory (a few
// dozen resources); every patient's chart is built on demand from the
// seed and the patient's number, so charts can be built in any order, in
// parallel, and patient i is the same whatever Options.Patients is.
type Generator struct {
	seed   uint64
	n      int
	prefix string // "syn-<seed>-"
	dir    directory
}

// New returns the generator of opts.
func New(opts Options) *Generator {
	g := &Generator{seed: opts.Seed, n: max(opts.Patients, 0), prefix: "syn-" + strconv.FormatUint(opts.Seed, 10) + "-"}
	g.dir = g.buildDirectory()
	return g
}

// Patients is the number of patients of the set.
func (g *Generator) Patients() int { return g.n }

// PatientID is the id of patient i (0-based): syn-<seed>-<i+1>.
func (g *Generator) PatientID(i int) string { return g.prefix + strconv.Itoa(i+1) }

// anchor is the fixed "today" of the data set: every date is before it, so
// the set never changes with the clock.
var anchor = time.Date(2025, time.June, 1, 0, 0, 0, 0, time.UTC)

// Streams of the PCG: each patient has two of its own (its plan, which
// Groups re-draws, and the rest of its chart), the directory a third kind.
func (g *Generator) planRand(i int) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed, uint64(i)<<2))
}

func (g *Generator) chartRand(i int) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed, uint64(i)<<2|1))
}

func (g *Generator) dirRand() *rand.Rand {
	return rand.New(rand.NewPCG(g.seed, 1<<63|2))
}

// builder collects encoded resources.
type builder struct {
	out []Resource
}

func (b *builder) add(typ, id, profile string, body obj) {
	b.out = append(b.out, Resource{Type: typ, ID: id, Body: encode(make([]byte, 0, 1024), typ, id, profile, body)})
}

// pick returns one of xs.
func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// chance is true with probability p.
func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }

// between is a uniform int in [lo, hi].
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

// around is base moved by up to spread either way.
func around(r *rand.Rand, base, spread float64) float64 { return base + (r.Float64()*2-1)*spread }

// weighted picks an index by weights.
func weighted(r *rand.Rand, weights ...int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

// digits is n random decimal digits.
func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}
