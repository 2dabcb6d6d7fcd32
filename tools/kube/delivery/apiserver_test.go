package delivery

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paygate/paygate/tools/kube/cluster"
)

// dryRun applies manifests with a server-side dry run and strict field
// validation; any warning (a deprecated API, a "restricted" Pod Security
// violation, an unknown field) fails too.
func dryRun(t *testing.T, c *cluster.Cluster, what string, manifests []byte) {
	t.Helper()
	out, err := kubectl(c, manifests, "apply", "--dry-run=server", "--validate=strict", "--warnings-as-errors",
		"--namespace", "paygate", "-f", "-")
	if err != nil {
		t.Fatalf("%s: server-side dry run failed: %v\n%s", what, err, out)
	}
	n := strings.Count(strings.TrimSpace(string(out)), "\n") + 1
	t.Logf("%s: %d objects accepted (server dry run)", what, n)
}

// TestServerValidatesChart renders every value set (hooks and the test Pod
// included) and has the API server validate each object.
func TestServerValidatesChart(t *testing.T) {
	c := testCluster(t)
	for _, v := range valueSets(t) {
		t.Run(filepath.Base(v), func(t *testing.T) {
			objs := render(t, "-f", v)
			if len(objs) < 8 {
				t.Fatalf("only %d objects rendered", len(objs))
			}
			dryRun(t, c, filepath.Base(v), toYAML(t, objs))
		})
	}
}

// TestServerValidatesK8s does the same for every kustomization in k8s/.
func TestServerValidatesK8s(t *testing.T) {
	c := testCluster(t)
	for _, dir := range kustomizations(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			dryRun(t, c, "k8s/"+filepath.Base(dir), kustomize(t, dir))
		})
	}
}

// TestServerRejectsBrokenManifests proves the validation bites: objects
// with a misspelt field, a wrong type, a removed API version or a Pod that
// breaks the "restricted" standard are refused.
func TestServerRejectsBrokenManifests(t *testing.T) {
	c := testCluster(t)
	objs := render(t, "-f", filepath.Join(chartDir(), "ci", "full-values.yaml"))
	strimzi := parseObjects(t, kustomize(t, filepath.Join(repoRoot(), "k8s", "strimzi")))
	cases := []struct {
		name   string
		obj    Object
		mutate func(o Object)
		want   string
	}{
		{"unknown Deployment field", one(t, objs, "Deployment", "paygate"), func(o Object) {
			get(o, "spec", "template", "spec", "containers", 0).(map[string]any)["imagePolicy"] = "Always"
		}, "unknown field"},
		{"wrong type", one(t, objs, "Service", "paygate"), func(o Object) {
			get(o, "spec", "ports", 0).(map[string]any)["port"] = "eighty"
		}, "port"},
		{"unknown ServiceMonitor field (CRD schema)", one(t, objs, "ServiceMonitor", "paygate"), func(o Object) {
			get(o, "spec", "endpoints", 0).(map[string]any)["scrapeEvery"] = "30s"
		}, "unknown field"},
		{"bad PrometheusRule duration (CRD schema)", one(t, objs, "PrometheusRule", "paygate"), func(o Object) {
			get(o, "spec", "groups", 0, "rules", 0).(map[string]any)["for"] = "ten minutes"
		}, "for"},
		{"Strimzi v1beta2 is gone", one(t, strimzi, "Kafka", ""), func(o Object) {
			o["apiVersion"] = "kafka.strimzi.io/v1beta2"
		}, "v1beta2"},
		{"KafkaUser with a singular operation", one(t, strimzi, "KafkaUser", ""), func(o Object) {
			acl := get(o, "spec", "authorization", "acls", 0).(map[string]any)
			delete(acl, "operations")
			acl["operation"] = "Read"
		}, "operation"},
		{"privileged test Pod", one(t, objs, "Pod", "-test-readyz"), func(o Object) {
			get(o, "spec", "containers", 0, "securityContext").(map[string]any)["allowPrivilegeEscalation"] = true
		}, "restricted"},
		{"removed API version", one(t, objs, "HorizontalPodAutoscaler", "paygate"), func(o Object) {
			o["apiVersion"] = "autoscaling/v2beta2"
		}, "autoscaling/v2beta2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := deepCopy(t, tc.obj)
			tc.mutate(o)
			out, err := kubectl(c, toYAML(t, []Object{o}), "apply", "--dry-run=server", "--validate=strict",
				"--warnings-as-errors", "--namespace", "paygate", "-f", "-")
			if err == nil {
				t.Fatalf("the API server accepted the broken %s:\n%s", o, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("refused, but without mentioning %q:\n%s", tc.want, out)
			}
			t.Logf("refused as expected: %s", firstLine(out))
		})
	}
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

func deepCopy(t *testing.T, o Object) Object {
	t.Helper()
	objs := parseObjects(t, toYAML(t, []Object{o}))
	return objs[0]
}

// TestHelmInstallUpgradeUninstall installs the chart for real (hooks are
// left out: no controller runs their Jobs, and they are validated by the
// dry runs above), upgrades it through the other value sets and uninstalls
// it, checking what the API server holds at each step.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	c := testCluster(t)
	rel := "paygate"
	steps := []struct {
		verb, values string
	}{
		{"install", filepath.Join(repoRoot(), "k8s", "paygate", "values-dev.yaml")},
		{"upgrade", filepath.Join(chartDir(), "ci", "full-values.yaml")},
		{"upgrade", filepath.Join(chartDir(), "ci", "production-values.yaml")},
		{"upgrade", filepath.Join(chartDir(), "ci", "minimal-values.yaml")},
	}
	defer func() {
		// Leave nothing for other tests if a step failed.
		_, _ = helm(t, c, "uninstall", rel, "--namespace", "paygate", "--ignore-not-found")
	}()
	for i, s := range steps {
		args := []string{s.verb, rel, chartDir(), "--namespace", "paygate", "--no-hooks", "-f", s.values, "--timeout", "60s"}
		if s.verb == "install" {
			// What `make deploy` runs.
			args = append([]string{"upgrade", "--install"}, args[1:]...)
		}
		out, err := helm(t, c, args...)
		if err != nil {
			t.Fatalf("step %d: helm %s -f %s: %v\n%s", i+1, s.verb, filepath.Base(s.values), err, out)
		}
		status, err := helm(t, c, "status", rel, "--namespace", "paygate", "-o", "json")
		if err != nil || !bytes.Contains(status, []byte(`"status":"deployed"`)) || !bytes.Contains(status, []byte(fmt.Sprintf(`"version":%d`, i+1))) {
			t.Fatalf("step %d: release not deployed at revision %d: %v\n%s", i+1, i+1, err, status)
		}
		// Every object of the release exists on the server, hooks do not.
		manifest, err := helm(t, c, "get", "manifest", rel, "--namespace", "paygate")
		if err != nil {
			t.Fatalf("helm get manifest: %v\n%s", err, manifest)
		}
		objs := parseObjects(t, manifest)
		for _, o := range objs {
			ns := o.Namespace()
			if ns == "" {
				ns = "paygate"
			}
			if out, err := kubectl(c, nil, "get", "--namespace", ns, strings.ToLower(o.Kind()), o.Name(), "-o", "name"); err != nil {
				t.Errorf("step %d: %s not on the server: %v\n%s", i+1, o, err, out)
			}
		}
		if out, _ := kubectl(c, nil, "get", "jobs", "--namespace", "paygate", "-o", "name"); len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("step %d: hook Jobs were created despite --no-hooks: %s", i+1, out)
		}
		t.Logf("step %d: helm %s -f %s: %d objects deployed", i+1, s.verb, filepath.Base(s.values), len(objs))
	}
	out, err := helm(t, c, "uninstall", rel, "--namespace", "paygate", "--timeout", "60s")
	if err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	// KafkaTopics are kept (helm.sh/resource-policy: keep): deleting them
	// would delete the topics and their events.
	kept, err := kubectl(c, nil, "get", "kafkatopic", "--namespace", "paygate", "-l", "app.kubernetes.io/instance="+rel, "-o", "name")
	if err != nil {
		t.Fatalf("listing KafkaTopics: %v\n%s", err, kept)
	}
	if len(bytes.TrimSpace(kept)) == 0 {
		t.Errorf("helm uninstall deleted the KafkaTopics (and so the topics)")
	}
	_, _ = kubectl(c, nil, "delete", "kafkatopic", "--namespace", "paygate", "-l", "app.kubernetes.io/instance="+rel)
	left, err := kubectl(c, nil, "get", "deploy,svc,cm,secret,sa,hpa,pdb,networkpolicy,servicemonitor,prometheusrule,kafkatopic,kafkauser",
		"--namespace", "paygate", "-l", "app.kubernetes.io/instance="+rel, "-o", "name")
	if err != nil {
		t.Fatalf("listing leftovers: %v\n%s", err, left)
	}
	if s := strings.TrimSpace(string(left)); s != "" {
		t.Errorf("objects left after helm uninstall:\n%s", s)
	}
}

// TestHelmInstallBesideKafkaUserSecret installs the chart into a namespace
// where Strimzi's User Operator has already written the Secret of KafkaUser
// "paygate" (named "paygate", like the release): the install succeeds and
// leaves that Secret alone. A foreign Secret with the chart's own Secret
// name is refused with a clear message instead of being taken over.
func TestHelmInstallBesideKafkaUserSecret(t *testing.T) {
	c := testCluster(t)
	const ns = "kafkauser-secret"
	nsYAML := []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + ns + "\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: " + ns + "\n")
	if out, err := kubectl(c, nsYAML, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("creating namespace %s: %v\n%s", ns, err, out)
	}
	defer func() { _, _ = kubectl(c, nil, "delete", "namespace", ns, "--wait=false") }()
	// What the User Operator writes for KafkaUser paygate (authentication tls).
	userSecret := []byte(`apiVersion: v1
kind: Secret
metadata:
  name: paygate
  namespace: ` + ns + `
  labels:
    strimzi.io/kind: KafkaUser
    strimzi.io/cluster: paygate-kafka
type: Opaque
stringData:
  user.crt: kafka-user-certificate
  user.key: kafka-user-key
  ca.crt: clients-ca
`)
	if out, err := kubectl(c, userSecret, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("creating the KafkaUser Secret: %v\n%s", err, out)
	}
	values := filepath.Join(repoRoot(), "k8s", "paygate", "values-dev.yaml")
	out, err := helm(t, c, "install", "paygate", chartDir(), "--namespace", ns, "--no-hooks", "-f", values, "--timeout", "60s")
	if err != nil {
		t.Fatalf("helm install beside the KafkaUser's Secret: %v\n%s", err, out)
	}
	defer func() { _, _ = helm(t, c, "uninstall", "paygate", "--namespace", ns) }()
	got, err := kubectl(c, nil, "get", "secret", "paygate", "--namespace", ns, "-o", "jsonpath={.data.user\\.crt} {.metadata.labels.strimzi\\.io/kind} {.metadata.annotations.meta\\.helm\\.sh/release-name}")
	if err != nil {
		t.Fatalf("the KafkaUser's Secret: %v\n%s", err, got)
	}
	if want := base64.StdEncoding.EncodeToString([]byte("kafka-user-certificate")) + " KafkaUser "; string(got) != want {
		t.Errorf("the KafkaUser's Secret was changed by the install: %q, want %q", got, want)
	}
	keys, err := kubectl(c, nil, "get", "secret", "paygate-secrets", "--namespace", ns, "-o", "jsonpath={.data.PAYGATE_DATABASE_URL}")
	if err != nil || len(keys) == 0 {
		t.Errorf("the chart's Secret paygate-secrets has no PAYGATE_DATABASE_URL: %v\n%s", err, keys)
	}

	// A Secret with the chart's own Secret name that no release owns.
	foreign := []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: other-paygate-secrets\n  namespace: " + ns + "\nstringData:\n  owner: someone-else\n")
	if out, err := kubectl(c, foreign, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("creating Secret other-paygate-secrets: %v\n%s", err, out)
	}
	out, err = helm(t, c, "install", "other", chartDir(), "--namespace", ns, "--no-hooks", "-f", values, "--timeout", "60s")
	if err == nil {
		_, _ = helm(t, c, "uninstall", "other", "--namespace", ns)
		t.Fatalf("helm install over a foreign Secret other-paygate-secrets succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "Secret other-paygate-secrets already exists in namespace "+ns+" and does not belong to release other") {
		t.Errorf("helm install over a foreign Secret failed without saying why:\n%s", out)
	}
}
