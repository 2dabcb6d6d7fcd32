package cluster

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/paygate/paygate/tools/kube/image"
)

// NodeOptions makes a Cluster real: with them Start also runs containerd,
// kube-controller-manager, kube-scheduler, a kubelet, kube-proxy (iptables
// mode) and CoreDNS, so that pods are scheduled, started and reachable.
// It needs root, and there is one such cluster per machine.
type NodeOptions struct {
	// Kubelet, ControllerManager, Scheduler and Proxy are the binaries, from
	// the same Kubernetes version as the API server.
	Kubelet, ControllerManager, Scheduler, Proxy string
	// Kubectl applies the cluster add-ons (CoreDNS).
	Kubectl string
	// CoreDNS and Pause are static binaries, packed into the images of the
	// DNS pod and of the pods' sandboxes.
	CoreDNS, Pause string
	// CoreDNSVersion tags the CoreDNS image.
	CoreDNSVersion string
	// Containerd and Ctr default to the commands on the PATH (Debian's
	// containerd package); CNIBinDir to /usr/lib/cni
	// (containernetworking-plugins).
	Containerd, Ctr, CNIBinDir string
}

// The images every node cluster imports.
const (
	// PauseImage is the sandbox image of every pod.
	PauseImage = "localhost/paygate-pause:1"
	// coreDNSImageRepo is CoreDNS' image; its tag is CoreDNSVersion.
	coreDNSImageRepo = "localhost/paygate-coredns"
)

//go:embed coredns.yaml
var coreDNSManifest string

// node is the running node part of a Cluster.
type node struct {
	opts                                     NodeOptions
	host                                     *hostState
	socket                                   string
	containerd, cm, scheduler, kubelet, prox *proc
}

// nodeAPIServerArgs are the API server's settings that a node cluster
// needs: an address the pods reach, the Node authorizer, and the client
// certificate it calls the kubelet with.
func nodeAPIServerArgs(dir string) []string {
	return []string{
		"--bind-address=" + HostIP,
		"--advertise-address=" + HostIP,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--kubelet-client-certificate=" + filepath.Join(dir, "pki", "apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + filepath.Join(dir, "pki", "apiserver-kubelet-client.key"),
	}
}

// componentUsers are the identities of the node's components in the static
// token file; the bootstrap RBAC policy and the Node authorizer know them.
var componentUsers = map[string]string{
	"kubelet":                 `system:node:` + NodeName + `,system:node:` + NodeName + `,"system:nodes"`,
	"kube-controller-manager": "system:kube-controller-manager,system:kube-controller-manager",
	"kube-scheduler":          "system:kube-scheduler,system:kube-scheduler",
	"kube-proxy":              "system:kube-proxy,system:kube-proxy",
}

// writeNodePKI writes the CA that the kubelet trusts for client
// certificates and the API server's client certificate for the kubelet.
func writeNodePKI(dir string) error {
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	ca, err := newCA()
	if err != nil {
		return err
	}
	if err := ca.writeCert(filepath.Join(pki, "ca.crt")); err != nil {
		return err
	}
	return ca.issueClient("kube-apiserver-kubelet-client", []string{"system:masters"},
		filepath.Join(pki, "apiserver-kubelet-client.crt"), filepath.Join(pki, "apiserver-kubelet-client.key"))
}

// startNode starts containerd, imports the pause and CoreDNS images, then
// the controller manager, the scheduler, the kubelet and kube-proxy, and
// installs CoreDNS; it returns once the node is Ready and DNS answers.
func (c *Cluster) startNode(ctx context.Context, o NodeOptions, tokens map[string]string) error {
	n := c.node
	dir := c.Dir
	if err := n.startContainerd(ctx, dir); err != nil {
		return err
	}
	imgDir := filepath.Join(dir, "images")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return err
	}
	for _, s := range []image.Spec{
		{
			Ref:    PauseImage,
			Files:  []image.File{{Path: "/pause", Source: o.Pause, Mode: 0o755}},
			Config: image.Config{User: "65535:65535", Entrypoint: []string{"/pause"}},
		},
		{
			Ref:    coreDNSImageRepo + ":" + o.CoreDNSVersion,
			Files:  []image.File{{Path: "/coredns", Source: o.CoreDNS, Mode: 0o755}},
			Config: image.Config{User: "65532:65532", Entrypoint: []string{"/coredns"}},
		},
	} {
		p := filepath.Join(imgDir, strings.NewReplacer("/", "_", ":", "_").Replace(s.Ref)+".tar")
		if _, err := image.WriteFile(p, s, runtime.GOARCH); err != nil {
			return err
		}
		if err := c.ImportImage(p); err != nil {
			return err
		}
	}

	kubeconfig := func(name string) (string, error) {
		p := filepath.Join(dir, name+".kubeconfig")
		return p, writeKubeconfigFile(p, c.URL, c.CAFile, name, tokens[name])
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}

	kcm, err := kubeconfig("kube-controller-manager")
	if err != nil {
		return err
	}
	if n.cm, err = start(dir, "kube-controller-manager", o.ControllerManager,
		"--kubeconfig="+kcm,
		"--authentication-kubeconfig="+kcm,
		"--authorization-kubeconfig="+kcm,
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+filepath.Join(dir, "sa.key"),
		"--root-ca-file="+c.CAFile,
		"--cluster-cidr="+PodCIDR,
		"--service-cluster-ip-range="+ServiceCIDR,
		"--controllers=*,-bootstrapsigner,-tokencleaner,-csrsigning",
		"--node-monitor-grace-period=20s",
		"--v=1",
	); err != nil {
		return err
	}

	ksched, err := kubeconfig("kube-scheduler")
	if err != nil {
		return err
	}
	if n.scheduler, err = start(dir, "kube-scheduler", o.Scheduler,
		"--kubeconfig="+ksched,
		"--authentication-kubeconfig="+ksched,
		"--authorization-kubeconfig="+ksched,
		"--secure-port=0",
		"--leader-elect=false",
		"--v=1",
	); err != nil {
		return err
	}

	if err := n.startKubelet(dir, kubeconfig, ports[0], ports[1]); err != nil {
		return err
	}
	if err := n.startProxy(dir, kubeconfig, ports[2], ports[3]); err != nil {
		return err
	}

	if err := c.waitNodeReady(ctx); err != nil {
		return err
	}
	manifest := strings.NewReplacer("@IMAGE@", coreDNSImageRepo+":"+o.CoreDNSVersion, "@DNSIP@", DNSIP).Replace(coreDNSManifest)
	if out, err := c.kubectl(ctx, []byte(manifest), "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("installing CoreDNS: %v\n%s", err, out)
	}
	if out, err := c.kubectl(ctx, nil, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s"); err != nil {
		return fmt.Errorf("CoreDNS did not become ready: %v\n%s\n%s", err, out, c.describe(ctx, "kube-system"))
	}
	return nil
}

// containerdConfig is containerd's configuration: everything under the
// cluster's directory, the CRI with the pause image as sandbox, runc with
// cgroupfs, and CNI from CNIBinDir with the bridge conflist in conf_dir.
const containerdConfig = `version = 2
root = "@DIR@/containerd/root"
state = "@DIR@/containerd/state"
[grpc]
  address = "@SOCK@"
[ttrpc]
  address = "@SOCK@.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "@DIR@/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "@PAUSE@"
  # A process here may raise its OOM score but not lower it; the pause
  # container asks for -998, and runc fails without this.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "@DIR@/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "@CNIBIN@"
    conf_dir = "@DIR@/cni/net.d"
    max_conf_num = 1
`

// cniConfig attaches pods to Bridge with addresses from PodCIDR, routes
// through the host, and masquerades what leaves the pod range.
const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "paygate",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "@BRIDGE@",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "@DIR@/cni/ipam",
        "ranges": [[{"subnet": "@PODCIDR@", "gateway": "@HOSTIP@"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`

func (n *node) startContainerd(ctx context.Context, dir string) error {
	n.socket = filepath.Join(dir, "containerd.sock")
	r := strings.NewReplacer("@DIR@", dir, "@SOCK@", n.socket, "@PAUSE@", PauseImage, "@CNIBIN@", n.opts.CNIBinDir,
		"@BRIDGE@", Bridge, "@PODCIDR@", PodCIDR, "@HOSTIP@", HostIP)
	if err := os.MkdirAll(filepath.Join(dir, "cni", "net.d"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cni", "net.d", "10-paygate.conflist"), []byte(r.Replace(cniConfig)), 0o644); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(r.Replace(containerdConfig)), 0o644); err != nil {
		return err
	}
	var err error
	if n.containerd, err = start(dir, "containerd", n.opts.Containerd, "--config", cfg, "--log-level", "warn"); err != nil {
		return err
	}
	for {
		if err := n.containerd.exited(); err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, n.opts.Ctr, "-a", n.socket, "version").CombinedOutput(); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("containerd not ready: %v: %s\n%s", err, out, tail(n.containerd.log, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ImportImage imports a docker-save archive (see package image) into the
// node's containerd, where the kubelet finds it without a registry.
func (c *Cluster) ImportImage(archive string) error {
	if c.node == nil {
		return fmt.Errorf("ImportImage: the cluster has no node")
	}
	out, err := exec.Command(c.node.opts.Ctr, "-a", c.node.socket, "-n", "k8s.io", "images", "import", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %v: %s", archive, err, out)
	}
	return nil
}

// kubeletConfig is the kubelet's configuration: the settings this kind of
// machine needs (cgroup v1 with cgroupfs, swap tolerated), everything under
// the cluster's directory, cluster DNS, and image garbage collection off so
// that the imported images stay.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: @HOSTIP@
port: @PORT@
healthzBindAddress: 127.0.0.1
healthzPort: @HEALTHZ@
readOnlyPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: @DIR@/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://@SOCK@
clusterDNS:
  - @DNSIP@
clusterDomain: cluster.local
resolvConf: ""
podLogsDir: @DIR@/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
maxPods: 60
serializeImagePulls: false
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
`

func (n *node) startKubelet(dir string, kubeconfig func(string) (string, error), port, healthz int) error {
	kc, err := kubeconfig("kubelet")
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "kubelet.yaml")
	r := strings.NewReplacer("@DIR@", dir, "@SOCK@", n.socket, "@HOSTIP@", HostIP, "@DNSIP@", DNSIP,
		"@PORT@", strconv.Itoa(port), "@HEALTHZ@", strconv.Itoa(healthz))
	if err := os.WriteFile(cfg, []byte(r.Replace(kubeletConfig)), 0o644); err != nil {
		return err
	}
	for _, d := range []string{"kubelet", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	n.kubelet, err = start(dir, "kubelet", n.opts.Kubelet,
		"--config="+cfg,
		"--kubeconfig="+kc,
		"--root-dir="+filepath.Join(dir, "kubelet"),
		"--cert-dir="+filepath.Join(dir, "kubelet", "pki"),
		"--hostname-override="+NodeName,
		"--node-ip="+HostIP,
		"--v=1",
	)
	return err
}

// proxyConfig is kube-proxy's configuration: iptables mode, its ports on
// loopback, and no changes to conntrack sysctls or route_localnet.
const proxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: @KUBECONFIG@
mode: iptables
hostnameOverride: @NODE@
bindAddress: @HOSTIP@
clusterCIDR: @PODCIDR@
healthzBindAddress: 127.0.0.1:@HEALTHZ@
metricsBindAddress: 127.0.0.1:@METRICS@
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  syncPeriod: 30s
  minSyncPeriod: 0s
`

func (n *node) startProxy(dir string, kubeconfig func(string) (string, error), healthz, metrics int) error {
	kc, err := kubeconfig("kube-proxy")
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "kube-proxy.yaml")
	r := strings.NewReplacer("@KUBECONFIG@", kc, "@NODE@", NodeName, "@HOSTIP@", HostIP, "@PODCIDR@", PodCIDR,
		"@HEALTHZ@", strconv.Itoa(healthz), "@METRICS@", strconv.Itoa(metrics))
	if err := os.WriteFile(cfg, []byte(r.Replace(proxyConfig)), 0o644); err != nil {
		return err
	}
	n.prox, err = start(dir, "kube-proxy", n.opts.Proxy, "--config="+cfg, "--v=1")
	return err
}

// waitNodeReady waits until the node has registered and reports Ready.
func (c *Cluster) waitNodeReady(ctx context.Context) error {
	var last string
	for {
		for _, p := range []*proc{c.node.containerd, c.node.kubelet, c.node.prox, c.node.cm, c.node.scheduler} {
			if err := p.exited(); err != nil {
				return err
			}
		}
		out, err := c.kubectl(ctx, nil, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		last = strings.TrimSpace(string(out))
		if err == nil && last == "True" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready (%s); kubelet log:\n%s", NodeName, last, tail(c.node.kubelet.log, 40))
		case <-time.After(time.Second):
		}
	}
}

// describe returns the pods and recent events of a namespace, for failure
// reports.
func (c *Cluster) describe(ctx context.Context, ns string) string {
	pods, _ := c.kubectl(ctx, nil, "-n", ns, "get", "pods", "-o", "wide")
	events, _ := c.kubectl(ctx, nil, "-n", ns, "get", "events", "--sort-by=.lastTimestamp")
	return string(pods) + "\n" + string(events)
}

// kubectl runs the node's kubectl against the cluster as its administrator.
func (c *Cluster) kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.node.opts.Kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	return cmd.CombinedOutput()
}

// stop ends the node's processes (kubelet first, so that it restarts
// nothing), kills the pods' tasks, stops containerd, and undoes what the
// node did to the host.
func (n *node) stop() {
	if n == nil {
		return
	}
	n.prox.stop(10 * time.Second)
	n.kubelet.stop(10 * time.Second)
	n.scheduler.stop(10 * time.Second)
	n.cm.stop(10 * time.Second)
	if n.containerd != nil {
		if out, err := exec.Command(n.opts.Ctr, "-a", n.socket, "-n", "k8s.io", "tasks", "ls", "-q").Output(); err == nil {
			for _, id := range strings.Fields(string(out)) {
				_ = exec.Command(n.opts.Ctr, "-a", n.socket, "-n", "k8s.io", "tasks", "kill", "-a", "-s", "SIGKILL", id).Run()
			}
		}
	}
	n.containerd.stop(15 * time.Second)
}

func writeKubeconfigFile(path, server, caFile, user, token string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: paygate-test
    cluster:
      server: %s
      certificate-authority: %s
users:
  - name: %s
    user:
      token: %s
contexts:
  - name: paygate-test
    context:
      cluster: paygate-test
      user: %s
current-context: paygate-test
`, server, caFile, user, token, user)
	return os.WriteFile(path, []byte(cfg), 0o600)
}
