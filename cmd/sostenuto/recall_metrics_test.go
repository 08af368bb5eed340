package main

import (
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Before its first sample a node exports its recall as not a number, so
// SostenutoRecallLow (recall < 0.95) cannot fire on a node that has not
// measured it.
func TestRecallGaugesUnsetUntilSampled(t *testing.T) {
	reg := prometheus.NewRegistry()
	recallSampler("", nil, nil, time.Minute, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			seen++
			if v := m.GetGauge().GetValue(); !math.IsNaN(v) {
				t.Errorf("%s = %v before any sample, want NaN", mf.GetName(), v)
			}
		}
	}
	if seen != 2 {
		t.Errorf("%d recall series, want 2", seen)
	}
}
