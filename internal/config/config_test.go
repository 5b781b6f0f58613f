package config

import (
	"runtime"
	"testing"
)

func TestFHIRReadSlots(t *testing.T) {
	c := Default()
	c.Database = "/var/lib/smartgate/smartgate.db"
	if got, want := c.FHIRReadSlots(), 2*runtime.GOMAXPROCS(0); got != want {
		t.Errorf("SQLite, read_slots 0: %d, want %d (twice GOMAXPROCS)", got, want)
	}
	c.Database = "postgres://db.internal/smartgate"
	if got, want := c.FHIRReadSlots(), 2*runtime.GOMAXPROCS(0)+c.DatabaseMaxConns; got != want {
		t.Errorf("PostgreSQL, read_slots 0: %d, want %d (plus database_max_conns)", got, want)
	}
	c.FHIR.ReadSlots = 3
	if got := c.FHIRReadSlots(); got != 3 {
		t.Errorf("read_slots 3: %d", got)
	}
}
