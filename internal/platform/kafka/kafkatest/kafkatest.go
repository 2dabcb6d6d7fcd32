// Package kafkatest runs a real Kafka-protocol broker for tests: franz-go's
// kfake, in process, listening on a loopback port that clients (sarama)
// reach over TCP. A broker can be stopped and restarted on the same port
// with its data kept, to test behaviour through broker outages.
package kafkatest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
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
	b := &Broker{t: t, dir: t.TempDir(), topics: topics, sec: sec}
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

// Config returns a Kafka configuration pointing at this broker: the code's
// defaults (config.Defaults) with topics created on demand, one partition
// each (so tests can reason about order), timeouts short enough for tests,
// and the broker's TLS and SASL settings.
func (b *Broker) Config() config.Kafka {
	k := config.Defaults().Kafka
	k.Brokers, k.ClientID = []string{b.Addr()}, "paygate-test"
	k.CreateTopics, k.TopicPartitions = true, 1
	k.DialTimeout, k.ReconnectBackoff, k.ConsumerMaxWait = time.Second, 200*time.Millisecond, 100*time.Millisecond
	// The smallest session timeout kfake's group coordinator accepts.
	k.ConsumerRebalance = 6 * time.Second
	k.TLSEnabled, k.TLSCAFile, k.TLSCertFile, k.TLSKeyFile = b.srvTLS != nil, b.files.CA, b.files.ClientCert, b.files.ClientKey
	k.SASLMechanism, k.SASLUsername, k.SASLPassword = b.sec.SASL, b.sec.User, b.sec.Password
	return k
}

// Start starts (or restarts) the broker on its port with its data.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster != nil {
		return
	}
	var err error
	for range 50 {
		b.cluster, err = kfake.NewCluster(b.opts()...)
		if err == nil {
			if b.port == 0 {
				// The first start listens on a port the kernel picks, so
				// that brokers of tests running in parallel never race
				// for one; restarts reuse it.
				b.port = listenPort(b.t, b.cluster.ListenAddrs())
			}
			return
		}
		// The port of a just-closed broker may take a moment to free.
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("start kfake broker: %v", err)
}

// listenPort returns the port of the first of addrs (host:port).
func listenPort(t testing.TB, addrs []string) int {
	t.Helper()
	if len(addrs) == 0 {
		t.Fatal("kfake broker listens nowhere")
	}
	_, p, err := net.SplitHostPort(addrs[0])
	if err != nil {
		t.Fatalf("kfake broker address %q: %v", addrs[0], err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port == 0 {
		t.Fatalf("kfake broker address %q: no port", addrs[0])
	}
	return port
}

func (b *Broker) opts() []kfake.Opt {
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
	return append(opts, b.securityOpts()...)
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

// ReadToEnd reads every record of the topic's partition 0 that the broker
// holds when it is called, up to its high-water mark: what a test checks
// for records that must not be there, exactly and without waiting for
// them to show. A topic that does not exist holds none.
func (b *Broker) ReadToEnd(t testing.TB, topic string) []Record {
	t.Helper()
	client, err := sarama.NewClient([]string{b.Addr()}, b.ClientConfig())
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return nil
	}
	if err != nil {
		t.Fatalf("high-water mark of %s: %v", topic, err)
	}
	if end == 0 {
		return nil
	}
	var out []Record
	for _, r := range b.ReadAll(t, topic, int(end), 30*time.Second) {
		if r.Offset < end {
			out = append(out, r)
		}
	}
	if len(out) == 0 || out[len(out)-1].Offset != end-1 {
		t.Fatalf("read %d records of %s, not up to its high-water mark %d", len(out), topic, end)
	}
	return out
}
