package delivery

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/paygate/paygate/tools/kube/cluster"
)

// kustomizations lists the k8s/ directories that hold a kustomization, in
// install order (k8s/README.md).
func kustomizations(t *testing.T) []string {
	t.Helper()
	order := []string{"namespace", "postgres", "mailpit", "jaeger", "otel-collector", "strimzi", "monitoring"}
	var out []string
	for _, d := range order {
		p := filepath.Join(repoRoot(), "k8s", d)
		if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
			t.Fatalf("k8s/%s has no kustomization.yaml", d)
		}
		out = append(out, p)
	}
	// A new directory must be added to the list (and to the README).
	m, _ := filepath.Glob(filepath.Join(repoRoot(), "k8s", "*", "kustomization.yaml"))
	if len(m) != len(order) {
		t.Errorf("k8s/ has %d kustomizations, the tests know %d: %v", len(m), len(order), m)
	}
	return out
}

func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	out, err := kubectl(nil, nil, "kustomize", dir)
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	return out
}

// TestK8sFilesCovered: every YAML file under k8s/ is a kustomization's
// resource (and so validated against the API server), or one of the
// values/config files other tests check.
func TestK8sFilesCovered(t *testing.T) {
	known := map[string]bool{
		"kube-prometheus-stack/values.yaml": true, // TestMonitoringSelectors, TestGrafanaDashboards
		"paygate/values-dev.yaml":           true, // the chart tests' value sets
		"otel-collector/config.yaml":        true, // TestOtelCollectorConfig (configMapGenerator)
		"jaeger/config.yaml":                true, // TestJaeger (configMapGenerator)
	}
	for _, dir := range kustomizations(t) {
		var k struct {
			Resources []string `json:"resources"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			t.Fatal(err)
		}
		for _, r := range k.Resources {
			rel, _ := filepath.Rel(filepath.Join(repoRoot(), "k8s"), filepath.Join(dir, r))
			known[rel] = true
		}
		rel, _ := filepath.Rel(filepath.Join(repoRoot(), "k8s"), filepath.Join(dir, "kustomization.yaml"))
		known[rel] = true
	}
	err := filepath.Walk(filepath.Join(repoRoot(), "k8s"), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return nil
		}
		rel, _ := filepath.Rel(filepath.Join(repoRoot(), "k8s"), p)
		if !known[rel] {
			t.Errorf("k8s/%s is in no kustomization and no test checks it", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStrimzi checks the Kafka cluster (KRaft, node pools, TLS listener)
// and that topics, ACLs and consumer groups agree with paygate's defaults
// and with the chart.
func TestStrimzi(t *testing.T) {
	objs := parseObjects(t, kustomize(t, filepath.Join(repoRoot(), "k8s", "strimzi")))
	for _, o := range objs {
		if o["apiVersion"] != "kafka.strimzi.io/v1" {
			t.Errorf("%s: apiVersion %v, want kafka.strimzi.io/v1", o, o["apiVersion"])
		}
	}
	kafka := one(t, objs, "Kafka", "")
	if get(kafka, "spec", "zookeeper") != nil {
		t.Errorf("the Kafka cluster uses ZooKeeper; Strimzi 1.x is KRaft only")
	}
	roles := map[string]int{}
	for _, np := range find(objs, "KafkaNodePool", "") {
		if np.Labels()["strimzi.io/cluster"] != kafka.Name() {
			t.Errorf("%s belongs to cluster %q, not %s", np, np.Labels()["strimzi.io/cluster"], kafka.Name())
		}
		for _, r := range asSlice(get(np, "spec", "roles")) {
			roles[r.(string)] += num(get(np, "spec", "replicas"))
		}
	}
	if roles["controller"] < 3 || roles["broker"] < 3 {
		t.Errorf("node pools give %d controllers and %d brokers, want at least 3 each", roles["controller"], roles["broker"])
	}
	if _, ok := tlsListener(kafka); !ok {
		t.Errorf("no TLS listener with TLS client authentication")
	}
	if str(kafka, "spec", "kafka", "authorization", "type") != "simple" {
		t.Errorf("ACLs need authorization type simple")
	}

	// Topics: paygate's defaults, the chart's defaults and k8s/ agree.
	vars := paygateConfig(t)
	var appTopics []string
	for _, k := range []string{"PAYGATE_KAFKA_TOPIC_AUTH", "PAYGATE_KAFKA_TOPIC_TOPUP", "PAYGATE_KAFKA_TOPIC_TRANSFER",
		"PAYGATE_KAFKA_TOPIC_WITHDRAW", "PAYGATE_NOTIFY_RETRY_TOPIC", "PAYGATE_NOTIFY_DLQ_TOPIC",
		"PAYGATE_PAYOUT_RETRY_TOPIC", "PAYGATE_PAYOUT_DLQ_TOPIC"} {
		if vars[k] == "" {
			t.Errorf("paygate has no default for %s", k)
		}
		appTopics = append(appTopics, vars[k])
	}
	sort.Strings(appTopics)
	var k8sTopics []string
	for _, tp := range find(objs, "KafkaTopic", "") {
		k8sTopics = append(k8sTopics, str(tp, "spec", "topicName"))
		if tp.Labels()["strimzi.io/cluster"] != kafka.Name() {
			t.Errorf("%s is not labelled for cluster %s", tp, kafka.Name())
		}
	}
	sort.Strings(k8sTopics)
	if !reflect.DeepEqual(k8sTopics, appTopics) {
		t.Errorf("k8s/strimzi topics %v, paygate's %v", k8sTopics, appTopics)
	}
	vals := chartValues(t, "")
	if got := chartTopics(vals); !reflect.DeepEqual(got, appTopics) {
		t.Errorf("chart default topics %v, paygate's %v", got, appTopics)
	}

	// The chart has no production brokers (env prod must set them,
	// TestChartRefuses); its dev default is this cluster's bootstrap
	// Service on its TLS listener, the only one it has.
	if got := get(vals, "config", "kafka", "brokers"); len(asSlice(got)) != 0 {
		t.Errorf("chart default brokers %v, want none (env prod requires them)", got)
	}
	var tlsPort int
	for _, l := range asSlice(get(kafka, "spec", "kafka", "listeners")) {
		if get(l, "tls") == true {
			tlsPort = num(get(l, "port"))
		}
	}
	dev := render(t, "-f", filepath.Join(chartDir(), "ci", "minimal-values.yaml"),
		"-f", valuesFile(t, "config: {env: dev, kafka: {brokers: []}}"))
	want := kafka.Name() + "-kafka-bootstrap:" + itoa(tlsPort)
	if got := str(one(t, dev, "ConfigMap", "paygate"), "data", "PAYGATE_KAFKA_BROKERS"); tlsPort == 0 || got != want {
		t.Errorf("env dev default brokers %q, want this cluster's TLS bootstrap %q", got, want)
	}

	// The user: consumer groups are paygate's, and the chart's KafkaUser
	// has the same ACLs.
	user := one(t, objs, "KafkaUser", "")
	groups := map[string]bool{}
	for _, a := range asSlice(get(user, "spec", "authorization", "acls")) {
		if str(a, "resource", "type") == "group" {
			groups[str(a, "resource", "name")] = true
		}
	}
	for _, k := range []string{"PAYGATE_NOTIFY_GROUP", "PAYGATE_PAYOUT_GROUP"} {
		if !groups[vars[k]] {
			t.Errorf("the KafkaUser has no ACL for consumer group %s=%s", k, vars[k])
		}
	}
	chart := render(t, "-f", filepath.Join(chartDir(), "ci", "minimal-values.yaml"),
		"--set", "strimzi.user.enabled=true,strimzi.topics.enabled=true")
	cu := one(t, chart, "KafkaUser", "")
	if !reflect.DeepEqual(get(cu, "spec"), get(user, "spec")) {
		cy, _ := yaml.Marshal(get(cu, "spec"))
		ky, _ := yaml.Marshal(get(user, "spec"))
		t.Errorf("the chart's KafkaUser differs from k8s/strimzi/user.yaml:\nchart:\n%s\nk8s:\n%s", cy, ky)
	}
}

// tlsListener returns the Kafka cluster's TLS listener with TLS client
// authentication (the one paygate uses).
func tlsListener(kafka Object) (any, bool) {
	for _, l := range asSlice(get(kafka, "spec", "kafka", "listeners")) {
		if get(l, "tls") == true && str(l, "authentication", "type") == "tls" {
			return l, true
		}
	}
	return nil, false
}

// TestStrimziTLSOnly: paygate speaks TLS to Kafka, so k8s/strimzi offers no
// plaintext listener, no listener without authentication and no super user
// for unauthenticated clients; and k8s/paygate/values-dev.yaml connects to
// the TLS listener's port with the cluster CA and the KafkaUser's
// certificate, through a NetworkPolicy that lets it out on that port.
func TestStrimziTLSOnly(t *testing.T) {
	objs := parseObjects(t, kustomize(t, filepath.Join(repoRoot(), "k8s", "strimzi")))
	kafka := one(t, objs, "Kafka", "")
	for _, l := range asSlice(get(kafka, "spec", "kafka", "listeners")) {
		if get(l, "tls") != true {
			t.Errorf("listener %s (port %d) has tls %v: paygate needs no plaintext listener", str(l, "name"), num(get(l, "port")), get(l, "tls"))
		}
		if str(l, "authentication", "type") == "" {
			t.Errorf("listener %s (port %d) lets clients in without authentication", str(l, "name"), num(get(l, "port")))
		}
	}
	for _, u := range asSlice(get(kafka, "spec", "kafka", "authorization", "superUsers")) {
		if s, _ := u.(string); strings.Contains(strings.ToUpper(s), "ANONYMOUS") {
			t.Errorf("superUsers has %q: unauthenticated clients would bypass the ACLs", s)
		}
	}
	l, ok := tlsListener(kafka)
	if !ok {
		t.Fatalf("no TLS listener with TLS client authentication")
	}
	port := num(get(l, "port"))

	dev := filepath.Join(repoRoot(), "k8s", "paygate", "values-dev.yaml")
	vals := chartValues(t, dev)
	brokers := asSlice(get(vals, "config", "kafka", "brokers"))
	if len(brokers) == 0 {
		t.Fatalf("values-dev.yaml lists no brokers")
	}
	for _, b := range brokers {
		if want := kafka.Name() + "-kafka-bootstrap:" + itoa(port); b != want {
			t.Errorf("values-dev.yaml broker %v, want the tls listener's %s", b, want)
		}
	}
	w := kafkaSecurityOf(vals)
	if !w.tls || w.caSecret != kafka.Name()+"-cluster-ca-cert" || w.caKey != "ca.crt" {
		t.Errorf("values-dev.yaml TLS %v with CA %s/%s, want TLS with %s-cluster-ca-cert/ca.crt", w.tls, w.caSecret, w.caKey, kafka.Name())
	}
	user := one(t, objs, "KafkaUser", "")
	if str(user, "spec", "authentication", "type") != "tls" || w.clientSecret != user.Name() ||
		w.certKey != "user.crt" || w.keyKey != "user.key" {
		t.Errorf("values-dev.yaml client certificate %s (%s, %s), want KafkaUser %s's Secret (user.crt, user.key) for a listener with authentication tls",
			w.clientSecret, w.certKey, w.keyKey, user.Name())
	}
	var egress []int
	for _, p := range asSlice(get(vals, "networkPolicy", "egress", "kafka", "ports")) {
		egress = append(egress, num(p))
	}
	if get(vals, "networkPolicy", "enabled") == true && !slices.Contains(egress, port) {
		t.Errorf("values-dev.yaml lets paygate out to Kafka on %v, not on the tls listener's %d", egress, port)
	}
}

func itoa(n int) string { b, _ := yaml.Marshal(n); return strings.TrimSpace(string(b)) }

// TestOtelCollectorConfig checks the collector's pipelines, its
// ConfigMap, and the canonical copy in otel-collector/ once it exists.
func TestOtelCollectorConfig(t *testing.T) {
	path := filepath.Join(repoRoot(), "k8s", "otel-collector", "config.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defined := map[string]map[string]any{}
	for _, sec := range []string{"receivers", "processors", "exporters", "connectors", "extensions"} {
		m, _ := cfg[sec].(map[string]any)
		defined[sec] = m
	}
	if defined["receivers"]["otlp"] == nil || get(cfg, "receivers", "otlp", "protocols", "grpc") == nil || get(cfg, "receivers", "otlp", "protocols", "http") == nil {
		t.Errorf("no otlp receiver with grpc and http")
	}
	pipes, _ := get(cfg, "service", "pipelines").(map[string]any)
	if pipes["traces"] == nil {
		t.Fatalf("no traces pipeline")
	}
	for name, p := range pipes {
		for _, kind := range []string{"receivers", "processors", "exporters"} {
			for _, c := range asSlice(get(p, kind)) {
				id := c.(string)
				_, ok := defined[kind][id]
				_, isConn := defined["connectors"][id]
				if !ok && !(isConn && kind != "processors") {
					t.Errorf("pipeline %s uses %s %q, which is not defined", name, kind, id)
				}
			}
		}
		procs := asSlice(get(p, "processors"))
		if len(procs) == 0 || procs[0] != "memory_limiter" || procs[len(procs)-1] != "batch" {
			t.Errorf("pipeline %s processors %v: want memory_limiter first and batch last", name, procs)
		}
	}
	for _, ext := range asSlice(get(cfg, "service", "extensions")) {
		if defined["extensions"][ext.(string)] == nil {
			t.Errorf("extension %v is not defined", ext)
		}
	}
	// Traces go to Jaeger's OTLP gRPC port, as k8s/jaeger serves it.
	var jaegerEndpoint string
	for _, e := range asSlice(get(pipes, "traces", "exporters")) {
		if strings.HasPrefix(e.(string), "otlp") {
			jaegerEndpoint = str(defined["exporters"][e.(string)], "endpoint")
		}
	}
	jaeger := parseObjects(t, kustomize(t, filepath.Join(repoRoot(), "k8s", "jaeger")))
	svc := one(t, jaeger, "Service", "jaeger")
	var grpcPort int
	for _, p := range asSlice(get(svc, "spec", "ports")) {
		if str(p, "name") == "otlp-grpc" {
			grpcPort = num(get(p, "port"))
		}
	}
	if want := svc.Name() + ":" + itoa(grpcPort); jaegerEndpoint != want {
		t.Errorf("traces exporter endpoint %q, want Jaeger's %q", jaegerEndpoint, want)
	}

	// kustomize turns the file into the ConfigMap the Deployment mounts.
	objs := parseObjects(t, kustomize(t, filepath.Join(repoRoot(), "k8s", "otel-collector")))
	cms := find(objs, "ConfigMap", "")
	if len(cms) != 1 || str(cms[0], "data", "config.yaml") != string(raw) {
		t.Fatalf("the otel-collector ConfigMap does not carry config.yaml byte for byte")
	}
	dep := one(t, objs, "Deployment", "otel-collector")
	checkCollectorImage(t, dep)
	checkCollectorComponents(t, cfg)
	if str(dep, "spec", "template", "spec", "volumes", 0, "configMap", "name") != cms[0].Name() {
		t.Errorf("the collector mounts %q, not the generated ConfigMap %q",
			str(dep, "spec", "template", "spec", "volumes", 0, "configMap", "name"), cms[0].Name())
	}

	// The chart's default endpoint is this collector's OTLP gRPC port.
	vals := chartValues(t, "")
	col := one(t, objs, "Service", "otel-collector")
	if want := "http://" + col.Name() + ":4317"; str(vals, "otel", "endpoint") != want {
		t.Errorf("chart default otel.endpoint %q, want %q", str(vals, "otel", "endpoint"), want)
	}

	// otel-collector/config.yaml, once it exists, is the canonical copy:
	// the same configuration (each file may have its own header comment).
	canon := filepath.Join(repoRoot(), "otel-collector", "config.yaml")
	if b, err := os.ReadFile(canon); err == nil {
		var want map[string]any
		if err := yaml.UnmarshalStrict(b, &want); err != nil {
			t.Fatalf("%s: %v", canon, err)
		}
		if !reflect.DeepEqual(want, cfg) {
			t.Errorf("k8s/otel-collector/config.yaml is not the configuration of otel-collector/config.yaml (copy it over)")
		}
	} else {
		t.Logf("otel-collector/config.yaml does not exist yet: nothing to compare")
	}
}

// readmeCommands returns the shell commands of k8s/README.md's "Install
// order" block, with continuation lines joined and comments dropped.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "k8s", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "## Install order")
	if i < 0 {
		t.Fatal("k8s/README.md has no \"## Install order\"")
	}
	text = text[i:]
	start := strings.Index(text, "```sh\n")
	if start < 0 {
		t.Fatal("no ```sh block under \"## Install order\"")
	}
	block := text[start+6:]
	block = block[:strings.Index(block, "```")]
	var cmds []string
	cur := ""
	for _, line := range strings.Split(block, "\n") {
		if c := strings.Index(line, "#"); c >= 0 {
			line = line[:c]
		}
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		if line = strings.TrimSpace(cur + line); line != "" {
			cmds = append(cmds, strings.Join(strings.Fields(line), " "))
		}
		cur = ""
	}
	return cmds
}

// TestReadmeInstallOrder: the namespace exists before the Strimzi operator
// is installed to watch it (its install fails otherwise), and every chart
// from a repository is pinned to a version.
func TestReadmeInstallOrder(t *testing.T) {
	cmds := readmeCommands(t)
	nsAt, strimziAt := -1, -1
	for i, c := range cmds {
		if c == "kubectl apply -k k8s/namespace" && nsAt < 0 {
			nsAt = i
		}
		if strings.HasPrefix(c, "helm install strimzi ") {
			strimziAt = i
			if !strings.Contains(c, "watchNamespaces") {
				t.Errorf("the Strimzi operator is installed without watchNamespaces: %s", c)
			}
		}
		if strings.HasPrefix(c, "helm install ") || strings.HasPrefix(c, "helm upgrade --install ") {
			if f := strings.Fields(c); len(f) > 3 && !strings.HasPrefix(f[3], "charts/") && !strings.Contains(c, "--version ") {
				t.Errorf("chart %s is installed without --version: %s", f[3], c)
			}
		}
	}
	if nsAt < 0 || strimziAt < 0 {
		t.Fatalf("k8s/README.md: want both kubectl apply -k k8s/namespace and helm install strimzi in %q", cmds)
	}
	if nsAt > strimziAt {
		t.Errorf("k8s/README.md installs the Strimzi operator (watchNamespaces paygate) before it creates namespace paygate")
	}
}

// checkCollectorImage: the collector runs the release whose modules
// tools/otelcol validates the configuration with, and its Go runtime's soft
// memory limit (GOMEMLIMIT) is the container's memory limit, which
// memory_limiter's percentages also work from.
func checkCollectorImage(t *testing.T, dep Object) {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(repoRoot(), "tools", "otelcol", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*go\.opentelemetry\.io/collector/otelcol v(\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("tools/otelcol/go.mod does not require go.opentelemetry.io/collector/otelcol")
	}
	c := get(dep, "spec", "template", "spec", "containers", 0)
	if img, want := str(c, "image"), "otel/opentelemetry-collector-contrib:"+string(m[1]); img != want {
		t.Errorf("collector image %s, but its configuration is validated with collector %s: want %s", img, m[1], want)
	}
	if str(c, "resources", "limits", "memory") == "" {
		t.Errorf("the collector has no memory limit for memory_limiter to work from")
	}
	var gomemlimit bool
	for _, e := range asSlice(get(c, "env")) {
		if str(e, "name") == "GOMEMLIMIT" && str(e, "valueFrom", "resourceFieldRef", "resource") == "limits.memory" {
			gomemlimit = true
		}
	}
	if !gomemlimit {
		t.Errorf("the collector has no GOMEMLIMIT from its memory limit")
	}
}

// checkCollectorComponents: every component type in the configuration is
// a current name of the collector release tools/otelcol builds
// (PAYGATE_OTELCOL, `components`), not a deprecated alias that validates
// today and is gone in a later release (otlp for otlp_grpc, spanmetrics for
// span_metrics).
func checkCollectorComponents(t *testing.T, cfg map[string]any) {
	t.Helper()
	out, err := exec.Command(cluster.ToolFromEnv(t, "PAYGATE_OTELCOL"), "components").Output()
	if err != nil {
		t.Fatalf("otelcol components: %v", err)
	}
	var comps map[string]any
	if err := yaml.Unmarshal(out, &comps); err != nil {
		t.Fatalf("otelcol components: %v\n%s", err, out)
	}
	for _, sec := range []string{"receivers", "processors", "exporters", "connectors", "extensions"} {
		names := map[string]bool{}
		for _, c := range asSlice(comps[sec]) {
			names[str(c, "name")] = true
		}
		m, _ := cfg[sec].(map[string]any)
		for id := range m {
			if typ, _, _ := strings.Cut(id, "/"); !names[typ] {
				t.Errorf("%s %q: %q is not a current component name of the collector (have %v)", sec, id, typ, names)
			}
		}
	}
}
