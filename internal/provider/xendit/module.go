package xendit

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/provider"
)

// Params are what the provider adapter is built from.
type Params struct {
	fx.In

	Config         config.Provider
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// Result is the adapter under the port's names: consumers ask for the
// provider.Client or the provider.CallbackVerifier, never for *Client.
type Result struct {
	fx.Out

	Client   provider.Client
	Verifier provider.CallbackVerifier
}

// Provide builds the adapter that PAYGATE_PROVIDER selects. The sandbox
// speaks Xendit's API, so both names get this adapter; the name says which
// provider the books, callbacks and metrics are about. Its HTTP client
// traces every call (a client span with the provider's host) and
// propagates the trace context.
func Provide(p Params) (Result, error) {
	hc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(p.TracerProvider), otelhttp.WithMeterProvider(p.MeterProvider),
		otelhttp.WithPropagators(p.Propagator))}
	c, err := New(Options{BaseURL: p.Config.BaseURL(), SecretKey: p.Config.SecretKey, Timeout: p.Config.Timeout,
		MaxAttempts: p.Config.MaxAttempts, SuccessReturnURL: p.Config.SuccessReturnURL,
		FailureReturnURL: p.Config.FailureReturnURL, HTTPClient: hc, Name: provider.Name(p.Config.Name)})
	if err != nil {
		return Result{}, err
	}
	return Result{Client: c, Verifier: NewVerifier(p.Config.CallbackToken)}, nil
}

// Module provides the payment provider's adapter.
var Module = fx.Module("provider", fx.Provide(Provide))
