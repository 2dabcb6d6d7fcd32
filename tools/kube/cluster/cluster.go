// Package cluster runs a throwaway Kubernetes cluster for tests, in a
// temporary directory, on free ports. Without NodeOptions it is etcd and
// kube-apiserver on loopback: objects are stored and validated but never
// acted upon. With NodeOptions it is a real single-node cluster: containerd
// (Debian's), kube-controller-manager, kube-scheduler, a kubelet, kube-proxy
// in iptables mode, bridge CNI and CoreDNS, which run pods from images
// imported without a registry (package image).
//
// Both processes run in their own process groups and get SIGKILL when the
// process that started them dies (Linux parent-death signal), so a killed
// test run leaves nothing behind; Stop ends them gracefully.
package cluster

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options says which binaries to run and where.
type Options struct {
	// Etcd and APIServer are the paths of the etcd and kube-apiserver binaries.
	Etcd, APIServer string
	// Dir is the parent of the cluster's temporary directory ("" for the
	// system default).
	Dir string
	// StartTimeout bounds the wait for the cluster to be ready (default 3m,
	// 6m with Node).
	StartTimeout time.Duration
	// Node, when set, starts the node components too (see NodeOptions).
	Node *NodeOptions
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Dir holds the data, certificates, logs and the kubeconfig.
	Dir string
	// URL is the API server's https address on 127.0.0.1.
	URL string
	// Token authenticates as a member of system:masters.
	Token string
	// Kubeconfig is the path of a kubeconfig file for URL and Token.
	Kubeconfig string
	// CAFile verifies the API server's self-signed serving certificate.
	CAFile string

	etcd, apiserver *proc
	node            *node
	stopOnce        sync.Once
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Start starts etcd and kube-apiserver and waits until the API server is
// ready. On error everything it started is stopped again.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.StartTimeout == 0 {
		o.StartTimeout = 3 * time.Minute
		if o.Node != nil {
			o.StartTimeout = 6 * time.Minute
		}
	}
	bins := []string{o.Etcd, o.APIServer}
	if o.Node != nil {
		no := *o.Node
		if no.Containerd == "" {
			no.Containerd = "containerd"
		}
		if no.Ctr == "" {
			no.Ctr = "ctr"
		}
		if no.CNIBinDir == "" {
			no.CNIBinDir = "/usr/lib/cni"
		}
		for _, cmd := range []*string{&no.Containerd, &no.Ctr} {
			p, err := exec.LookPath(*cmd)
			if err != nil {
				return nil, fmt.Errorf("%s not found (Debian package containerd): %w", *cmd, err)
			}
			*cmd = p
		}
		o.Node = &no
		bins = append(bins, no.Kubelet, no.ControllerManager, no.Scheduler, no.Proxy, no.Kubectl, no.CoreDNS, no.Pause,
			filepath.Join(no.CNIBinDir, "bridge"), filepath.Join(no.CNIBinDir, "host-local"), filepath.Join(no.CNIBinDir, "loopback"))
	}
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("binary: %w", err)
		}
	}
	removeStale(o.Dir)
	dir, err := os.MkdirTemp(o.Dir, "paygate-kube-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir}
	register(c)
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if o.Node != nil {
		c.node = &node{opts: *o.Node}
		if c.node.host, err = claimHost(dir); err != nil {
			return c, err
		}
		if err := writeNodePKI(dir); err != nil {
			return c, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()

	ports, err := freePorts(3)
	if err != nil {
		return c, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c.etcd, err = start(dir, "etcd", o.Etcd,
		"--name=paygate-test",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=paygate-test="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return c, err
	}
	if err := waitHTTP(ctx, c.etcd, http.DefaultClient, etcdURL+"/health", nil); err != nil {
		return c, err
	}

	tokens, err := c.writeCredentials(o.Node != nil)
	if err != nil {
		return c, err
	}
	certDir := filepath.Join(dir, "certs")
	addr := "127.0.0.1"
	// Without a controller manager nothing would clean up after the
	// garbage collector's owners.
	extra := []string{"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--authorization-mode=RBAC", "--enable-garbage-collector=false"}
	if o.Node != nil {
		addr, extra = HostIP, nodeAPIServerArgs(dir)
	}
	c.URL = fmt.Sprintf("https://%s:%d", addr, ports[2])
	c.apiserver, err = start(dir, "kube-apiserver", o.APIServer, append([]string{
		"--etcd-servers=" + etcdURL,
		"--secure-port=" + strconv.Itoa(ports[2]),
		"--cert-dir=" + certDir,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--anonymous-auth=false",
		"--profiling=false",
		"--v=0",
	}, extra...)...)
	if err != nil {
		return c, err
	}
	// The serving certificate is written at start-up; until it exists the
	// server is not ready either.
	c.CAFile = filepath.Join(certDir, "apiserver.crt")
	if err := waitFile(ctx, c.apiserver, c.CAFile); err != nil {
		return c, err
	}
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(c.CAFile)
	if err != nil {
		return c, err
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return c, fmt.Errorf("no certificate in %s", c.CAFile)
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	if err := waitHTTP(ctx, c.apiserver, client, c.URL+"/readyz", map[string]string{"Authorization": "Bearer " + c.Token}); err != nil {
		return c, err
	}
	if err := c.writeKubeconfig(); err != nil {
		return c, err
	}
	if o.Node != nil {
		if err := c.startNode(ctx, *o.Node, tokens); err != nil {
			return c, fmt.Errorf("%w\n%s", err, c.Logs(25))
		}
	}
	return c, nil
}

// writeCredentials writes the service-account signing key pair and a
// static token file with one cluster administrator and, for a node
// cluster, one identity for each node component; it returns the
// components' tokens by name.
func (c *Cluster) writeCredentials(node bool) (map[string]string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, err
	}
	newToken := func() (string, error) {
		tok := make([]byte, 24)
		if _, err := rand.Read(tok); err != nil {
			return "", err
		}
		return hex.EncodeToString(tok), nil
	}
	if c.Token, err = newToken(); err != nil {
		return nil, err
	}
	lines := c.Token + `,paygate-admin,paygate-admin,"system:masters"` + "\n"
	tokens := map[string]string{}
	if node {
		for name, user := range componentUsers {
			if tokens[name], err = newToken(); err != nil {
				return nil, err
			}
			lines += tokens[name] + "," + user + "\n"
		}
	}
	return tokens, os.WriteFile(filepath.Join(c.Dir, "tokens.csv"), []byte(lines), 0o600)
}

func (c *Cluster) writeKubeconfig() error {
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return writeKubeconfigFile(c.Kubeconfig, c.URL, c.CAFile, "paygate-admin", c.Token)
}

// Stop ends kube-apiserver, then etcd, and removes the directory. It is
// safe to call more than once, and concurrently.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		c.node.stop()
		c.apiserver.stop(15 * time.Second)
		c.etcd.stop(10 * time.Second)
		if c.node != nil && c.node.host != nil {
			releaseHost(c.node.host)
		}
		if c.Dir != "" {
			unmountUnder(c.Dir)
			_ = os.RemoveAll(c.Dir)
		}
		unregister(c)
	})
}

// The clusters of this process, so that a signal handler can stop those
// still starting (StopAll).
var (
	liveMu sync.Mutex
	live   = map[*Cluster]bool{}
)

func register(c *Cluster) {
	liveMu.Lock()
	defer liveMu.Unlock()
	live[c] = true
}

func unregister(c *Cluster) {
	liveMu.Lock()
	defer liveMu.Unlock()
	delete(live, c)
}

// StopOnSignal stops every cluster, runs cleanUp and exits when the test
// process gets SIGINT, SIGTERM or SIGHUP (Ctrl-C, a CI timeout); a SIGKILL
// ends the servers too, through the parent-death signal.
func StopOnSignal(what string, cleanUp func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		cleanUp()
		StopAll()
		fmt.Fprintf(os.Stderr, "%s: %v, stopped the test cluster\n", what, s)
		os.Exit(130)
	}()
}

// StopAll stops every cluster this process started, including one that
// is still starting.
func StopAll() {
	liveMu.Lock()
	var cs []*Cluster
	for c := range live {
		cs = append(cs, c)
	}
	liveMu.Unlock()
	for _, c := range cs {
		c.Stop()
	}
}

// removeStale removes the directories of clusters whose process died
// without stopping them (their servers died with it: parent-death signal).
func removeStale(parent string) { removeStaleDirs(parent, "paygate-kube-") }

// removeStaleDirs removes the directories named prefix* in parent (the
// system default when empty) whose owner.pid names a process that is gone.
func removeStaleDirs(parent, prefix string) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, _ := filepath.Glob(filepath.Join(parent, prefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // its owner is alive
		}
		unmountUnder(d)
		_ = os.RemoveAll(d)
	}
}

// OwnedTempDir makes a temporary directory named prefix* that records this
// process as its owner, after removing those of earlier processes that
// died without removing theirs (a test run killed with SIGKILL).
func OwnedTempDir(prefix string) (string, error) {
	removeStaleDirs("", prefix)
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	return d, os.WriteFile(filepath.Join(d, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600)
}

// Logs returns the last lines of both servers' logs, for failure reports.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	procs := []*proc{c.etcd, c.apiserver}
	if n := c.node; n != nil {
		procs = append(procs, n.containerd, n.cm, n.scheduler, n.kubelet, n.prox)
	}
	for _, p := range procs {
		if p != nil {
			fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.name, p.log, tail(p.log, lines))
		}
	}
	return b.String()
}

func start(dir, name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	// Own process group (signals from a terminal's Ctrl-C reach the test
	// process, which stops us in order), and SIGKILL if the test process
	// dies without stopping us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); its log:\n%s", p.name, p.err, tail(p.log, 30))
	default:
		return nil
	}
}

func (p *proc) stop(grace time.Duration) {
	if p == nil || p.cmd.Process == nil {
		return
	}
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

func waitHTTP(ctx context.Context, p *proc, client *http.Client, url string, header map[string]string) error {
	var last string
	for {
		if err := p.exited(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %s; its log:\n%s", p.name, url, last, tail(p.log, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitFile(ctx context.Context, p *proc, path string) error {
	for {
		if err := p.exited(); err != nil {
			return err
		}
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s wrote no %s; its log:\n%s", p.name, path, tail(p.log, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ErrNotConfigured is returned by FromEnv when a binary path is missing.
var ErrNotConfigured = errors.New("cluster binaries not configured")

// FromEnv reads the binary paths from PAYGATE_ETCD and
// PAYGATE_KUBE_APISERVER (set by scripts/k8s-test.sh).
func FromEnv() (Options, error) {
	o := Options{Etcd: os.Getenv("PAYGATE_ETCD"), APIServer: os.Getenv("PAYGATE_KUBE_APISERVER")}
	if o.Etcd == "" || o.APIServer == "" {
		return o, fmt.Errorf("%w: set PAYGATE_ETCD and PAYGATE_KUBE_APISERVER, or run scripts/k8s-test.sh (make chart-test)", ErrNotConfigured)
	}
	return o, nil
}
