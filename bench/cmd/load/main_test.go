package main

import (
	"os"
	"testing"
	"time"
)

func TestLoopbackOnly(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1"} {
		if err := loopbackOnly(h); err != nil {
			t.Errorf("loopbackOnly(%q) = %v, want nil", h, err)
		}
	}
	for _, h := range []string{"10.0.0.1", "192.168.1.1", "8.8.8.8", "::ffff:10.0.0.1", "0.0.0.0"} {
		if err := loopbackOnly(h); err == nil {
			t.Errorf("loopbackOnly(%q) = nil, want a refusal", h)
		}
	}
}

func TestValidateRefusesNonLoopbackURL(t *testing.T) {
	o := options{url: "http://10.1.2.3:8080/oauth2/token", mode: "cc-secret", c: 16, d: time.Second, auth: "basic", clientID: "a", secret: "b"}
	if err := o.validate(); err == nil {
		t.Fatal("validate accepted a non-loopback URL")
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if got := quantile(d, 0.5); got != 50*time.Millisecond {
		t.Errorf("p50 = %s, want 50ms", got)
	}
	if got := quantile(d, 0.99); got != 99*time.Millisecond {
		t.Errorf("p99 = %s, want 99ms", got)
	}
	if got := quantile(d[:1], 0.99); got != time.Millisecond {
		t.Errorf("p99 of one = %s, want 1ms", got)
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU: %v", err)
	}
	if rss, err := procRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("procRSS = %d, %v", rss, err)
	}
	if _, _, err := machineCPU(); err != nil {
		t.Errorf("machineCPU: %v", err)
	}
}
