package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/auth"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/saldo"
	"github.com/paygate/paygate/internal/users"
)

// createAdminVars are the variables `paygate users create-admin` reads.
var createAdminVars = []string{"PAYGATE_DATABASE_*", "PAYGATE_CURRENCY", "PAYGATE_ARGON2_*", "PAYGATE_PASSWORD_*", "PAYGATE_KAFKA_TOPIC_AUTH"}

// createAdmin implements `paygate users create-admin`. The password never
// appears on the command line, where other local users could read it.
func createAdmin(ctx context.Context, cfg config.Config, log *zap.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("users create-admin", flag.ContinueOnError)
	email := fs.String("email", "", "email of the administrator (required)")
	first := fs.String("firstname", "Paygate", "first name")
	last := fs.String("lastname", "Administrator", "last name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *email == "" {
		return errors.New("users create-admin: -email is required")
	}
	password := os.Getenv("PAYGATE_ADMIN_PASSWORD")
	if password == "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return errors.New("users create-admin: give the password in PAYGATE_ADMIN_PASSWORD or on standard input")
		}
		password = strings.TrimRight(line, "\r\n")
	}
	// The account gets everything a registered one gets: its wallet (the
	// saldo hook) and its event (in the outbox). Only that is built: a
	// pool, the hasher and the stores; no tokens, producer or consumer.
	pool, err := postgres.NewPool(ctx, cfg.Database, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	hasher, err := auth.NewHasher(auth.HashParams{MemoryKiB: cfg.Auth.Argon2MemoryKiB, Time: cfg.Auth.Argon2Time, Threads: cfg.Auth.Argon2Threads}, auth.HashLimits{})
	if err != nil {
		return err
	}
	svc := auth.NewService(auth.Options{
		DB: postgres.NewDB(pool, cfg.Database.TxMaxAttempts, log), Users: users.NewStore(), Store: auth.NewStore(),
		Hasher: hasher, Config: cfg.Auth, Topic: cfg.Kafka.TopicAuth, Log: log,
		Hooks: []auth.AccountHook{saldo.NewWallets(ledger.New(cfg.Money.Currency), cfg.Money.Currency)},
	}, nil)
	created, err := svc.EnsureAdmin(ctx, *email, password, *first, *last)
	if err != nil {
		return err
	}
	if !created {
		return fmt.Errorf("users create-admin: a user with email %s already exists", users.NormalizeEmail(*email))
	}
	_, err = fmt.Fprintf(stdout, "administrator %s created\n", users.NormalizeEmail(*email))
	return err
}

// jwtKeygen prints a fresh Ed25519 key pair in the forms the configuration
// takes.
func jwtKeygen(stdout io.Writer) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "PAYGATE_JWT_PRIVATE_KEY=%s\n# for PAYGATE_JWT_VERIFY_KEYS of other deployments during rotation: <kid>=%s\n",
		base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(pub))
	return err
}
