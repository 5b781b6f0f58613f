package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

// watch is `load watch -pid PID`: it samples the process until it exits
// and prints one JSON line: its wall time from the first sample, its CPU
// time (utime + stime, the last value read before it exited), its largest
// VmRSS and its last VmHWM. bench/data.sh runs it beside `smartgate seed`
// and `smartgate import`, which are not servers but must stay within the
// same memory bound. With -while PID2 it samples PID only while PID2 runs
// (a server under another load generator, such as wrk) and its CPU time
// is what PID used meanwhile.
func watch(args []string) error {
	fs := flag.NewFlagSet("load watch", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "process to watch")
	while := fs.Int("while", 0, "watch -pid only while this process runs, and count the CPU -pid used meanwhile")
	every := fs.Duration("every", 100*time.Millisecond, "sampling interval")
	label := fs.String("label", "", "a name for the output line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 || *while < 0 || fs.NArg() > 0 {
		return errors.New("usage: load watch -pid PID [-while PID] [-every 100ms] [-label NAME]")
	}
	cpu0, err := procCPU(*pid)
	if err != nil {
		return fmt.Errorf("-pid %d: %w", *pid, err)
	}
	if *while == 0 {
		cpu0 = 0 // the process's whole CPU time
	}
	start := time.Now()
	var cpu time.Duration
	var rss, hwm int64
	samples := 0
	busy0, _, _ := machineCPU()
	var busy time.Duration
	for {
		if *while > 0 {
			if _, err := procCPU(*while); err != nil {
				break // the load is over
			}
		}
		c, err := procCPU(*pid)
		if err != nil {
			break // gone
		}
		c -= cpu0
		if r, err := procRSS(*pid); err == nil {
			rss = max(rss, r)
		}
		if h, err := procHWM(*pid); err == nil {
			hwm = max(hwm, h)
		}
		cpu = c
		if b, _, err := machineCPU(); err == nil {
			busy = b - busy0
		}
		samples++
		time.Sleep(*every)
	}
	wall := time.Since(start)
	out := map[string]any{
		"label": *label, "pid": *pid, "seconds": round(wall.Seconds(), 2), "cpu_seconds": round(cpu.Seconds(), 2),
		"cores": round(cpu.Seconds()/wall.Seconds(), 2), "rss_max_mb": round(float64(rss)/(1<<20), 1),
		"hwm_mb": round(float64(hwm)/(1<<20), 1), "samples": samples,
		// everything else that ran on the machine meanwhile, in cores
		"other_cpu_cores": round(max(0, (busy-cpu).Seconds())/wall.Seconds(), 2),
	}
	b, _ := json.Marshal(out)
	fmt.Fprintln(os.Stdout, string(b))
	return nil
}
