// Package chaos holds the chaos suite, TestChaos: real processes (two
// gateway replicas built from ./cmd/paygate, PostgreSQL, the devkafka
// broker) and in-process SMTP and payment provider, a steady mixed load of
// clients, and one fault after the other, each struck in the middle of
// the work it interrupts, followed by the invariants a payments team
// checks before a release. `make test` runs its short variant, `make
// chaos` the long one (32 clients, 20 s outages). It has no code of its
// own; see chaos_test.go.
package chaos
