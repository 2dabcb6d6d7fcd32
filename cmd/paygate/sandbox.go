package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/logging"
	"github.com/paygate/paygate/internal/provider/sandbox"
)

// Local defaults of the sandbox: a development key and token, which the
// command line or the environment (SANDBOX_SECRET_KEY,
// SANDBOX_CALLBACK_TOKEN) replace. They are the ones the gateway uses in
// dev with PAYGATE_PROVIDER=sandbox and no credentials, so that make run
// needs none on either side.
const (
	sandboxDefaultListen = "127.0.0.1:8090"
	sandboxDefaultKey    = config.SandboxDevSecretKey
	sandboxDefaultToken  = config.SandboxDevCallbackToken
)

// errSandboxUsage is returned for a sandbox command line paygate does not
// understand.
var errSandboxUsage = errors.New("usage: paygate sandbox [-listen A -secret-key K -callback-token T -callback-url U -auto-pay -state F] | sandbox pay <payment-id-or-reference> [-amount N -currency C -url U] | sandbox expire <payment-id-or-reference> [-url U]")

// sandboxCmd runs the local payment provider, or tells a running one that
// a customer paid or that a payment expired.
func sandboxCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && (args[0] == "pay" || args[0] == "expire") {
		return sandboxAction(ctx, args[0], args[1:], stdout)
	}
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	listen := fs.String("listen", sandboxDefaultListen, "address to listen on")
	key := fs.String("secret-key", envOr("SANDBOX_SECRET_KEY", sandboxDefaultKey), "API key clients must send (basic auth user)")
	token := fs.String("callback-token", envOr("SANDBOX_CALLBACK_TOKEN", sandboxDefaultToken), "x-callback-token sent with callbacks")
	callbackURL := fs.String("callback-url", "http://127.0.0.1:8080", "paygate's base URL for callbacks; empty: none sent")
	paymentsPath := fs.String("payments-path", sandbox.DefaultPaymentsCallbackPath, "path of payment callbacks")
	payoutsPath := fs.String("payouts-path", sandbox.DefaultPayoutsCallbackPath, "path of payout callbacks")
	autoPay := fs.Bool("auto-pay", false, "pay every new payment after -auto-pay-delay")
	autoPayDelay := fs.Duration("auto-pay-delay", time.Second, "delay of auto-pay")
	payoutDelay := fs.Duration("payout-delay", 2*time.Second, "how long a payout stays ACCEPTED")
	state := fs.String("state", "", "JSON file that keeps the sandbox's state across restarts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errSandboxUsage
	}
	log, err := logging.New("dev", "info")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	sb, err := sandbox.New(sandbox.Options{SecretKey: *key, CallbackToken: *token, CallbackBaseURL: *callbackURL,
		PaymentsCallbackPath: *paymentsPath, PayoutsCallbackPath: *payoutsPath, AutoPay: *autoPay,
		AutoPayDelay: *autoPayDelay, PayoutDelay: *payoutDelay, StateFile: *state, Logger: log})
	if err != nil {
		return err
	}
	url, err := sb.Start(*listen)
	if err != nil {
		return err
	}
	log.Info("sandbox provider listening", zap.String("url", url), zap.Bool("auto_pay", *autoPay),
		zap.String("callbacks_to", *callbackURL))
	if _, err := fmt.Fprintf(stdout, "paygate sandbox provider at %s (admin API under %s/_sandbox)\n", url, url); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return sb.Close()
}

// sandboxAction runs `paygate sandbox pay|expire` against a running
// sandbox.
func sandboxAction(ctx context.Context, action string, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errSandboxUsage
	}
	target, args := args[0], args[1:]
	fs := flag.NewFlagSet("sandbox "+action, flag.ContinueOnError)
	url := fs.String("url", "http://"+sandboxDefaultListen, "the sandbox's base URL")
	amount := fs.Int64("amount", 0, "amount paid, in minor units (pay; default: the amount requested)")
	currency := fs.String("currency", "", "currency paid (pay; default: the currency requested)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errSandboxUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	admin := sandbox.AdminClient{BaseURL: *url}
	var v sandbox.PaymentView
	var err error
	if action == "pay" {
		v, err = admin.Pay(ctx, target, *amount, *currency)
	} else {
		v, err = admin.Expire(ctx, target)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s %s (reference %s): %s; paid %d %s of %d %s\n",
		v.Kind, v.ID, v.Reference, v.Status, v.PaidAmount, v.PaidCurrency, v.Amount, v.Currency)
	return err
}

// envOr returns the environment variable name, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
