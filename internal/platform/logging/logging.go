// Package logging builds paygate's zap logger: JSON in production,
// human-readable console output in dev.
//
// Nothing here logs request bodies, headers or configuration values, which
// is how secrets, tokens and passwords stay out of the logs: callers log ids
// and outcomes, never payloads.
package logging

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger for the given environment ("dev" or "prod") and level.
func New(env, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	var zc zap.Config
	if env == "dev" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		zc.Sampling = nil
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.DisableStacktrace = env != "dev"
	return zc.Build(zap.Fields(zap.String("service", "paygate")))
}

// WithTrace returns l with the trace_id and span_id of the span in ctx, so
// that log lines can be joined to traces. Without a valid span it returns l.
func WithTrace(ctx context.Context, l *zap.Logger) *zap.Logger {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return l
	}
	return l.With(zap.String("trace_id", sc.TraceID().String()), zap.String("span_id", sc.SpanID().String()))
}
