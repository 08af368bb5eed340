package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/sostenuto/sostenuto/server/tracing"
)

// traceConfig is where the node sends its spans (docs/DEPLOYMENT.md,
// "Tracing"); off without an endpoint.
type traceConfig struct {
	endpoint string
	sample   float64
}

func (c *traceConfig) settings() []setting {
	return []setting{
		{name: "otlp-endpoint", usage: "OTLP/HTTP collector URL spans are sent to (http://collector:4318; /v1/traces is added to a URL without a path); empty: tracing off", parse: endpointVar(&c.endpoint)},
		{name: "trace-sample", usage: "share of new traces recorded, 0 to 1 (a request arriving with a traceparent follows its caller's decision)", def: "1", parse: ratioVar(&c.sample)},
	}
}

// provider builds the tracer provider of service on this instance: an off
// one without an endpoint.
func (c *traceConfig) provider(ctx context.Context, service, instance string) (*tracing.Provider, error) {
	if instance == "" {
		instance, _ = os.Hostname()
	}
	p, err := tracing.New(ctx, tracing.Config{Endpoint: c.endpoint, SampleRatio: c.sample, Service: service,
		Version: buildVersion(), Instance: instance})
	if err != nil {
		return nil, &configError{setting: envName("otlp-endpoint"), err: err}
	}
	return p, nil
}

func endpointVar(dst *string) func(string) error {
	return func(v string) error {
		if v != "" {
			if _, err := tracing.TracesURL(v); err != nil {
				return err
			}
		}
		*dst = v
		return nil
	}
}

func ratioVar(dst *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Errorf("%q is not a number from 0 to 1", v)
		}
		*dst = f
		return nil
	}
}
