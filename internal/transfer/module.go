package transfer

import (
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/batch"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/outbox"
)

// Params are what the transfer service is built from.
type Params struct {
	fx.In
	movement.Params

	Lifecycle      fx.Lifecycle
	TracerProvider trace.TracerProvider
	// Relay is this process's outbox relay, woken after each batch that
	// enqueued events; without one, batches NOTIFY every relay instead.
	Relay *outbox.Relay `optional:"true"`
}

// ProvideService builds the service with its group committer, which runs
// with the application: on stop, the transfers already submitted are
// booked before the committer ends.
func ProvideService(p Params) (*Service, error) {
	m, err := newMetrics(p.MeterProvider)
	if err != nil {
		return nil, err
	}
	s := NewService(p.DB, p.Keys, p.Ledger, p.Users, p.Money, p.Kafka.TopicTransfer, m)
	if p.Relay != nil {
		s.WakeAfterCommit(p.Relay)
	}
	c, err := s.UseBatches(batch.Options[item]{Window: p.Money.BatchWindow, MaxSize: p.Money.BatchMaxSize, Workers: p.Money.BatchWorkers,
		Tracer: p.TracerProvider.Tracer("paygate/transfer")},
		p.MeterProvider)
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{OnStart: c.Start, OnStop: c.Stop})
	return s, nil
}

// Module is the transfer fx module.
var Module = fx.Module("transfer",
	fx.Provide(
		ProvideService,
		httpserver.AsRoutes(NewHandler),
		kafka.AsTopic(func(k config.Kafka) kafka.TopicSpec { return kafka.TopicSpec{Name: k.TopicTransfer} }),
	),
)
