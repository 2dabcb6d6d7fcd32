// Package telemetry wires OpenTelemetry: a tracer provider exporting to an
// OTLP collector (configured entirely by the standard OTEL_* variables), and
// a meter provider read by the Prometheus exporter that /metrics serves,
// together with Go runtime and process metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/buildinfo"
)

// ServiceName is the service.name resource attribute unless OTEL_SERVICE_NAME
// overrides it.
const ServiceName = "paygate"

// Telemetry owns the providers and the Prometheus registry behind /metrics.
type Telemetry struct {
	TracerProvider *sdktrace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
	Registry       *prometheus.Registry
	Propagator     propagation.TextMapPropagator
}

// New builds the providers. The span exporter is chosen by
// OTEL_TRACES_EXPORTER (otlp by default, "none" to record no span) and configured by
// OTEL_EXPORTER_OTLP_*; the sampler by OTEL_TRACES_SAMPLER(_ARG); resource
// attributes by OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
func New(ctx context.Context) (*Telemetry, error) {
	res, err := newResource(ctx)
	if err != nil {
		return nil, err
	}

	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("span exporter: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if autoexport.IsNoneSpanExporter(exp) {
		// Nothing would read a recorded span. Spans still get their ids,
		// which logs and the events' traceparent carry, but none records
		// its attributes, events and timings: that was a tenth of the
		// gateway's CPU under load, spent on spans handed to a no-op.
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	} else {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)

	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("register process collector: %w", err)
	}
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(promExp), sdkmetric.WithResource(res))

	return &Telemetry{
		TracerProvider: tp,
		MeterProvider:  mp,
		Registry:       reg,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// newResource describes this process. Later options override earlier ones,
// so OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME win over the defaults.
// K8S_POD_NAME and K8S_NAMESPACE are set by the Helm chart from the
// downward API.
func newResource(ctx context.Context) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithAttributes(semconv.ServiceName(ServiceName), semconv.ServiceVersion(buildinfo.Version)),
		resource.WithTelemetrySDK(),
		resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion(),
	}
	if pod := os.Getenv("K8S_POD_NAME"); pod != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.K8SPodName(pod)))
	}
	if ns := os.Getenv("K8S_NAMESPACE"); ns != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.K8SNamespaceName(ns)))
	}
	attrs = append(attrs, resource.WithFromEnv())
	res, err := resource.New(ctx, attrs...)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("resource: %w", err)
	}
	return res, nil
}

// MetricsHandler serves the Prometheus exposition of every registered metric.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry})
}

// Shutdown flushes pending spans and stops both providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.TracerProvider.Shutdown(ctx), t.MeterProvider.Shutdown(ctx))
}

// Meter returns the named meter of paygate's meter provider.
func (t *Telemetry) Meter(name string) metric.Meter { return t.MeterProvider.Meter(name) }

// Tracer returns the named tracer of paygate's tracer provider.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// installGlobals makes the providers and propagator the process-wide
// defaults, for instrumentation libraries that read the globals.
func (t *Telemetry) installGlobals(log *zap.Logger) {
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTextMapPropagator(t.Propagator)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", zap.Error(err))
	}))
}
