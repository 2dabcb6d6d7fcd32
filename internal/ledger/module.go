package ledger

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/auth"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/users"
)

// Metric names of the ledger.
const (
	// MetricVerificationOK is 1 when the last verification found the
	// ledger consistent, 0 when it found violations.
	MetricVerificationOK = "paygate.ledger.verification.ok"
	// MetricVerificationViolations is the number of violations found by
	// the last verification.
	MetricVerificationViolations = "paygate.ledger.verification.violations"
	// MetricVerificationTime is when the last verification ran (Unix
	// seconds), so a stalled verifier shows.
	MetricVerificationTime = "paygate.ledger.verification.timestamp"
)

// VerifierParams are the dependencies of the verifier.
type VerifierParams struct {
	fx.In

	Store  *Store
	Owners []HoldOwner `group:"hold_owners"`
}

// ProvideVerifier builds the verifier over every hold owner.
func ProvideVerifier(p VerifierParams) *Verifier { return NewVerifier(p.Store, p.Owners...) }

// AsHoldOwner annotates a constructor whose result joins the hold owners.
func AsHoldOwner(f any) any {
	return fx.Annotate(f, fx.As(new(HoldOwner)), fx.ResultTags(`group:"hold_owners"`))
}

// verificationGauge records verification outcomes.
type verificationGauge struct {
	ok, violations, at metric.Int64Gauge
}

func newVerificationGauge(mp metric.MeterProvider) (*verificationGauge, error) {
	m := mp.Meter("paygate/ledger")
	ok, err := m.Int64Gauge(MetricVerificationOK, metric.WithDescription("1 when the last ledger verification passed, 0 when it found violations."))
	if err != nil {
		return nil, err
	}
	v, err := m.Int64Gauge(MetricVerificationViolations, metric.WithDescription("Violations found by the last ledger verification."))
	if err != nil {
		return nil, err
	}
	at, err := m.Int64Gauge(MetricVerificationTime, metric.WithUnit("s"), metric.WithDescription("Unix time of the last ledger verification."))
	if err != nil {
		return nil, err
	}
	return &verificationGauge{ok: ok, violations: v, at: at}, nil
}

func (g *verificationGauge) record(ctx context.Context, rep Report) {
	ok := int64(0)
	if rep.OK() {
		ok = 1
	}
	g.ok.Record(ctx, ok)
	g.violations.Record(ctx, int64(len(rep.Violations)))
	g.at.Record(ctx, time.Now().Unix())
}

// HandlerParams are the dependencies of the saldo handler.
type HandlerParams struct {
	fx.In

	Lifecycle     fx.Lifecycle
	Store         *Store
	Verifier      *Verifier
	Users         *users.Store
	Pool          *pgxpool.Pool
	Auth          authn.Authenticator
	Log           *zap.Logger
	MeterProvider metric.MeterProvider
	Config        config.Money
}

// ProvideSaldoHandler builds the saldo handler and the periodic
// verification that keeps the verification gauges current.
func ProvideSaldoHandler(p HandlerParams) (*SaldoHandler, error) {
	g, err := newVerificationGauge(p.MeterProvider)
	if err != nil {
		return nil, err
	}
	log := p.Log.Named("ledger")
	stop, done := make(chan struct{}), make(chan struct{})
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				t := time.NewTicker(p.Config.VerifyInterval)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						rep, err := p.Verifier.Verify(context.Background(), p.Pool)
						if err != nil {
							log.Warn("ledger verification failed to run", zap.Error(err))
							continue
						}
						g.record(context.Background(), rep)
						if !rep.OK() {
							log.Error("ledger verification found violations", zap.Int("violations", len(rep.Violations)))
						}
					}
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			close(stop)
			select {
			case <-done:
			case <-ctx.Done():
			}
			return nil
		},
	})
	return NewSaldoHandler(p.Store, p.Verifier, p.Users, p.Pool, p.Auth, p.Log, g.record), nil
}

// Module is the ledger fx module.
var Module = fx.Module("ledger",
	fx.Provide(
		func(cfg config.Money) *Store { return New(cfg.Currency) },
		func(s *Store, cfg config.Money) *Wallets { return NewWallets(s, cfg.Currency) },
		auth.AsAccountHook(func(w *Wallets) *Wallets { return w }),
		func(w *Wallets) users.MoneyHolder { return w },
		ProvideVerifier,
		httpserver.AsRoutes(ProvideSaldoHandler),
	),
)
