// Package kafkatest runs a real Kafka-protocol broker for tests: franz-go's
// kfake, in process, listening on a loopback port that clients (sarama)
// reach over TCP. A broker can be stopped and restarted on the same port
// with its data kept, to test behaviour through broker outages.
package kafkatest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/pkitest"
)

// Broker is one in-process Kafka-protocol broker.
type Broker struct {
	t      testing.TB
	port   int
	dir    string
	topics []string
	sec    Security
	files  tlsFiles
	srvTLS *tls.Config

	mu      sync.Mutex
	cluster *kfake.Cluster
}

// NewBroker starts a broker with the given topics (one partition each, so
// tests can reason about order); other topics are created on demand. It is
// stopped when the test ends.
func NewBroker(t testing.TB, topics ...string) *Broker {
	t.Helper()
	return NewSecureBroker(t, Security{}, topics...)
}

// NewSecureBroker starts a broker like NewBroker that authenticates its
// clients as sec says; Config returns client settings that pass.
func NewSecureBroker(t testing.TB, sec Security, topics ...string) *Broker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	b := &Broker{t: t, port: port, dir: t.TempDir(), topics: topics, sec: sec}
	if sec.TLS || sec.ClientCert {
		ca := pkitest.NewCA(t, "kafkatest CA")
		b.files.CA, b.srvTLS = ca.File, ca.ServerConfig()
		if sec.ClientCert {
			b.srvTLS.ClientAuth, b.srvTLS.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool()
			b.files.ClientCert, b.files.ClientKey = ca.ClientFiles("paygate")
		}
	}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Addr returns the broker's host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// Config returns a Kafka configuration pointing at this broker, with
// timeouts short enough for tests.
func (b *Broker) Config() config.Kafka {
	return config.Kafka{
		Brokers:           []string{b.Addr()},
		ClientID:          "paygate-test",
		Version:           "3.6.0",
		CreateTopics:      true,
		TopicPartitions:   1,
		TopicReplication:  -1,
		DialTimeout:       time.Second,
		ReconnectBackoff:  200 * time.Millisecond,
		ConsumerMaxWait:   100 * time.Millisecond,
		ConsumerRebalance: 6 * time.Second,
		TopicAuth:         "paygate.auth.v1",
		TopicTopup:        "paygate.topup.v1",
		TopicTransfer:     "paygate.transfer.v1",
		TopicWithdraw:     "paygate.withdraw.v1",
		TLSEnabled:        b.srvTLS != nil,
		TLSCAFile:         b.files.CA,
		TLSCertFile:       b.files.ClientCert,
		TLSKeyFile:        b.files.ClientKey,
		SASLMechanism:     b.sec.SASL,
		SASLUsername:      b.sec.User,
		SASLPassword:      b.sec.Password,
	}
}

// Start starts (or restarts) the broker on its port with its data.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster != nil {
		return
	}
	opts := []kfake.Opt{
		kfake.Ports(b.port),
		kfake.NumBrokers(1),
		kfake.DataDir(b.dir),
		kfake.DefaultNumPartitions(1),
	}
	if b.sec.ACLs == nil {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if len(b.topics) > 0 {
		opts = append(opts, kfake.SeedTopics(1, b.topics...))
	}
	opts = append(opts, b.securityOpts()...)
	var err error
	// The port of a just-closed broker may take a moment to free.
	for range 50 {
		b.cluster, err = kfake.NewCluster(opts...)
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("start kfake broker: %v", err)
}

// Stop stops the broker; its data stays for a later Start.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster != nil {
		b.cluster.Close()
		b.cluster = nil
	}
}

// Record is a consumed record.
type Record struct {
	Topic   string
	Key     string
	Value   []byte
	Headers map[string]string
	Offset  int64
}

// ReadAll reads every record of the topic's partition 0 from the start
// until n records were read or the timeout passed.
func (b *Broker) ReadAll(t testing.TB, topic string, n int, timeout time.Duration) []Record {
	t.Helper()
	sc := b.ClientConfig()
	sc.Consumer.Return.Errors = false
	c, err := sarama.NewConsumer([]string{b.Addr()}, sc)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("consume %s: %v", topic, err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []Record
	for len(out) < n {
		select {
		case <-ctx.Done():
			return out
		case m := <-pc.Messages():
			h := map[string]string{}
			for _, rh := range m.Headers {
				h[string(rh.Key)] = string(rh.Value)
			}
			out = append(out, Record{Topic: m.Topic, Key: string(m.Key), Value: m.Value, Headers: h, Offset: m.Offset})
		}
	}
	return out
}
