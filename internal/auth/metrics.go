package auth

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names of the auth domain, exported to Prometheus with a _total
// suffix. Dashboards and alerts are tested against these.
const (
	MetricRegistrations = "paygate.auth.registrations"
	MetricLogins        = "paygate.auth.logins"
	MetricRefreshes     = "paygate.auth.token_refreshes"
)

// Bounded label values: result is one of these, never free text.
var (
	LoginResults   = []string{"success", "invalid_credentials", "rate_limited"}
	RefreshResults = []string{"success", "invalid", "reused"}
)

type metrics struct {
	registrations metric.Int64Counter
	logins        metric.Int64Counter
	refreshes     metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("paygate/auth")
	reg, err := m.Int64Counter(MetricRegistrations, metric.WithDescription("Users registered (self-service and by admins)."))
	if err != nil {
		return nil, err
	}
	logins, err := m.Int64Counter(MetricLogins, metric.WithDescription("Login attempts by result."))
	if err != nil {
		return nil, err
	}
	ref, err := m.Int64Counter(MetricRefreshes, metric.WithDescription("Refresh token rotations by result."))
	if err != nil {
		return nil, err
	}
	return &metrics{registrations: reg, logins: logins, refreshes: ref}, nil
}

func (m *metrics) registered(ctx context.Context) {
	if m != nil {
		m.registrations.Add(ctx, 1)
	}
}

func (m *metrics) login(ctx context.Context, result string) {
	if m != nil {
		m.logins.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	}
}

func (m *metrics) refresh(ctx context.Context, result string) {
	if m != nil {
		m.refreshes.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	}
}
