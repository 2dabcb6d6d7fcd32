package delivery

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestChartLint(t *testing.T) {
	for _, v := range valueSets(t) {
		t.Run(filepath.Base(v), func(t *testing.T) {
			out, err := helm(t, nil, "lint", "--strict", "--kube-version", kubeVersion, chartDir(), "-f", v)
			if err != nil {
				t.Fatalf("helm lint --strict -f %s: %v\n%s", v, err, out)
			}
			if !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Fatalf("helm lint output:\n%s", out)
			}
		})
	}
}

// chartValues loads a values file merged over the chart's values.yaml
// (top-level keys replace, as far as the checks below need).
func chartValues(t *testing.T, file string) map[string]any {
	t.Helper()
	base := readYAML(t, filepath.Join(chartDir(), "values.yaml"))
	if file != "" {
		mergeInto(base, readYAML(t, file))
	}
	return base
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeInto(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m
}

func num(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case int:
		return x
	case int64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}

// TestChartRender renders every value set and checks the workload objects
// against what the issue asks of them.
func TestChartRender(t *testing.T) {
	for _, v := range valueSets(t) {
		t.Run(filepath.Base(v), func(t *testing.T) {
			vals := chartValues(t, v)
			objs := render(t, "-f", v)
			checkDeployment(t, objs, vals)
			checkPodSecurity(t, objs)
			checkMigrationJob(t, objs, vals)
			checkServiceAccount(t, objs, vals)
			checkTestHook(t, objs, vals)
			checkOptional(t, objs, vals)
			checkKafkaSecurity(t, objs, vals)
			checkSMTPSecurity(t, objs, vals)
			checkProvider(t, objs, vals)
		})
	}
}

func checkDeployment(t *testing.T, objs []Object, vals map[string]any) {
	t.Helper()
	d := one(t, objs, "Deployment", "paygate")
	spec := get(d, "spec", "template", "spec")
	c := get(spec, "containers", 0)
	if a := get(c, "args"); !reflect.DeepEqual(a, []any{"serve"}) {
		t.Errorf("container args = %v, want [serve]", a)
	}
	port := num(get(vals, "config", "httpPort"))
	if got := num(get(c, "ports", 0, "containerPort")); got != port || str(c, "ports", 0, "name") != "http" {
		t.Errorf("container port = %d (%s), want %d named http", got, str(c, "ports", 0, "name"), port)
	}
	for probe, path := range map[string]string{"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %q, want %q", probe, got, path)
		}
		if got := get(c, probe, "httpGet", "port"); got != "http" {
			t.Errorf("%s port = %v, want http", probe, got)
		}
	}
	if get(c, "resources", "requests") == nil || get(c, "resources", "limits", "memory") == nil {
		t.Errorf("container resources lack requests or a memory limit: %v", get(c, "resources"))
	}
	if get(spec, "automountServiceAccountToken") != false {
		t.Errorf("pod automountServiceAccountToken is not false")
	}
	env := map[string]string{}
	for _, e := range asSlice(get(c, "env")) {
		env[str(e, "name")] = str(e, "valueFrom", "fieldRef", "fieldPath")
	}
	if env["K8S_POD_NAME"] != "metadata.name" || env["K8S_NAMESPACE"] != "metadata.namespace" {
		t.Errorf("downward API env = %v, want K8S_POD_NAME=metadata.name, K8S_NAMESPACE=metadata.namespace", env)
	}
	// Graceful shutdown: the grace period holds the preStop sleep, the
	// drain delay, the request timeout and paygate's own 30s.
	sd := get(vals, "shutdown")
	grace := num(get(spec, "terminationGracePeriodSeconds"))
	sleep := num(get(c, "lifecycle", "preStop", "sleep", "seconds"))
	if sleep != num(get(sd, "preStopSleepSeconds")) {
		t.Errorf("preStop sleep = %d on Kubernetes %s, want %d", sleep, kubeVersion, num(get(sd, "preStopSleepSeconds")))
	}
	if need := sleep + num(get(sd, "drainDelaySeconds")) + num(get(sd, "timeoutSeconds")) + 30; grace < need {
		t.Errorf("terminationGracePeriodSeconds = %d < %d", grace, need)
	}
	cm := one(t, objs, "ConfigMap", "paygate")
	data := strMap(get(cm, "data"))
	if data["PAYGATE_SHUTDOWN_DRAIN_DELAY"] != fmt.Sprintf("%ds", num(get(sd, "drainDelaySeconds"))) ||
		data["PAYGATE_SHUTDOWN_TIMEOUT"] != fmt.Sprintf("%ds", num(get(sd, "timeoutSeconds"))) {
		t.Errorf("ConfigMap shutdown settings %q/%q do not match values", data["PAYGATE_SHUTDOWN_DRAIN_DELAY"], data["PAYGATE_SHUTDOWN_TIMEOUT"])
	}
	if data["PAYGATE_HTTP_ADDR"] != fmt.Sprintf(":%d", port) {
		t.Errorf("PAYGATE_HTTP_ADDR = %q, want :%d", data["PAYGATE_HTTP_ADDR"], port)
	}
	if get(vals, "topologySpread", "enabled") == true {
		if n := len(asSlice(get(spec, "topologySpreadConstraints"))); n != len(asSlice(get(vals, "topologySpread", "topologyKeys"))) {
			t.Errorf("%d topologySpreadConstraints, want one per topology key", n)
		}
	}
	if get(vals, "autoscaling", "enabled") == true {
		if get(d, "spec", "replicas") != nil {
			t.Errorf("the Deployment sets replicas although the HPA owns them")
		}
		hpa := one(t, objs, "HorizontalPodAutoscaler", "paygate")
		if hpa["apiVersion"] != "autoscaling/v2" || str(hpa, "spec", "scaleTargetRef", "name") != d.Name() {
			t.Errorf("HPA %v does not scale the Deployment with autoscaling/v2", hpa["apiVersion"])
		}
	} else if len(find(objs, "HorizontalPodAutoscaler", "")) != 0 {
		t.Errorf("an HPA is rendered with autoscaling disabled")
	}
	// The Service and the PDB select the Deployment's pods.
	podLabels := strMap(get(d, "spec", "template", "metadata", "labels"))
	svc := one(t, objs, "Service", "paygate")
	if !subset(strMap(get(svc, "spec", "selector")), podLabels) {
		t.Errorf("the Service selector %v does not select the pods %v", get(svc, "spec", "selector"), podLabels)
	}
	if get(vals, "podDisruptionBudget", "enabled") == true {
		pdb := one(t, objs, "PodDisruptionBudget", "paygate")
		if !subset(strMap(get(pdb, "spec", "selector", "matchLabels")), podLabels) {
			t.Errorf("the PDB does not select the pods")
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkPodSecurity checks every pod the chart can create (Deployment, Job,
// test Pod) for the hardened security context.
func checkPodSecurity(t *testing.T, objs []Object) {
	t.Helper()
	for _, o := range objs {
		var spec any
		switch o.Kind() {
		case "Deployment", "Job":
			spec = get(o, "spec", "template", "spec")
		case "Pod":
			spec = get(o, "spec")
		default:
			continue
		}
		psc := get(spec, "securityContext")
		if get(psc, "runAsNonRoot") != true {
			t.Errorf("%s: pod runAsNonRoot is not true", o)
		}
		if str(psc, "seccompProfile", "type") != "RuntimeDefault" {
			t.Errorf("%s: pod seccompProfile is not RuntimeDefault", o)
		}
		if get(spec, "automountServiceAccountToken") != false {
			t.Errorf("%s: automountServiceAccountToken is not false", o)
		}
		for _, c := range asSlice(get(spec, "containers")) {
			sc := get(c, "securityContext")
			if get(sc, "allowPrivilegeEscalation") != false || get(sc, "readOnlyRootFilesystem") != true ||
				get(sc, "runAsNonRoot") != true || !reflect.DeepEqual(get(sc, "capabilities", "drop"), []any{"ALL"}) ||
				str(sc, "seccompProfile", "type") != "RuntimeDefault" {
				t.Errorf("%s container %s: securityContext %v is not hardened", o, str(c, "name"), sc)
			}
		}
	}
}

func checkMigrationJob(t *testing.T, objs []Object, vals map[string]any) {
	t.Helper()
	jobs := find(objs, "Job", "-migrate")
	if get(vals, "migration", "enabled") != true {
		if len(jobs) != 0 {
			t.Errorf("a migration Job is rendered with migration.enabled=false")
		}
		return
	}
	if len(jobs) != 1 {
		t.Fatalf("want one migration Job, got %d", len(jobs))
	}
	j := jobs[0]
	if h := j.Annotations()["helm.sh/hook"]; h != "pre-install,pre-upgrade" {
		t.Errorf("migration Job hook = %q, want pre-install,pre-upgrade", h)
	}
	c := get(j, "spec", "template", "spec", "containers", 0)
	if a := get(c, "args"); !reflect.DeepEqual(a, []any{"migrate"}) {
		t.Errorf("migration args = %v, want [migrate]", a)
	}
	// Hooks run before the release's objects exist: whatever the Job
	// references must be a hook of lower weight, or exist beforehand.
	sa := str(j, "spec", "template", "spec", "serviceAccountName")
	hooks := map[string]bool{}
	for _, o := range objs {
		if strings.Contains(o.Annotations()["helm.sh/hook"], "pre-install") && o.Kind() != "Job" {
			if w, _ := strconv.Atoi(o.Annotations()["helm.sh/hook-weight"]); w >= 0 {
				t.Errorf("%s: hook weight %d is not below the Job's", o, w)
			}
			hooks[o.Kind()+"/"+o.Name()] = true
		}
	}
	if !hooks["ServiceAccount/"+sa] {
		t.Errorf("the migration Job's ServiceAccount %q is not a pre-install hook", sa)
	}
	secret := str(c, "envFrom", 0, "secretRef", "name")
	if ex, _ := get(vals, "existingSecret").(string); ex != "" {
		if secret != ex {
			t.Errorf("migration Job reads secret %q, want existingSecret %q", secret, ex)
		}
	} else if !hooks["Secret/"+secret] {
		t.Errorf("the migration Job's Secret %q is not a pre-install hook", secret)
	}
	// Its settings are the ConfigMap's.
	cm := strMap(get(one(t, objs, "ConfigMap", "paygate"), "data"))
	env := map[string]string{}
	for _, e := range asSlice(get(c, "env")) {
		if get(e, "value") != nil {
			env[str(e, "name")] = str(e, "value")
		}
	}
	if !reflect.DeepEqual(env, cm) {
		t.Errorf("migration Job env differs from the ConfigMap:\n job: %v\n cm:  %v", env, cm)
	}
}

func checkServiceAccount(t *testing.T, objs []Object, vals map[string]any) {
	t.Helper()
	for _, sa := range find(objs, "ServiceAccount", "") {
		if sa["automountServiceAccountToken"] != false {
			t.Errorf("%s: automountServiceAccountToken is not false", sa)
		}
	}
	if get(vals, "serviceAccount", "create") == true {
		name := str(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec", "serviceAccountName")
		found := false
		for _, sa := range find(objs, "ServiceAccount", "") {
			found = found || sa.Name() == name
		}
		if !found {
			t.Errorf("the Deployment's ServiceAccount %q is not rendered", name)
		}
	}
}

func checkTestHook(t *testing.T, objs []Object, vals map[string]any) {
	t.Helper()
	pods := find(objs, "Pod", "-test-readyz")
	if len(pods) != 1 {
		t.Fatalf("want one helm test Pod, got %d", len(pods))
	}
	p := pods[0]
	if p.Annotations()["helm.sh/hook"] != "test" {
		t.Errorf("the test Pod is not a helm test hook")
	}
	c := get(p, "spec", "containers", 0)
	if !strings.Contains(str(c, "image"), "curl") || !reflect.DeepEqual(get(c, "command"), []any{"curl"}) {
		t.Errorf("the test Pod does not run curl: %v %v", get(c, "image"), get(c, "command"))
	}
	svc := one(t, objs, "Service", "paygate")
	url := fmt.Sprintf("http://%s:%d/readyz", svc.Name(), num(get(svc, "spec", "ports", 0, "port")))
	a := asSlice(get(c, "args"))
	if len(a) == 0 || a[len(a)-1] != url {
		t.Errorf("the test Pod curls %v, want %s", a, url)
	}
}

// checkOptional checks that every toggle renders its object, and only then.
func checkOptional(t *testing.T, objs []Object, vals map[string]any) {
	t.Helper()
	toggles := []struct {
		path []any
		kind string
	}{
		{[]any{"autoscaling", "enabled"}, "HorizontalPodAutoscaler"},
		{[]any{"podDisruptionBudget", "enabled"}, "PodDisruptionBudget"},
		{[]any{"networkPolicy", "enabled"}, "NetworkPolicy"},
		{[]any{"serviceMonitor", "enabled"}, "ServiceMonitor"},
		{[]any{"prometheusRule", "enabled"}, "PrometheusRule"},
		{[]any{"strimzi", "topics", "enabled"}, "KafkaTopic"},
		{[]any{"strimzi", "user", "enabled"}, "KafkaUser"},
	}
	for _, tg := range toggles {
		on := get(vals, tg.path...) == true
		if n := len(find(objs, tg.kind, "")); on != (n > 0) {
			t.Errorf("%v=%v but %d %s rendered", tg.path, on, n, tg.kind)
		}
	}
	if ex, _ := get(vals, "existingSecret").(string); ex != "" {
		for _, s := range find(objs, "Secret", "") {
			if s.Annotations()["helm.sh/hook"] == "" {
				t.Errorf("Secret %s rendered although existingSecret is set", s.Name())
			}
		}
	} else {
		s := one(t, objs, "Secret", "paygate-secrets")
		for _, k := range []string{"PAYGATE_DATABASE_URL", "PAYGATE_JWT_PRIVATE_KEY"} {
			if str(s, "data", k) == "" {
				t.Errorf("the Secret has no %s", k)
			}
		}
	}
	if topics := find(objs, "KafkaTopic", ""); len(topics) > 0 {
		want := chartTopics(vals)
		var got []string
		for _, tp := range topics {
			got = append(got, str(tp, "spec", "topicName"))
			// Deleting a KafkaTopic deletes the topic and its events.
			if tp.Annotations()["helm.sh/resource-policy"] != "keep" {
				t.Errorf("%s: no helm.sh/resource-policy: keep, so helm uninstall would delete the topic", tp)
			}
			if tp.Labels()["strimzi.io/cluster"] != str(vals, "strimzi", "cluster") {
				t.Errorf("%s: strimzi.io/cluster label %q", tp, tp.Labels()["strimzi.io/cluster"])
			}
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("KafkaTopics %v, want %v", got, want)
		}
	}
}

func chartTopics(vals map[string]any) []string {
	var out []string
	for _, v := range strMap(get(vals, "config", "kafka", "topics")) {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// TestChartSupportMatrix: the chart supports Kubernetes 1.30+ (the
// kubelet's native preStop sleep, which the shell-less image needs) and
// refuses older clusters.
func TestChartSupportMatrix(t *testing.T) {
	minimal := filepath.Join(chartDir(), "ci", "minimal-values.yaml")
	if out, err := renderRaw(t, "-f", minimal, "--kube-version", "1.29.9"); err == nil || !strings.Contains(string(out), "kubeVersion") {
		t.Errorf("Kubernetes 1.29.9: want the chart refused for its kubeVersion, got %v\n%s", err, out)
	}
	for kv, want := range map[string]any{"1.30.0": float64(5), kubeVersion: float64(5)} {
		objs := render(t, "-f", minimal, "--kube-version", kv)
		c := get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec", "containers", 0)
		if got := get(c, "lifecycle", "preStop", "sleep", "seconds"); got != want {
			t.Errorf("Kubernetes %s: preStop sleep = %v, want %v", kv, got, want)
		}
	}
}

// TestChartRefuses: renders that must fail, with the reason they fail for.
func TestChartRefuses(t *testing.T) {
	minimal := filepath.Join(chartDir(), "ci", "minimal-values.yaml")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"old kubernetes", []string{"-f", minimal, "--kube-version", "1.28.5"}, "kubeVersion"},
		{"no secrets", []string{"--set", "config.kafka.brokers[0]=kafka:9093,config.smtp.host=smtp"}, "secrets.databaseUrl is required"},
		// With env prod nothing may point at the dev neighbours by default.
		{"prod without brokers", []string{"-f", minimal, "-f", valuesFile(t, "config: {kafka: {brokers: []}}")}, "config.kafka.brokers is required with config.env prod"},
		{"prod without SMTP host", []string{"-f", minimal, "--set", "config.smtp.host="}, "config.smtp.host is required with config.env prod"},
		{"short grace period", []string{"-f", minimal, "--set", "shutdown.terminationGracePeriodSeconds=40"}, "must be at least"},
		{"PDB blocks drains", []string{"-f", minimal, "--set", "podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=1"}, "must be below the replica count"},
		{"unknown top-level key", []string{"-f", minimal, "--set", "replicas=3"}, "additional properties 'replicas' not allowed"},
		{"unknown nested key", []string{"-f", minimal, "--set", "image.tagg=x"}, "additional properties 'tagg' not allowed"},
		{"wrong type", []string{"-f", minimal, "--set-string", "replicaCount=two"}, "replicaCount"},
		{"wrong enum", []string{"-f", minimal, "--set", "config.smtp.tls=ssl"}, "config/smtp/tls"},
		{"secret in extraEnv", []string{"-f", minimal, "--set", "config.extraEnv.PAYGATE_JWT_PRIVATE_KEY=x"}, "invalid propertyName 'PAYGATE_JWT_PRIVATE_KEY'"},
		{"not a paygate variable", []string{"-f", minimal, "--set", "config.extraEnv.HOME=/x"}, "invalid propertyName 'HOME'"},
		{"privileged port", []string{"-f", minimal, "--set", "config.httpPort=80"}, "httpPort"},
		{"root user", []string{"-f", minimal, "--set", "podSecurityContext.runAsUser=0"}, "runAsUser"},
		// Kafka TLS and SASL (config.kafka.tls, config.kafka.sasl).
		{"Kafka password in extraEnv", []string{"-f", minimal, "--set", "config.extraEnv.PAYGATE_KAFKA_SASL_PASSWORD=x"}, "invalid propertyName 'PAYGATE_KAFKA_SASL_PASSWORD'"},
		{"Kafka TLS in extraEnv", []string{"-f", minimal, "--set-string", "config.extraEnv.PAYGATE_KAFKA_TLS_ENABLED=true"}, "invalid propertyName 'PAYGATE_KAFKA_TLS_ENABLED'"},
		{"Kafka client certificate without TLS", []string{"-f", minimal, "--set", "config.kafka.tls.clientSecret.name=paygate"}, "config.kafka.tls.clientSecret.name is set but config.kafka.tls.enabled is false"},
		{"Kafka CA without TLS", []string{"-f", minimal, "--set", "config.kafka.tls.caSecret.name=paygate-kafka-cluster-ca-cert"}, "config.kafka.tls.caSecret.name is set but config.kafka.tls.enabled is false"},
		{"Kafka server name without TLS", []string{"-f", minimal, "--set", "config.kafka.tls.serverName=kafka.example.com"}, "config.kafka.tls.serverName is set but config.kafka.tls.enabled is false"},
		{"Kafka certificate and key in one file", []string{"-f", minimal, "--set", "config.kafka.tls.enabled=true,config.kafka.tls.clientSecret.name=paygate,config.kafka.tls.clientSecret.keyKey=user.crt"}, "certKey and keyKey must differ"},
		{"Kafka secret key with a path", []string{"-f", minimal, "--set", "config.kafka.tls.enabled=true,config.kafka.tls.caSecret.name=ca,config.kafka.tls.caSecret.key=../ca.crt"}, "config/kafka/tls/caSecret/key"},
		{"SASL without a user name", []string{"-f", minimal, "--set", "config.kafka.tls.enabled=true,config.kafka.sasl.mechanism=SCRAM-SHA-512,config.kafka.sasl.passwordSecret.name=paygate"}, "config.kafka.sasl.username is required with mechanism SCRAM-SHA-512"},
		{"SASL without a password Secret", []string{"-f", minimal, "--set", "config.kafka.tls.enabled=true,config.kafka.sasl.mechanism=SCRAM-SHA-256,config.kafka.sasl.username=paygate"}, "config.kafka.sasl.passwordSecret.name is required with mechanism SCRAM-SHA-256"},
		{"SASL PLAIN without TLS", []string{"-f", minimal, "--set", "config.kafka.sasl.mechanism=PLAIN,config.kafka.sasl.username=paygate,config.kafka.sasl.passwordSecret.name=paygate"}, "PLAIN sends the password as is"},
		{"SASL credentials without a mechanism", []string{"-f", minimal, "--set", "config.kafka.sasl.username=paygate"}, "need config.kafka.sasl.mechanism"},
		{"unknown SASL mechanism", []string{"-f", minimal, "--set", "config.kafka.sasl.mechanism=GSSAPI"}, "config/kafka/sasl/mechanism"},
		{"SCRAM with a KafkaUser of type tls", []string{"-f", minimal, "--set", "strimzi.user.enabled=true,strimzi.user.authentication=tls,config.kafka.tls.enabled=true,config.kafka.sasl.mechanism=SCRAM-SHA-512"}, "config.kafka.sasl.username is required"},
		// Strimzi's User Operator names a KafkaUser's Secret like the user.
		{"KafkaUser named like the chart's Secret", []string{"-f", minimal, "--set", "strimzi.user.enabled=true,strimzi.user.name=paygate-secrets,config.kafka.tls.enabled=true"}, "is the name of the chart's Secret"},
		// The SMTP server's CA (config.smtp.caSecret).
		{"SMTP CA without TLS", []string{"-f", minimal, "--set", "config.smtp.caSecret.name=smtp-relay-ca"}, "config.smtp.caSecret.name is set but config.smtp.tls is none"},
		{"SMTP CA file in extraEnv", []string{"-f", minimal, "--set", "config.extraEnv.PAYGATE_SMTP_TLS_CA_FILE=/etc/ssl/relay.pem"}, "invalid propertyName 'PAYGATE_SMTP_TLS_CA_FILE'"},
		{"SMTP CA key with a path", []string{"-f", minimal, "--set", "config.smtp.tls=starttls,config.smtp.caSecret.name=ca,config.smtp.caSecret.key=../ca.crt"}, "config/smtp/caSecret/key"},
		{"unknown SMTP CA setting", []string{"-f", minimal, "--set", "config.smtp.caSecret.file=ca.crt"}, "additional properties 'file' not allowed"},
		// The payment provider (provider.*): paygate has credentials of its
		// own only in dev against the sandbox.
		{"prod without the provider's secret key", []string{"-f", minimal, "--set", "provider.secretKey="}, "provider.secretKey is required with config.env prod"},
		{"prod without the callback token", []string{"-f", minimal, "--set", "provider.callbackToken="}, "provider.callbackToken is required with config.env prod"},
		{"dev with xendit and no key", []string{"-f", minimal, "--set", "config.env=dev,provider.secretKey="}, "provider.secretKey is required with provider.name xendit"},
		{"prod sandbox on the pod's loopback", []string{"-f", minimal, "--set", "provider.name=sandbox"}, "provider.url is required with provider.name sandbox and config.env prod"},
		{"provider key beside existingSecret", []string{"-f", minimal, "--set", "existingSecret=paygate-prod,provider.callbackToken="}, "provider.secretKey is set but so is existingSecret"},
		{"provider key in extraEnv", []string{"-f", minimal, "--set", "config.extraEnv.PAYGATE_PROVIDER_SECRET_KEY=x"}, "invalid propertyName 'PAYGATE_PROVIDER_SECRET_KEY'"},
		{"provider setting in extraEnv", []string{"-f", minimal, "--set", "config.extraEnv.PAYGATE_PROVIDER=xendit"}, "invalid propertyName 'PAYGATE_PROVIDER'"},
		{"reconciliation in extraEnv", []string{"-f", minimal, "--set", "config.extraEnv.PAYGATE_RECONCILE_WINDOW=1h"}, "invalid propertyName 'PAYGATE_RECONCILE_WINDOW'"},
		{"unknown provider", []string{"-f", minimal, "--set", "provider.name=stripe"}, "provider/name"},
		{"provider timeout without a unit", []string{"-f", minimal, "--set-string", "provider.timeout=10"}, "provider/timeout"},
		{"provider URL of another scheme", []string{"-f", minimal, "--set", "provider.url=ftp://xendit.example"}, "provider/url"},
		{"no provider attempts", []string{"-f", minimal, "--set", "provider.maxAttempts=0"}, "provider/maxAttempts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := renderRaw(t, tc.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want a failure mentioning %q", tc.args, tc.want)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("helm template %v failed without mentioning %q:\n%s", tc.args, tc.want, out)
			}
		})
	}
}

// TestValuesSchemaClosed walks values.schema.json: every object schema
// either lists its properties and forbids others, or is a map whose values
// have a schema (labels, annotations, extra variables).
func TestValuesSchemaClosed(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, n map[string]any)
	walk = func(path string, n map[string]any) {
		if n["type"] == "object" {
			switch ap := n["additionalProperties"].(type) {
			case bool:
				if ap {
					t.Errorf("%s: additionalProperties true", path)
				}
				if n["properties"] == nil {
					t.Errorf("%s: closed object without properties", path)
				}
			case map[string]any:
				if n["properties"] != nil {
					t.Errorf("%s: lists properties but allows others", path)
				}
				walk(path+"/*", ap)
			default:
				if path != "/global" {
					t.Errorf("%s: object without additionalProperties", path)
				}
			}
		}
		if props, ok := n["properties"].(map[string]any); ok {
			for k, v := range props {
				walk(path+"/"+k, v.(map[string]any))
			}
		}
		if items, ok := n["items"].(map[string]any); ok {
			walk(path+"[]", items)
		}
	}
	walk("", s)

	// Every key of values.yaml is in the schema (and so documented there).
	var keys func(path string, v map[string]any, sch map[string]any)
	keys = func(path string, v map[string]any, sch map[string]any) {
		props, _ := sch["properties"].(map[string]any)
		for k, x := range v {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if _, isMap := sch["additionalProperties"].(map[string]any); !isMap {
					t.Errorf("values.yaml key %s/%s is not in the schema", path, k)
				}
				continue
			}
			if m, ok := x.(map[string]any); ok {
				keys(path+"/"+k, m, ps)
			}
		}
	}
	keys("", readYAML(t, filepath.Join(chartDir(), "values.yaml")), s)
}

var (
	configVarsOnce sync.Once
	configVars     map[string]string
)

// paygateConfig returns every PAYGATE_* variable with its default, from
// `paygate config -markdown` of the image build.
func paygateConfig(t *testing.T) map[string]string {
	t.Helper()
	bin, _ := buildPaygate(t)
	configVarsOnce.Do(func() {
		out, err := exec.Command(bin, "config", "-markdown").Output()
		if err != nil {
			t.Fatalf("paygate config -markdown: %v", err)
		}
		configVars = map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			cols := strings.Split(sc.Text(), "|")
			if len(cols) < 5 {
				continue
			}
			name := strings.Trim(strings.TrimSpace(cols[1]), "`")
			if strings.HasPrefix(name, "PAYGATE_") {
				configVars[name] = strings.Trim(strings.TrimSpace(cols[3]), "`")
			}
		}
	})
	if len(configVars) == 0 {
		t.Fatal("paygate config -markdown listed no variables")
	}
	return configVars
}

// TestChartVariablesExist: every variable the chart sets is one paygate
// (or the OpenTelemetry SDK) reads, and the chart's defaults for topics
// and consumer groups are paygate's.
func TestChartVariablesExist(t *testing.T) {
	vars := paygateConfig(t)
	otel := map[string]bool{"OTEL_TRACES_EXPORTER": true, "OTEL_EXPORTER_OTLP_ENDPOINT": true, "OTEL_EXPORTER_OTLP_PROTOCOL": true,
		"OTEL_TRACES_SAMPLER": true, "OTEL_TRACES_SAMPLER_ARG": true, "OTEL_RESOURCE_ATTRIBUTES": true, "OTEL_SERVICE_NAME": true,
		"OTEL_EXPORTER_OTLP_HEADERS": true}
	for _, v := range valueSets(t) {
		objs := render(t, "-f", v)
		names := map[string]bool{}
		for k := range strMap(get(one(t, objs, "ConfigMap", "paygate"), "data")) {
			names[k] = true
		}
		for _, s := range find(objs, "Secret", "") {
			for k := range strMap(get(s, "data")) {
				names[k] = true
			}
		}
		// And the variables the Deployment sets itself (Kafka TLS and SASL,
		// the SMTP server's CA).
		for k := range containerEnv(get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec")) {
			if !strings.HasPrefix(k, "K8S_") {
				names[k] = true
			}
		}
		for k := range names {
			if _, ok := vars[k]; !ok && !otel[k] {
				t.Errorf("%s: the chart sets %s, which paygate does not read", filepath.Base(v), k)
			}
		}
	}
	defaults := render(t, "-f", filepath.Join(chartDir(), "ci", "minimal-values.yaml"))
	data := strMap(get(one(t, defaults, "ConfigMap", "paygate"), "data"))
	for _, k := range []string{"PAYGATE_KAFKA_TOPIC_AUTH", "PAYGATE_KAFKA_TOPIC_TOPUP", "PAYGATE_KAFKA_TOPIC_TRANSFER",
		"PAYGATE_KAFKA_TOPIC_WITHDRAW", "PAYGATE_NOTIFY_RETRY_TOPIC", "PAYGATE_NOTIFY_DLQ_TOPIC", "PAYGATE_NOTIFY_GROUP",
		"PAYGATE_PAYOUT_GROUP", "PAYGATE_SHUTDOWN_DRAIN_DELAY", "PAYGATE_SHUTDOWN_TIMEOUT", "PAYGATE_HTTP_ADDR",
		"PAYGATE_MAIL_FROM", "PAYGATE_LOG_LEVEL", "PAYGATE_ENV", "PAYGATE_PPROF_ENABLED",
		"PAYGATE_PROVIDER_TIMEOUT", "PAYGATE_PROVIDER_MAX_ATTEMPTS", "PAYGATE_PROVIDER_SUCCESS_RETURN_URL",
		"PAYGATE_PROVIDER_FAILURE_RETURN_URL", "PAYGATE_TOPUP_EXPIRY", "PAYGATE_PROVIDER_POLL_INTERVAL",
		"PAYGATE_PROVIDER_POLL_AFTER", "PAYGATE_PROVIDER_EXPIRY_GRACE", "PAYGATE_RECONCILE_INTERVAL",
		"PAYGATE_RECONCILE_WINDOW"} {
		if data[k] != vars[k] {
			t.Errorf("chart default %s=%q, paygate's default is %q", k, data[k], vars[k])
		}
	}
	// minimal-values.yaml names a provider; the chart's default is paygate's.
	if name := str(chartValues(t, ""), "provider", "name"); name != vars["PAYGATE_PROVIDER"] {
		t.Errorf("chart default provider.name=%q, paygate's default PAYGATE_PROVIDER is %q", name, vars["PAYGATE_PROVIDER"])
	}
}

// TestChartNetworkPolicy: the policy admits HTTP on the app port and lets
// out exactly the configured destinations.
func TestChartNetworkPolicy(t *testing.T) {
	v := filepath.Join(chartDir(), "ci", "production-values.yaml")
	vals := chartValues(t, v)
	objs := render(t, "-f", v)
	np := one(t, objs, "NetworkPolicy", "paygate")
	if !reflect.DeepEqual(get(np, "spec", "policyTypes"), []any{"Ingress", "Egress"}) {
		t.Errorf("policyTypes = %v", get(np, "spec", "policyTypes"))
	}
	ing := asSlice(get(np, "spec", "ingress"))
	if len(ing) != 1 || get(ing[0], "ports", 0, "port") != "http" {
		t.Fatalf("ingress = %v, want one rule for port http", ing)
	}
	from := asSlice(get(ing[0], "from"))
	if want := len(asSlice(get(vals, "networkPolicy", "ingress", "from"))) + 1; len(from) != want {
		t.Errorf("ingress from has %d peers, want the %d configured plus the helm test pod", len(from), want-1)
	}
	egress := asSlice(get(np, "spec", "egress"))
	for _, name := range []string{"postgres", "kafka", "smtp", "otelCollector", "provider"} {
		rule := get(vals, "networkPolicy", "egress", name)
		found := false
		for _, e := range egress {
			var ports []any
			for _, p := range asSlice(get(e, "ports")) {
				ports = append(ports, get(p, "port"))
			}
			if reflect.DeepEqual(ports, get(rule, "ports")) && reflect.DeepEqual(get(e, "to"), get(rule, "to")) {
				found = true
			}
		}
		if !found {
			t.Errorf("no egress rule for %s with ports %v and peers %v", name, get(rule, "ports"), get(rule, "to"))
		}
	}
	dns := egress[len(egress)-1]
	protos := map[string]bool{}
	for _, p := range asSlice(get(dns, "ports")) {
		if num(get(p, "port")) == 53 {
			protos[str(p, "protocol")] = true
		}
	}
	if !protos["UDP"] || !protos["TCP"] {
		t.Errorf("DNS egress %v lacks port 53 over UDP and TCP", dns)
	}
	pods := one(t, objs, "Deployment", "paygate")
	if !subset(strMap(get(np, "spec", "podSelector", "matchLabels")), strMap(get(pods, "spec", "template", "metadata", "labels"))) {
		t.Errorf("the NetworkPolicy does not select paygate's pods")
	}
}

// TestChartDevDefaults: with env dev and no brokers or SMTP host, the chart
// points at the k8s/ neighbours (the Strimzi cluster's TLS listener and
// mailpit); with env prod it refuses instead (TestChartRefuses).
func TestChartDevDefaults(t *testing.T) {
	objs := render(t, "-f", filepath.Join(chartDir(), "ci", "minimal-values.yaml"),
		"-f", valuesFile(t, "config: {env: dev, kafka: {brokers: []}, smtp: {host: \"\"}}"))
	cm := one(t, objs, "ConfigMap", "paygate")
	for k, want := range map[string]string{
		"PAYGATE_KAFKA_BROKERS": "paygate-kafka-kafka-bootstrap:9093",
		"PAYGATE_SMTP_HOST":     "mailpit",
	} {
		if got := str(cm, "data", k); got != want {
			t.Errorf("%s = %q with env dev, want %q", k, got, want)
		}
	}
}

// valuesFile writes a values file with content for one render.
func valuesFile(t *testing.T, content string) string {
	t.Helper()
	dir, err := tempDir("paygate-values-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
