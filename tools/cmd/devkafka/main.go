// Command devkafka runs a single-node, Kafka-protocol compatible broker for
// local development.
//
// It is built on franz-go's kfake package, so it needs no JVM and starts in
// milliseconds. Topics are created automatically on first use. With
// -data-dir the broker persists its state, so a restart keeps topics,
// records and committed offsets. The broker only ever listens on a loopback
// address.
//
// Usage:
//
//	devkafka [-addr 127.0.0.1:9092] [-data-dir DIR] [-partitions 3] [-log-level warn]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "devkafka: %v\n", err)
		os.Exit(1)
	}
}

// run serves the broker until the process receives SIGINT or SIGTERM, at
// which point it closes the broker cleanly.
func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, os.Args[1:], os.Stdout)
}

// serve parses args, starts the broker, writes the ready line to out, and
// blocks until ctx is done, then closes the broker.
func serve(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("devkafka", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "loopback `host:port` to listen on")
	dataDir := fs.String("data-dir", "", "`directory` to persist broker state in (empty keeps everything in memory)")
	partitions := fs.Int("partitions", 3, "number of partitions for automatically created topics")
	logLevel := fs.String("log-level", "warn", "broker log level: none, error, warn, info or debug")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	host, port, err := parseLoopbackAddr(*addr)
	if err != nil {
		return err
	}
	if *partitions < 1 {
		return fmt.Errorf("-partitions must be at least 1, got %d", *partitions)
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
		return err
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(loopbackListener(host)),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
		kfake.ClusterID("devkafka"),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)),
	}
	if *dataDir != "" {
		if err := os.MkdirAll(*dataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(*dataDir))
	}

	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	defer cluster.Close()

	if _, err := fmt.Fprintf(out, "devkafka: listening on %s\n", strings.Join(cluster.ListenAddrs(), ",")); err != nil {
		return err
	}

	<-ctx.Done()
	return nil
}

// parseLoopbackAddr splits addr into a host and a port and checks that the
// host is a loopback IP address or "localhost", so the broker is never
// reachable from other machines.
func parseLoopbackAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("invalid -addr %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("invalid port in -addr %q", addr)
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("-addr host %q is not a loopback IP address", host)
	}
	return host, port, nil
}

// loopbackListener returns a listen function for kfake.ListenFn that keeps
// the port kfake asks for but always binds to the given loopback host.
func loopbackListener(host string) func(network, address string) (net.Listener, error) {
	return func(network, address string) (net.Listener, error) {
		_, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		return net.Listen(network, net.JoinHostPort(host, port))
	}
}

// parseLogLevel maps a log level name to its kfake.LogLevel.
func parseLogLevel(s string) (kfake.LogLevel, error) {
	switch strings.ToLower(s) {
	case "none", "off":
		return kfake.LogLevelNone, nil
	case "error":
		return kfake.LogLevelError, nil
	case "warn", "warning":
		return kfake.LogLevelWarn, nil
	case "info":
		return kfake.LogLevelInfo, nil
	case "debug":
		return kfake.LogLevelDebug, nil
	default:
		return kfake.LogLevelNone, fmt.Errorf("unknown -log-level %q", s)
	}
}
