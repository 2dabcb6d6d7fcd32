// Package delivery tests paygate's Kubernetes delivery: the Dockerfile, the
// Helm chart (lint, render, schema), the k8s/ manifests, skaffold.yaml and
// the alerting rules, and validates every rendered object against a real
// kube-apiserver with the operators' CRDs installed.
//
// It needs the cluster tools that scripts/k8s-test.sh (make chart-test)
// builds and passes in: PAYGATE_HELM, PAYGATE_KUBECTL, PAYGATE_ETCD,
// PAYGATE_KUBE_APISERVER, PAYGATE_OTELCOL and PAYGATE_JAEGER, and the CRDs in PAYGATE_CRDS_DIR (default
// ../shared/crds from the repository root). A missing tool fails the tests;
// none is skipped.
package delivery

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/paygate/paygate/tools/kube/cluster"
)

// kubeVersion is the version the chart is rendered for when no server is
// asked (helm template/lint): the API server's version.
const kubeVersion = "1.34.4"

var (
	clusterOnce sync.Once
	theCluster  *cluster.Cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	cluster.StopOnSignal("delivery tests", cleanUp)
	code := m.Run()
	cleanUp()
	os.Exit(code)
}

// cleanUp stops the cluster (also one still starting) and removes the
// temporary directories of the run.
func cleanUp() {
	cluster.StopAll()
	tempMu.Lock()
	defer tempMu.Unlock()
	for _, d := range tempDirs {
		_ = os.RemoveAll(d)
	}
	tempDirs = nil
}

var (
	tempMu   sync.Mutex
	tempDirs []string
)

// tempDir makes a directory that cleanUp removes.
func tempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	tempMu.Lock()
	tempDirs = append(tempDirs, d)
	tempMu.Unlock()
	return d, nil
}

// testCluster starts etcd and kube-apiserver once for the whole run, with
// the CRDs installed and paygate's namespace created.
func testCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	clusterOnce.Do(func() {
		o, err := cluster.FromEnv()
		if err != nil {
			clusterErr = err
			return
		}
		start := time.Now()
		c, err := cluster.Start(context.Background(), o)
		if err != nil {
			clusterErr = err
			return
		}
		theCluster = c
		t.Logf("kube-apiserver ready at %s in %s", c.URL, time.Since(start).Round(time.Millisecond))
		clusterErr = setUpCluster(c)
		if clusterErr != nil {
			clusterErr = fmt.Errorf("%w\n%s", clusterErr, c.Logs(20))
		}
	})
	if clusterErr != nil {
		t.Fatalf("test cluster: %v", clusterErr)
	}
	return theCluster
}

// setUpCluster installs the CRDs (waiting until they are served) and the
// namespace from k8s/namespace, with the "default" ServiceAccount the
// controller manager would create (the ServiceAccount admission plugin
// requires it for pods).
func setUpCluster(c *cluster.Cluster) error {
	dir, err := crdsDir()
	if err != nil {
		return err
	}
	var files []string
	for _, sub := range []string{"strimzi-1.2.0", "prometheus-operator-v0.85.0"} {
		m, _ := filepath.Glob(filepath.Join(dir, sub, "*.yaml"))
		if len(m) == 0 {
			return fmt.Errorf("no CRDs in %s", filepath.Join(dir, sub))
		}
		files = append(files, m...)
	}
	args := []string{"apply", "--server-side", "--validate=strict"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	if out, err := kubectl(c, nil, args...); err != nil {
		return fmt.Errorf("installing CRDs: %v\n%s", err, out)
	}
	if err := waitEstablished(c, len(files), 60*time.Second); err != nil {
		return fmt.Errorf("waiting for CRDs: %w", err)
	}
	ns, err := kubectl(c, nil, "kustomize", filepath.Join(repoRoot(), "k8s", "namespace"))
	if err != nil {
		return fmt.Errorf("kustomize k8s/namespace: %v\n%s", err, ns)
	}
	if out, err := kubectl(c, ns, "apply", "--server-side", "--validate=strict", "-f", "-"); err != nil {
		return fmt.Errorf("creating the namespace: %v\n%s", err, out)
	}
	sa := []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: paygate\n")
	if out, err := kubectl(c, sa, "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("creating the default ServiceAccount: %v\n%s", err, out)
	}
	return nil
}

// repoRoot is the repository root (this package is tools/kube/delivery).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

func chartDir() string { return filepath.Join(repoRoot(), "charts", "paygate") }

// crdsDir is PAYGATE_CRDS_DIR, default ../shared/crds; a relative path is
// taken from the repository root.
func crdsDir() (string, error) {
	d := os.Getenv("PAYGATE_CRDS_DIR")
	if d == "" {
		d = filepath.Join("..", "shared", "crds")
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join(repoRoot(), d)
	}
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("CRD directory %s not found: set PAYGATE_CRDS_DIR", d)
	}
	return d, nil
}

// run runs a command with stdin and returns its combined output.
func run(stdin []byte, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// helm runs the helm binary with its state in a private directory.
func helm(t *testing.T, c *cluster.Cluster, args ...string) ([]byte, error) {
	t.Helper()
	env := []string{
		"HELM_CACHE_HOME=" + filepath.Join(helmHome(t), "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(helmHome(t), "config"),
		"HELM_DATA_HOME=" + filepath.Join(helmHome(t), "data"),
	}
	if c != nil {
		env = append(env, "KUBECONFIG="+c.Kubeconfig)
	} else {
		// No server: make sure nothing reaches one by accident.
		env = append(env, "KUBECONFIG="+filepath.Join(helmHome(t), "no-kubeconfig"))
	}
	return run(nil, env, cluster.ToolFromEnv(t, "PAYGATE_HELM"), args...)
}

var (
	helmHomeOnce sync.Once
	helmHomeDir  string
)

func helmHome(t *testing.T) string {
	helmHomeOnce.Do(func() {
		d, err := tempDir("paygate-helm-")
		if err != nil {
			panic(err)
		}
		helmHomeDir = d
	})
	return helmHomeDir
}

// waitEstablished polls until want CRDs report the Established condition.
// It does not use "kubectl wait --for=condition=Established": that command
// fails at once, instead of waiting, on a CRD whose status the apiextensions
// controller has not written yet (".status.conditions accessor error"), and
// right after a server-side apply some CRDs are in exactly that state.
func waitEstablished(c *cluster.Cluster, want int, timeout time.Duration) error {
	const jsonpath = `{range .items[*]}{.metadata.name}{"="}{.status.conditions[?(@.type=="Established")].status}{"\n"}{end}`
	deadline := time.Now().Add(timeout)
	var last string
	for {
		out, err := kubectl(c, nil, "get", "crd", "-o", "jsonpath="+jsonpath)
		last = string(out)
		if err == nil {
			established := 0
			for _, line := range strings.Split(strings.TrimSpace(last), "\n") {
				if strings.HasSuffix(line, "=True") {
					established++
				}
			}
			if established >= want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d CRDs not all Established after %s (err %v):\n%s", want, timeout, err, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// kubectl runs the kubectl binary against c (any c for commands that need
// no server, such as kustomize).
func kubectl(c *cluster.Cluster, stdin []byte, args ...string) ([]byte, error) {
	bin := os.Getenv("PAYGATE_KUBECTL")
	if bin == "" {
		return nil, fmt.Errorf("PAYGATE_KUBECTL is not set: run scripts/k8s-test.sh (make chart-test)")
	}
	var env []string
	if c != nil {
		// A discovery cache of this cluster only (CRDs appear during the run).
		env = append(env, "KUBECONFIG="+c.Kubeconfig, "KUBECACHEDIR="+filepath.Join(c.Dir, "kubectl-cache"))
	}
	return run(stdin, env, bin, args...)
}

// ciValues lists the chart's ci/*-values.yaml files.
func ciValues(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(chartDir(), "ci", "*-values.yaml"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no ci/*-values.yaml in %s", chartDir())
	}
	sort.Strings(m)
	return m
}

// valueSets are the ci sets plus the dev values of k8s/paygate.
func valueSets(t *testing.T) []string {
	return append(ciValues(t), filepath.Join(repoRoot(), "k8s", "paygate", "values-dev.yaml"))
}

// render runs helm template (with hooks and tests) for the values files and
// extra args, and returns the objects.
func render(t *testing.T, extra ...string) []Object {
	t.Helper()
	out, err := renderRaw(t, extra...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(extra, " "), err, out)
	}
	return parseObjects(t, out)
}

func renderRaw(t *testing.T, extra ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"template", "paygate", chartDir(), "--namespace", "paygate", "--kube-version", kubeVersion}, extra...)
	return helm(t, nil, args...)
}

// Object is one Kubernetes object as generic YAML.
type Object map[string]any

func (o Object) Kind() string { s, _ := o["kind"].(string); return s }
func (o Object) Name() string { return str(o, "metadata", "name") }
func (o Object) Namespace() string {
	return str(o, "metadata", "namespace")
}
func (o Object) String() string { return o.Kind() + "/" + o.Name() }

// Labels returns metadata.labels.
func (o Object) Labels() map[string]string { return strMap(get(o, "metadata", "labels")) }

// Annotations returns metadata.annotations.
func (o Object) Annotations() map[string]string { return strMap(get(o, "metadata", "annotations")) }

func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				if o, ok2 := v.(Object); ok2 {
					m = o
				} else {
					return nil
				}
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }

func strMap(v any) map[string]string {
	out := map[string]string{}
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}

// parseObjects splits a multi-document YAML stream into objects.
func parseObjects(t *testing.T, data []byte) []Object {
	t.Helper()
	var out []Object
	for _, doc := range splitDocs(data) {
		var o Object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("parsing rendered YAML: %v\n%s", err, doc)
		}
		if len(o) == 0 {
			continue
		}
		out = append(out, o)
	}
	return out
}

func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur []string
	flush := func() {
		if s := strings.TrimSpace(strings.Join(cur, "\n")); s != "" {
			docs = append(docs, []byte(strings.Join(cur, "\n")))
		}
		cur = nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimRight(line, " ") == "---" || strings.HasPrefix(line, "--- ") {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return docs
}

func find(objs []Object, kind, nameSuffix string) []Object {
	var out []Object
	for _, o := range objs {
		if o.Kind() == kind && strings.HasSuffix(o.Name(), nameSuffix) {
			out = append(out, o)
		}
	}
	return out
}

func one(t *testing.T, objs []Object, kind, nameSuffix string) Object {
	t.Helper()
	m := find(objs, kind, nameSuffix)
	if len(m) != 1 {
		t.Fatalf("want exactly one %s named *%s, got %d", kind, nameSuffix, len(m))
	}
	return m[0]
}

func toYAML(t *testing.T, objs []Object) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}
