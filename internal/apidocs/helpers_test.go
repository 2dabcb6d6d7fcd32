package apidocs_test

import (
	"sync"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/apidocs"
	"github.com/paygate/paygate/internal/app"
	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
)

var (
	docsOnce  sync.Once
	docsInApp bool
)

// docsModule adds apidocs.Module to a test application unless app.Options
// already carries it (once the line is in internal/app/app.go).
func docsModule() apptest.Option {
	docsOnce.Do(func() {
		cfg := apptest.Config("postgres://localhost/x", config.Kafka{Brokers: []string{"127.0.0.1:1"}})
		docsInApp = fx.ValidateApp(app.Options(cfg, zap.NewNop()), fx.Invoke(func(*apidocs.Handler) {})) == nil
	})
	if docsInApp {
		return apptest.WithFx()
	}
	return apptest.WithFx(apidocs.Module)
}

// startDocs starts the whole application with the docs routes.
func startDocs(t *testing.T, opts ...apptest.Option) *apptest.Env {
	t.Helper()
	return apptest.Start(t, append([]apptest.Option{docsModule()}, opts...)...)
}
