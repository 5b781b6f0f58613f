package sqlstore

import "testing"

func TestCustomPlans(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?plan_cache_mode=force_custom_plan&sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db?plan_cache_mode=force_custom_plan"},
		{"postgres://u@h/db?plan_cache_mode=auto", "postgres://u@h/db?plan_cache_mode=auto"},
	} {
		if got := customPlans(tc.in); got != tc.want {
			t.Errorf("customPlans(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
