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
	// MetricThrottled counts password checks and registrations refused by
	// a throttle (429), by operation and by the limit that refused.
	MetricThrottled = "paygate.auth.throttled"
	// MetricHashShed counts requests shed by the password hashing queue
	// (503), by what they were hashing.
	MetricHashShed = "paygate.auth.hash_shed"
)

// Operations and scopes of MetricThrottled, and kinds of MetricHashShed.
const (
	OpLogin          = "login"
	OpPasswordChange = "password_change"
	OpRegister       = "register"
	ScopeEmail       = "email"
	ScopeIP          = "ip"
	HashVerify       = "verify"
	HashNewPassword  = "new_password"
)

// Bounded label values: result is one of these, never free text.
var (
	LoginResults    = []string{"success", "invalid_credentials", "rate_limited", "shed"}
	RefreshResults  = []string{"success", "invalid", "reused", "retried"}
	ThrottledOps    = []string{OpLogin, OpPasswordChange, OpRegister}
	ThrottledScopes = []string{ScopeEmail, ScopeIP}
	HashShedKinds   = []string{HashVerify, HashNewPassword}
)

type metrics struct {
	registrations metric.Int64Counter
	logins        metric.Int64Counter
	refreshes     metric.Int64Counter
	throttles     metric.Int64Counter
	shed          metric.Int64Counter
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
	thr, err := m.Int64Counter(MetricThrottled, metric.WithDescription("Password checks and registrations refused by a throttle (429), by operation and scope."))
	if err != nil {
		return nil, err
	}
	shed, err := m.Int64Counter(MetricHashShed, metric.WithDescription("Requests shed by the full password hashing queue (503), by kind."))
	if err != nil {
		return nil, err
	}
	// Every series of the two starts at 0, so that a first refusal shows
	// as an increase and alerts see a rate rather than an absent series.
	for _, op := range ThrottledOps {
		for _, scope := range ThrottledScopes {
			thr.Add(context.Background(), 0, metric.WithAttributes(attribute.String("operation", op), attribute.String("scope", scope)))
		}
	}
	for _, kind := range HashShedKinds {
		shed.Add(context.Background(), 0, metric.WithAttributes(attribute.String("kind", kind)))
	}
	return &metrics{registrations: reg, logins: logins, refreshes: ref, throttles: thr, shed: shed}, nil
}

func (m *metrics) throttled(ctx context.Context, op, scope string) {
	if m != nil {
		m.throttles.Add(ctx, 1, metric.WithAttributes(attribute.String("operation", op), attribute.String("scope", scope)))
	}
}

func (m *metrics) hashShed(newPassword bool) {
	if m != nil {
		kind := HashVerify
		if newPassword {
			kind = HashNewPassword
		}
		m.shed.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", kind)))
	}
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
