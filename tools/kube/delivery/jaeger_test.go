package delivery

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/paygate/paygate/tools/kube/cluster"
)

// jaegerListenHost is how every endpoint of k8s/jaeger/config.yaml names
// its host: every interface in the cluster, loopback under make run (which
// sets JAEGER_LISTEN_HOST=127.0.0.1).
const jaegerListenHost = "${env:JAEGER_LISTEN_HOST:-0.0.0.0}"

// TestJaeger checks that k8s/jaeger runs Jaeger v2 (not the retired v1
// all-in-one) at the release tools/jaeger builds for make run, with
// config.yaml as its generated ConfigMap, and that the ports agree end to
// end: the Service, the container and the receivers Jaeger's configuration
// opens (TestOtelCollectorConfig checks that the collector sends to that
// Service port); the UI; and the health check the probes ask.
func TestJaeger(t *testing.T) {
	dir := filepath.Join(repoRoot(), "k8s", "jaeger")
	raw, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("k8s/jaeger/config.yaml: %v", err)
	}
	objs := parseObjects(t, kustomize(t, dir))
	dep := one(t, objs, "Deployment", "jaeger")
	svc := one(t, objs, "Service", "jaeger")
	spec := get(dep, "spec", "template", "spec")
	c := get(spec, "containers", 0)

	// The image is the Jaeger v2 release of the module tools/jaeger builds.
	if img, want := str(c, "image"), "jaegertracing/jaeger:"+jaegerV2Version(t); img != want {
		t.Errorf("Jaeger image %s, want %s (the release tools/jaeger builds for make run)", img, want)
	}

	// kustomize turns config.yaml into the ConfigMap the container reads.
	cms := find(objs, "ConfigMap", "")
	if len(cms) != 1 || str(cms[0], "data", "config.yaml") != string(raw) {
		t.Fatalf("the jaeger ConfigMap does not carry k8s/jaeger/config.yaml byte for byte")
	}
	var mountPath string
	for _, v := range asSlice(get(spec, "volumes")) {
		if str(v, "configMap", "name") != cms[0].Name() {
			continue
		}
		for _, m := range asSlice(get(c, "volumeMounts")) {
			if str(m, "name") == str(v, "name") {
				mountPath = str(m, "mountPath")
			}
		}
	}
	if mountPath == "" {
		t.Fatalf("the jaeger container does not mount the generated ConfigMap %s", cms[0].Name())
	}
	if args := fmt.Sprint(get(c, "args")); !strings.Contains(args, "--config="+mountPath+"/config.yaml") {
		t.Errorf("jaeger args %s do not name %s/config.yaml", args, mountPath)
	}
	if str(c, "resources", "limits", "memory") == "" {
		t.Errorf("jaeger has no memory limit for memory_limiter to work from")
	}
	var gomemlimit bool
	for _, e := range asSlice(get(c, "env")) {
		gomemlimit = gomemlimit || str(e, "name") == "GOMEMLIMIT" && str(e, "valueFrom", "resourceFieldRef", "resource") == "limits.memory"
	}
	if !gomemlimit {
		t.Errorf("jaeger has no GOMEMLIMIT from its memory limit")
	}

	// The configuration: OTLP in, memory_limiter first, into the memory
	// store the query extension reads.
	traces := get(cfg, "service", "pipelines", "traces")
	if fmt.Sprint(get(traces, "receivers")) != "[otlp]" || fmt.Sprint(get(traces, "exporters")) != "[jaeger_storage_exporter]" {
		t.Errorf("traces pipeline %v: want OTLP into jaeger_storage_exporter", traces)
	}
	if procs := asSlice(get(traces, "processors")); len(procs) == 0 || procs[0] != "memory_limiter" {
		t.Errorf("traces processors %v: want memory_limiter first", procs)
	}
	store := str(cfg, "exporters", "jaeger_storage_exporter", "trace_storage")
	if store == "" || str(cfg, "extensions", "jaeger_query", "storage", "traces") != store ||
		get(cfg, "extensions", "jaeger_storage", "backends", store, "memory") == nil {
		t.Errorf("the exporter's trace_storage %q is not the memory backend jaeger_query reads", store)
	}
	for _, ext := range []string{"jaeger_storage", "jaeger_query", "healthcheckv2"} {
		if !strings.Contains(fmt.Sprint(get(cfg, "service", "extensions")), ext) {
			t.Errorf("service.extensions %v lacks %s", get(cfg, "service", "extensions"), ext)
		}
	}

	// Ports, end to end. containerPort maps a port name to its number.
	containerPort := map[string]int{}
	for _, p := range asSlice(get(c, "ports")) {
		containerPort[str(p, "name")] = num(get(p, "containerPort"))
	}
	servicePort := map[string]int{}
	for _, p := range asSlice(get(svc, "spec", "ports")) {
		if tp := str(p, "targetPort"); containerPort[tp] == 0 {
			t.Errorf("Service port %s targets %q, which the container does not name", str(p, "name"), tp)
		}
		servicePort[str(p, "name")] = num(get(p, "port"))
	}
	for _, want := range []struct {
		name string // container and Service port name
		path []any  // the endpoint in config.yaml
	}{
		{"otlp-grpc", []any{"receivers", "otlp", "protocols", "grpc", "endpoint"}},
		{"otlp-http", []any{"receivers", "otlp", "protocols", "http", "endpoint"}},
		{"ui", []any{"extensions", "jaeger_query", "http", "endpoint"}},
		{"health", []any{"extensions", "healthcheckv2", "http", "endpoint"}},
	} {
		port := jaegerEndpointPort(t, str(cfg, want.path...))
		if containerPort[want.name] != port {
			t.Errorf("container port %s is %d, but config.yaml listens on %d (%v)", want.name, containerPort[want.name], port, want.path)
		}
	}
	for name, port := range map[string]int{"otlp-grpc": 4317, "otlp-http": 4318, "ui": 16686} {
		if servicePort[name] != port {
			t.Errorf("Service jaeger port %s is %d, want %d", name, servicePort[name], port)
		}
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if str(c, probe, "httpGet", "port") != "health" || str(c, probe, "httpGet", "path") != "/status" {
			t.Errorf("%s %v: want GET /status on port health (healthcheckv2)", probe, get(c, probe))
		}
	}
}

// jaegerEndpointPort returns the port of a config.yaml endpoint, failing
// the test unless its host is jaegerListenHost.
func jaegerEndpointPort(t *testing.T, endpoint string) int {
	t.Helper()
	host, port, ok := strings.Cut(endpoint, "}:")
	if !ok || host+"}" != jaegerListenHost {
		t.Errorf("endpoint %q: want host %s, so that make run listens on loopback only", endpoint, jaegerListenHost)
		return 0
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Errorf("endpoint %q: %v", endpoint, err)
	}
	return n
}

// jaegerV2Version returns the Jaeger v2 release that tools/jaeger builds.
// Jaeger tags every release twice on one commit, v1.N.P and v2.(N-63).P
// (v1.63.0 / v2.0.0 was the first pair, v1.76.0 / v2.13.0 is in Jaeger's
// CHANGELOG), and the module proxy serves it under the v1 tag, because the
// module path has no /v2 suffix.
func jaegerV2Version(t *testing.T) string {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(repoRoot(), "tools", "jaeger", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^tool github\.com/jaegertracing/jaeger/cmd/jaeger$`).Match(gomod) {
		t.Errorf("tools/jaeger/go.mod has no `tool github.com/jaegertracing/jaeger/cmd/jaeger` (the v2 binary)")
	}
	if strings.Contains(string(gomod), "cmd/all-in-one") {
		t.Errorf("tools/jaeger/go.mod still names the retired v1 all-in-one")
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/jaegertracing/jaeger v1\.(\d+)\.(\d+)\b`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("tools/jaeger/go.mod does not require github.com/jaegertracing/jaeger v1.N.P")
	}
	minor, _ := strconv.Atoi(string(m[1]))
	if minor < 63 {
		t.Fatalf("tools/jaeger builds Jaeger v1.%d, older than the first v2 release (v1.63.0 / v2.0.0)", minor)
	}
	return fmt.Sprintf("2.%d.%s", minor-63, m[2])
}

// TestJaegerRuns starts the Jaeger v2 binary that tools/jaeger builds for
// make run (PAYGATE_JAEGER) with k8s/jaeger/config.yaml as make run does
// (JAEGER_LISTEN_HOST=127.0.0.1), on free ports instead of its fixed ones:
// the configuration validates, the health check answers, a span sent over
// OTLP/HTTP comes back from the query API, and SIGTERM stops it promptly.
func TestJaegerRuns(t *testing.T) {
	bin := cluster.ToolFromEnv(t, "PAYGATE_JAEGER")
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "k8s", "jaeger", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "JAEGER_LISTEN_HOST=127.0.0.1")
	dir := t.TempDir()
	validate := func(path string) {
		cmd := exec.Command(bin, "validate", "--config="+path)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("jaeger validate --config=%s: %v\n%s", path, err, out)
		}
	}
	validate(filepath.Join(repoRoot(), "k8s", "jaeger", "config.yaml"))

	// The same configuration on free ports; each fixed port must occur
	// once, so that a new listener in config.yaml gets noticed here.
	ports := loopbackPorts(t, 6)
	cfg := string(raw)
	for i, fixed := range []string{"4317", "4318", "16686", "16685", "13133", "8888"} {
		re := regexp.MustCompile(`(:|port: )` + fixed + `\b`)
		if n := len(re.FindAllString(cfg, -1)); n != 1 {
			t.Fatalf("k8s/jaeger/config.yaml names port %s %d times, want once", fixed, n)
		}
		cfg = re.ReplaceAllString(cfg, "${1}"+strconv.Itoa(ports[i]))
	}
	otlpHTTP, query, health := ports[1], ports[2], ports[4]
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	validate(path)

	logPath := filepath.Join(dir, "jaeger.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--config="+path)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b[max(0, len(b)-4000):])
	}

	// poll GETs url until it answers 200 with a body containing want.
	poll := func(url, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
					return
				}
				err = fmt.Errorf("%s: %s", resp.Status, body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\njaeger log:\n%s", url, err, logTail())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	poll(fmt.Sprintf("http://127.0.0.1:%d/status", health), `"healthy":true`)

	traceID := fmt.Sprintf("%032x", time.Now().UnixNano())
	now := time.Now().UnixNano()
	span := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"paygate"}}]},`+
		`"scopeSpans":[{"spans":[{"traceId":%q,"spanId":"eee19b7ec3c1b174","name":"POST /v1/transfers","kind":2,`+
		`"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`, traceID, now-int64(5*time.Millisecond), now)
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/traces", otlpHTTP), "application/json", strings.NewReader(span))
	if err != nil {
		t.Fatalf("OTLP export: %v\njaeger log:\n%s", err, logTail())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP export: %s", resp.Status)
	}
	poll(fmt.Sprintf("http://127.0.0.1:%d/api/traces/%s", query, traceID), `"operationName":"POST /v1/transfers"`)

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("jaeger exited with %v after SIGTERM\n%s", err, logTail())
		}
		t.Logf("jaeger stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatalf("jaeger still runs 5s after SIGTERM\n%s", logTail())
	}
}

// loopbackPorts returns n distinct loopback ports, free when it returns.
func loopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
