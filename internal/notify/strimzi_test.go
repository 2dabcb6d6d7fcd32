package notify_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.yaml.in/yaml/v4"

	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
)

// strimziDir holds the Strimzi resources a cluster operator applies for
// paygate (k8s/strimzi).
var strimziDir = filepath.Join("..", "..", "k8s", "strimzi")

// strimziACLs reads the ACLs of the KafkaUser in k8s/strimzi/user.yaml as
// the broker will enforce them.
func strimziACLs(t *testing.T) []kfake.ACL {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(strimziDir, "user.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var user struct {
		Kind string
		Spec struct {
			Authorization struct {
				Type string
				ACLs []struct {
					Resource struct {
						Type, Name, PatternType string `yaml:",omitempty"`
					}
					Operations []string
					Type       string // allow (the default) or deny
					Host       string
				} `yaml:"acls"`
			}
		}
	}
	if err := yaml.Unmarshal(raw, &user); err != nil {
		t.Fatalf("user.yaml: %v", err)
	}
	if user.Kind != "KafkaUser" || user.Spec.Authorization.Type != "simple" || len(user.Spec.Authorization.ACLs) == 0 {
		t.Fatalf("user.yaml holds no KafkaUser with simple authorization: %+v", user)
	}
	var out []kfake.ACL
	for _, a := range user.Spec.Authorization.ACLs {
		rt, err := kmsg.ParseACLResourceType(a.Resource.Type)
		if err != nil {
			t.Fatal(err)
		}
		name, pattern := a.Resource.Name, kmsg.ACLResourcePatternTypeLiteral
		if rt == kmsg.ACLResourceTypeCluster {
			name = "kafka-cluster"
		}
		if a.Resource.PatternType == "prefix" {
			pattern = kmsg.ACLResourcePatternTypePrefixed
		}
		for _, op := range a.Operations {
			o, err := kmsg.ParseACLOperation(op)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, kfake.ACL{Resource: rt, Name: name, Pattern: pattern, Operation: o, Allow: a.Type != "deny", Host: a.Host})
		}
	}
	return out
}

// strimziTopics returns the topic names of the KafkaTopics in
// k8s/strimzi/topics.yaml.
func strimziTopics(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(strimziDir, "topics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	dec := yaml.NewDecoder(f)
	for {
		var doc struct {
			Kind string
			Spec struct {
				TopicName string `yaml:"topicName"`
			}
		}
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("topics.yaml: %v", err)
		}
		if doc.Kind == "KafkaTopic" {
			names = append(names, doc.Spec.TopicName)
		}
	}
	return names
}

// TestStrimziUserAndTopicsAreWhatPaygateNeeds runs the whole gateway, email
// consumer and payout processor included, against a broker that knows only
// the topics of k8s/strimzi/topics.yaml, creates none, authenticates with
// SCRAM-SHA-512 and enforces exactly the ACLs of k8s/strimzi/user.yaml.
// Every Kafka path is taken: the relay publishes to each domain topic, the
// email consumer reads them, writes and reads its retry topic and writes its
// dead-letter topic, the payout group reads withdrawals. A missing ACL or
// topic fails the test; a superfluous one is caught by review.
func TestStrimziUserAndTopicsAreWhatPaygateNeeds(t *testing.T) {
	t.Parallel()
	topics := strimziTopics(t)
	broker := kafkatest.NewSecureBroker(t, kafkatest.Security{SASL: config.SASLSCRAMSHA512, User: "paygate",
		Password: uuid.NewString(), ACLs: strimziACLs(t)}, topics...)
	e := startMailAppOn(t, broker, nil, func(c *config.Config) {
		c.Kafka.CreateTopics = false
		c.Payout.Enabled = true
	})
	k := e.Config.Kafka
	for _, want := range []string{k.TopicAuth, k.TopicTopup, k.TopicTransfer, k.TopicWithdraw, e.Config.Notify.RetryTopic, e.Config.Notify.DLQTopic} {
		if !slices.Contains(topics, want) {
			t.Fatalf("topics.yaml lacks %s (has %v)", want, topics)
		}
	}

	// SMTP refuses for a while, so mails go through the retry topic; one
	// address is rejected for good, so its mail is dead-lettered.
	e.smtp.Refuse(451)
	e.smtp.RefuseRecipients(func(addr string) int {
		if strings.HasPrefix(addr, "gone-") {
			return 550
		}
		return 0
	})
	alice, bob := e.NewUser(t), e.NewUser(t)
	gone := "gone-" + uuid.NewString()[:8] + "@example.com"
	if r := e.Post(t, "/v1/auth/register", "", map[string]any{"firstname": "Gone", "lastname": "Away", "email": gone,
		"password": "gone-password-1", "confirm_password": "gone-password-1"}); r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	fund(t, e, alice, 500000)
	if r := send(t, e, alice, bob.Email, 50000, uuid.NewString()); r.Status != http.StatusCreated {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	if r := e.Post(t, "/v1/withdrawals", alice.Token, map[string]any{"amount": 100000, "bank_code": "BCA",
		"bank_account_number": "1234567890", "bank_account_name": "Alice"}, "Idempotency-Key", uuid.NewString()); r.Status != http.StatusCreated {
		t.Fatalf("withdrawal: %d %s", r.Status, r.Body)
	}
	eventually(t, 60*time.Second, "retries while SMTP refuses", func() bool {
		return e.metric(t, "paygate_notify_retries_total") >= 3
	})
	e.smtp.Refuse(0)

	e.waitMails(t, alice.Email, map[string]int{notify.TemplateWelcome: 1, notify.TemplateTopupPending: 1, notify.TemplateTopupSucceeded: 1, notify.TemplateTransferSent: 1,
		notify.TemplateWithdrawalRequested: 1, notify.TemplateWithdrawalSucceeded: 1}, 90*time.Second)
	e.waitMails(t, bob.Email, map[string]int{notify.TemplateWelcome: 1, notify.TemplateTransferReceived: 1}, 30*time.Second)
	if recs := broker.ReadAll(t, e.Config.Notify.RetryTopic, 1, 5*time.Second); len(recs) == 0 {
		t.Fatal("nothing went through the retry topic")
	}
	broker.ReadAll(t, e.Config.Notify.DLQTopic, 1, 30*time.Second)
	dead := broker.ReadAll(t, e.Config.Notify.DLQTopic, 2, 2*time.Second)
	if len(dead) != 1 || !strings.Contains(dead[0].Headers[notify.HeaderError], "550") {
		t.Fatalf("dead letters = %d (%v), want the one rejected mail", len(dead), dead)
	}
	e.settle(t, 30*time.Second)
}
