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

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/app"
	"github.com/paygate/paygate/internal/auth"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/users"
)

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
	// The service comes from the application's own graph, so the account
	// gets everything a registered one gets (wallet, event). The graph is
	// built but not started: nothing listens or consumes.
	var svc *auth.Service
	var pool *pgxpool.Pool
	a := fx.New(app.Options(cfg, log), fx.Populate(&svc, &pool))
	if err := a.Err(); err != nil {
		return err
	}
	defer pool.Close()
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
