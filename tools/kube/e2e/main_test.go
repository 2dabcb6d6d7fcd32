// Package e2e installs paygate's Helm chart on a real single-node cluster
// (tools/kube/cluster with NodeOptions: containerd, kubelet, scheduler,
// controller manager, kube-proxy, CoreDNS) and proves what an operator
// relies on: the hooks run, the pods become Ready, `helm test` passes, a
// rolling upgrade under steady traffic drops nothing, a drain respects the
// PodDisruptionBudget, a killed pod is replaced, readiness follows the
// database, and rollback and uninstall work.
//
// PostgreSQL, the Kafka-protocol broker, SMTP (mailpit) and the payment
// provider (paygate sandbox) run on the host, outside the cluster, on the
// host's address on the pods' bridge: the chart reaches them the way it
// reaches a managed database or a provider's API. The images (pause,
// CoreDNS, curl for `helm test`, paygate) are built without a registry or a
// container engine (package image) and imported into containerd.
//
// scripts/k8s-test.sh (make chart-test) builds the binaries and passes them
// in (PAYGATE_KUBELET, PAYGATE_KUBE_CONTROLLER_MANAGER, ...). It needs root.
// A missing tool fails the tests; none is skipped.
package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/tools/kube/cluster"
)

func TestMain(m *testing.M) {
	cluster.StopOnSignal("e2e tests", cleanUp)
	code := m.Run()
	cleanUp()
	os.Exit(code)
}

var (
	cleanMu  sync.Mutex
	cleanups []func()
)

// atExit registers fn to run when the tests end (last registered first).
func atExit(fn func()) {
	cleanMu.Lock()
	defer cleanMu.Unlock()
	cleanups = append(cleanups, fn)
}

func cleanUp() {
	cleanMu.Lock()
	fns := cleanups
	cleanups = nil
	cleanMu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
	cluster.StopAll()
}

// startCluster starts the single-node cluster and applies k8s/namespace.
func startCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	o := cluster.Options{
		Etcd:      cluster.ToolFromEnv(t, "PAYGATE_ETCD"),
		APIServer: cluster.ToolFromEnv(t, "PAYGATE_KUBE_APISERVER"),
		Node: &cluster.NodeOptions{
			Kubelet:           cluster.ToolFromEnv(t, "PAYGATE_KUBELET"),
			ControllerManager: cluster.ToolFromEnv(t, "PAYGATE_KUBE_CONTROLLER_MANAGER"),
			Scheduler:         cluster.ToolFromEnv(t, "PAYGATE_KUBE_SCHEDULER"),
			Proxy:             cluster.ToolFromEnv(t, "PAYGATE_KUBE_PROXY"),
			Kubectl:           cluster.ToolFromEnv(t, "PAYGATE_KUBECTL"),
			CoreDNS:           cluster.ToolFromEnv(t, "PAYGATE_COREDNS"),
			CoreDNSVersion:    cluster.ToolFromEnv(t, "PAYGATE_COREDNS_VERSION"),
			Pause:             cluster.ToolFromEnv(t, "PAYGATE_PAUSE"),
		},
	}
	start := time.Now()
	c, err := cluster.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("starting the node cluster: %v", err)
	}
	atExit(c.Stop)
	t.Logf("node cluster ready (node Ready, CoreDNS Ready) in %s", time.Since(start).Round(time.Millisecond))
	return c
}

// repoRoot is the repository root (this package is tools/kube/e2e).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// run runs a command with extra environment and returns its combined output.
func run(ctx context.Context, stdin []byte, extraEnv []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Dir = repoRoot()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// kube runs kubectl and helm against a cluster, with helm's state in a
// private directory.
type kube struct {
	c        *cluster.Cluster
	kubectlB string
	helmB    string
	helmHome string
}

func newKube(t *testing.T, c *cluster.Cluster) *kube {
	home, err := cluster.OwnedTempDir("paygate-e2e-helm-")
	if err != nil {
		t.Fatal(err)
	}
	atExit(func() { _ = os.RemoveAll(home) })
	return &kube{c: c, kubectlB: cluster.ToolFromEnv(t, "PAYGATE_KUBECTL"), helmB: cluster.ToolFromEnv(t, "PAYGATE_HELM"), helmHome: home}
}

func (k *kube) env() []string {
	return []string{
		"KUBECONFIG=" + k.c.Kubeconfig,
		"KUBECACHEDIR=" + filepath.Join(k.helmHome, "kubectl-cache"),
		"HELM_CACHE_HOME=" + filepath.Join(k.helmHome, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(k.helmHome, "config"),
		"HELM_DATA_HOME=" + filepath.Join(k.helmHome, "data"),
	}
}

// kubectl runs kubectl and returns its output and error.
func (k *kube) kubectl(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return run(ctx, nil, k.env(), k.kubectlB, args...)
}

// must runs kubectl and fails t on error.
func (k *kube) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.kubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// helm runs helm and returns its output and error.
func (k *kube) helm(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return run(ctx, nil, k.env(), k.helmB, args...)
}

// eventually polls cond every interval until it returns true or timeout
// passes; it returns the last detail cond gave.
func eventually(timeout, interval time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok || time.Now().After(deadline) {
			return ok, detail
		}
		time.Sleep(interval)
	}
}
