package telemetry_test

import (
	"context"
	"testing"

	"github.com/paygate/paygate/internal/platform/telemetry"
)

// TestSpansAreRecordedOnlyWhenExported: with OTEL_TRACES_EXPORTER=none no
// span is recorded (nothing would read it), yet every span still has a
// trace id for logs and propagation; with an exporter, spans record.
func TestSpansAreRecordedOnlyWhenExported(t *testing.T) {
	for _, tc := range []struct {
		exporter  string
		recording bool
	}{{"none", false}, {"console", true}} {
		t.Run(tc.exporter, func(t *testing.T) {
			t.Setenv("OTEL_TRACES_EXPORTER", tc.exporter)
			tel, err := telemetry.New(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tel.TracerProvider.Shutdown(context.Background()) })
			_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "op")
			defer span.End()
			if !span.SpanContext().IsValid() {
				t.Fatal("the span has no valid trace and span id")
			}
			if span.IsRecording() != tc.recording {
				t.Fatalf("OTEL_TRACES_EXPORTER=%s: span recording %v, want %v", tc.exporter, span.IsRecording(), tc.recording)
			}
		})
	}
}
