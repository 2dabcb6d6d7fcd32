// Package moneytest holds the cross-domain proofs that money is never
// created, lost or moved twice: load over the real HTTP API against a real
// PostgreSQL, then reconciliation of every response against the ledger.
// It has no code of its own.
package moneytest
