package saldo

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/users"
)

// WalletBook is what Wallets needs of the ledger.
type WalletBook interface {
	OpenWallet(ctx context.Context, tx pgx.Tx, userID uuid.UUID, currency string) (ledger.Account, error)
	LockWallet(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (ledger.Account, error)
}

// Wallets opens a wallet for every new user and tells whether a user still
// holds money. It implements auth.AccountHook and users.MoneyHolder.
type Wallets struct {
	book     WalletBook
	currency string
}

// NewWallets returns the hook for currency.
func NewWallets(b WalletBook, currency string) *Wallets { return &Wallets{book: b, currency: currency} }

// OnAccountCreated opens the user's wallet in the registration transaction.
func (w *Wallets) OnAccountCreated(ctx context.Context, tx pgx.Tx, u users.User) error {
	_, err := w.book.OpenWallet(ctx, tx, u.ID, w.currency)
	return err
}

// HoldsMoney reports whether the user's wallet has a non-zero balance or
// held money. It locks the wallet row, so a movement into it cannot commit
// between this check and the caller's deactivation.
func (w *Wallets) HoldsMoney(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (bool, error) {
	a, err := w.book.LockWallet(ctx, tx, userID)
	if errors.Is(err, ledger.ErrAccountNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return a.Balance != 0 || a.Held != 0, nil
}
