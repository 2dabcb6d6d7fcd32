package auth

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/clientip"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/periodic"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/users"
)

// ServiceParams are the dependencies of the service. Other domains add
// AccountHooks to the "account_hooks" group.
type ServiceParams struct {
	fx.In

	DB            *postgres.DB
	Users         *users.Store
	Auth          config.Auth
	Kafka         config.Kafka
	MeterProvider metric.MeterProvider
	Hooks         []AccountHook `group:"account_hooks"`
	Log           *zap.Logger
}

// ProvideService builds the auth service.
func ProvideService(p ServiceParams) (*Service, error) {
	m, err := newMetrics(p.MeterProvider)
	if err != nil {
		return nil, err
	}
	hasher, err := NewHasher(HashParams{MemoryKiB: p.Auth.Argon2MemoryKiB, Time: p.Auth.Argon2Time, Threads: p.Auth.Argon2Threads},
		HashLimits{Concurrency: p.Auth.HashConcurrency, Queue: p.Auth.HashQueue, MaxWait: p.Auth.HashMaxWait})
	if err != nil {
		return nil, err
	}
	hasher.onShed = m.hashShed
	tokens, err := NewTokens(p.Auth)
	if err != nil {
		return nil, err
	}
	return NewService(Options{DB: p.DB, Users: p.Users, Store: NewStore(), Hasher: hasher, Tokens: tokens,
		Config: p.Auth, Topic: p.Kafka.TopicAuth, Hooks: p.Hooks, Log: p.Log.Named("auth")}, m), nil
}

// ProvideHandler builds the HTTP handler.
func ProvideHandler(svc *Service, cfg config.Auth, log *zap.Logger) (*Handler, error) {
	trusted, err := config.ParseCIDRs(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("PAYGATE_TRUSTED_PROXIES: %w", err)
	}
	return NewHandler(svc, log, clientip.New(trusted)), nil
}

// AsAccountHook annotates a constructor whose result joins the
// "account_hooks" group.
func AsAccountHook(f any) any {
	return fx.Annotate(f, fx.As(new(AccountHook)), fx.ResultTags(`group:"account_hooks"`))
}

// bootstrap creates the configured administrator at start, after the
// migrations (the postgres module's start hook runs first).
func bootstrap(lc fx.Lifecycle, svc *Service, cfg config.Auth, log *zap.Logger) {
	if cfg.BootstrapAdminEmail == "" {
		return
	}
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		created, err := svc.EnsureBootstrapAdmin(ctx, cfg.BootstrapAdminEmail, cfg.BootstrapAdminPassword, "Paygate", "Administrator")
		if err != nil {
			return fmt.Errorf("bootstrap admin: %w", err)
		}
		if created {
			log.Info("bootstrap admin created")
		}
		return nil
	}))
}

// prune forgets, hourly, failed logins older than the throttling window,
// registrations older than theirs, and ended sessions.
func prune(lc fx.Lifecycle, svc *Service, cfg config.Auth, log *zap.Logger) {
	lc.Append(periodic.Hook(time.Hour, func(ctx context.Context) {
		if err := svc.store.PruneFailures(ctx, svc.db.Pool, time.Now().Add(-cfg.LoginFailureWindow)); err != nil && ctx.Err() == nil {
			log.Warn("pruning failed logins failed", zap.Error(err))
		}
		if err := svc.store.PruneRegistrations(ctx, svc.db.Pool, time.Now().Add(-cfg.RegisterWindow)); err != nil && ctx.Err() == nil {
			log.Warn("pruning registration attempts failed", zap.Error(err))
		}
		if _, err := svc.PruneSessions(ctx); err != nil && ctx.Err() == nil {
			log.Warn("pruning sessions failed", zap.Error(err))
		}
	}))
}

// Module is the auth fx module.
var Module = fx.Module("auth",
	fx.Provide(
		ProvideService,
		ProvideHandler,
		httpserver.AsRoutes(func(h *Handler) *Handler { return h }),
		func(h *Handler) authn.Authenticator { return h },
		func(s *Service) users.AccountCreator { return s },
		func(s *Service) users.SessionRevoker { return s },
		kafka.AsTopic(func(k config.Kafka) kafka.TopicSpec { return kafka.TopicSpec{Name: k.TopicAuth} }),
	),
	fx.Invoke(bootstrap, prune),
)
