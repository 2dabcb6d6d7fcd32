// Command hostkafka is the Kafka-protocol broker that the test cluster's
// pods reach as an external service: the same in-memory broker as
// tools/cmd/devkafka (franz-go's kfake), but listening on the host's
// address on the pods' bridge instead of loopback, which devkafka refuses.
// It advertises that address, so clients in pods connect back to it.
//
//	hostkafka -addr 10.244.0.1:19092
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	addr := flag.String("addr", "", "`host:port` to listen on and advertise (the bridge address of the test cluster)")
	partitions := flag.Int("partitions", 3, "partitions of automatically created topics")
	flag.Parse()
	if err := run(*addr, *partitions); err != nil {
		fmt.Fprintln(os.Stderr, "hostkafka:", err)
		os.Exit(1)
	}
}

func run(addr string, partitions int) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || net.ParseIP(host) == nil {
		return fmt.Errorf("-addr must be IP:port, got %q", addr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
		kfake.ClusterID("paygate-test-cluster"),
	)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("hostkafka: listening on %v\n", c.ListenAddrs())
	<-ctx.Done()
	return nil
}
