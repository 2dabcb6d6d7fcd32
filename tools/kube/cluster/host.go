package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The node cluster's network. The bridge and the pod range are this
// machine's own; the host's address on the bridge is where the pods reach
// the external services (PostgreSQL, the Kafka broker, SMTP) and the API
// server.
const (
	// Bridge is the Linux bridge the pods are attached to (CNI bridge plugin).
	Bridge = "paygate0"
	// PodCIDR is the pods' address range (CNI host-local IPAM).
	PodCIDR = "10.244.0.0/24"
	// HostIP is the host's address on Bridge: the pods' gateway, the node's
	// InternalIP and the address of the services on the host.
	HostIP = "10.244.0.1"
	// ServiceCIDR is the range of ClusterIPs (kube-proxy, iptables mode).
	ServiceCIDR = "10.96.0.0/16"
	// DNSIP is the ClusterIP of CoreDNS' kube-dns Service.
	DNSIP = "10.96.0.10"
	// NodeName is the one node's name.
	NodeName = "paygate-node"
)

// hostState is what a node cluster changed on the host, written next to
// the lock so that the next run can undo it when this one was killed.
type hostState struct {
	Owner       int    `json:"owner"`
	Dir         string `json:"dir"`
	IPForward   string `json:"ip_forward"`
	BridgeNF    string `json:"bridge_nf_call_iptables"`
	MadeCNIDir  bool   `json:"made_var_lib_cni"`
	MadeRunCtrd bool   `json:"made_run_containerd"`
}

// statePath is where the live node cluster's hostState is kept; there is
// at most one per machine (the bridge and the pod range are fixed).
const statePath = "/run/paygate-kube-node.json"

const (
	ipForwardPath = "/proc/sys/net/ipv4/ip_forward"
	bridgeNFPath  = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	cniStateDir   = "/var/lib/cni"
	runContainerd = "/run/containerd"
	netnsDir      = "/run/netns"
)

// claimHost takes the machine for a node cluster in dir: it undoes what a
// killed earlier run left, refuses when another live process holds it,
// records the host's settings, and sets up the bridge, forwarding and the
// guard that keeps pod traffic on this machine.
func claimHost(dir string) (*hostState, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a node cluster needs root (containerd, the kubelet and kube-proxy change mounts, links and iptables)")
	}
	if b, err := os.ReadFile(statePath); err == nil {
		var old hostState
		if json.Unmarshal(b, &old) == nil && old.Owner > 0 && old.Owner != os.Getpid() && syscall.Kill(old.Owner, 0) == nil {
			return nil, fmt.Errorf("another node cluster (pid %d, %s) is running on this machine", old.Owner, old.Dir)
		}
		releaseHost(&old)
	}
	st := &hostState{Owner: os.Getpid(), Dir: dir}
	st.IPForward = readTrim(ipForwardPath)
	st.BridgeNF = readTrim(bridgeNFPath)
	_, err := os.Stat(cniStateDir)
	st.MadeCNIDir = os.IsNotExist(err)
	_, err = os.Stat(runContainerd)
	st.MadeRunCtrd = os.IsNotExist(err)
	b, _ := json.Marshal(st)
	if err := os.WriteFile(statePath, b, 0o600); err != nil {
		return nil, err
	}
	// Leftovers of a run that died before it wrote its state.
	sweepNetwork()

	steps := [][]string{
		{"ip", "link", "add", Bridge, "type", "bridge"},
		{"ip", "addr", "add", HostIP + "/24", "dev", Bridge},
		{"ip", "link", "set", Bridge, "up"},
		// ClusterIPs route onto the bridge: from the host, kube-proxy's
		// OUTPUT rules rewrite them to pod IPs; a ClusterIP without
		// endpoints stays on the bridge instead of leaving the machine.
		{"ip", "route", "add", ServiceCIDR, "dev", Bridge},
		// Pod traffic leaves only onto the bridge: nothing of the test
		// cluster reaches another host.
		{"iptables", "-I", "FORWARD", "-s", PodCIDR, "!", "-o", Bridge, "-m", "comment", "--comment", guardComment, "-j", "DROP"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return st, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	if err := os.WriteFile(ipForwardPath, []byte("1"), 0o644); err != nil {
		return st, err
	}
	if st.BridgeNF != "" {
		if err := os.WriteFile(bridgeNFPath, []byte("1"), 0o644); err != nil {
			return st, err
		}
	}
	return st, nil
}

const guardComment = "paygate-test-cluster"

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// releaseHost undoes everything a node cluster did to the host, whether it
// stopped cleanly or was killed: it kills the pods' processes, unmounts
// what containerd and the kubelet mounted, removes the network namespaces,
// the bridge, the iptables chains of the kubelet, kube-proxy and CNI, the
// pods' cgroups, and restores the sysctls. The processes of the cluster
// itself must be gone (they die with their parent: parent-death signal).
func releaseHost(st *hostState) {
	killShims(st.Dir)
	killCgroup("kubepods")
	unmountUnder(st.Dir)
	removeNetns()
	sweepNetwork()
	removeCgroup("kubepods")
	// Connection tracking entries of pods and Services (kube-proxy's NAT):
	// stale ones would send the next run's first packets astray.
	if _, err := exec.LookPath("conntrack"); err == nil {
		for _, f := range [][]string{{"-s", PodCIDR}, {"-d", PodCIDR}, {"-d", ServiceCIDR}} {
			_ = exec.Command("conntrack", append([]string{"-D"}, f...)...).Run()
		}
	}
	if st.IPForward != "" {
		_ = os.WriteFile(ipForwardPath, []byte(st.IPForward), 0o644)
	}
	if st.BridgeNF != "" {
		_ = os.WriteFile(bridgeNFPath, []byte(st.BridgeNF), 0o644)
	}
	if st.MadeCNIDir {
		_ = os.RemoveAll(cniStateDir)
	}
	if st.MadeRunCtrd {
		unmountUnder(runContainerd)
		_ = os.RemoveAll(runContainerd)
	}
	if st.Dir != "" {
		unmountUnder(st.Dir)
		_ = os.RemoveAll(st.Dir)
	}
	_ = os.Remove(statePath)
}

// killShims kills the containerd shims of the containerd whose socket is
// in dir (they outlive containerd by design).
func killShims(dir string) {
	if dir == "" {
		return
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, "containerd-shim") && strings.Contains(cmd, dir) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// cgroupRoots are the cgroup v1 hierarchies (and the unified one) on this
// machine.
func cgroupRoots() []string {
	var roots []string
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") {
				roots = append(roots, fields[4])
			}
		}
	}
	return roots
}

// killCgroup SIGKILLs every process in the cgroup name (and below) of
// every hierarchy: the containers of the pods.
func killCgroup(name string) {
	for i := 0; i < 3; i++ {
		found := false
		for _, root := range cgroupRoots() {
			_ = filepath.Walk(filepath.Join(root, name), func(p string, info os.FileInfo, err error) error {
				if err != nil || info.IsDir() || info.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, _ := strconv.Atoi(f); pid > 0 {
						found = true
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				return nil
			})
		}
		if !found {
			return
		}
		waitBriefly()
	}
}

// removeCgroup removes the (empty) cgroup name and its children in every
// hierarchy, deepest first.
func removeCgroup(name string) {
	for _, root := range cgroupRoots() {
		var dirs []string
		_ = filepath.Walk(filepath.Join(root, name), func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			_ = syscall.Rmdir(d)
		}
	}
}

// unmountUnder unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) {
	if dir == "" {
		return
	}
	dir = filepath.Clean(dir)
	for i := 0; i < 3; i++ {
		var points []string
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			return
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) > 4 {
				mp := unescapeMount(fields[4])
				if mp == dir || strings.HasPrefix(mp, dir+"/") {
					points = append(points, mp)
				}
			}
		}
		f.Close()
		if len(points) == 0 {
			return
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		for _, p := range points {
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// removeNetns unmounts and removes the pods' network namespaces, which
// containerd's CRI names cni-<uuid>.
func removeNetns() {
	ns, _ := filepath.Glob(filepath.Join(netnsDir, "cni-*"))
	for _, n := range ns {
		_ = syscall.Unmount(n, syscall.MNT_DETACH)
		_ = os.Remove(n)
	}
}

// sweepNetwork removes the bridge (its veths go with the namespaces), the
// iptables chains and rules of the kubelet (KUBE-*), kube-proxy (KUBE-*) and
// the CNI plugins (CNI-*), and the forwarding guard.
func sweepNetwork() {
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		_ = exec.Command("ip", "link", "del", Bridge).Run()
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			sweepTable(bin, table)
		}
	}
}

func ours(chain string) bool {
	return strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-")
}

// sweepTable deletes, in one iptables table, every rule that jumps to one
// of the cluster's chains or carries the guard's comment, then flushes and
// deletes those chains.
func sweepTable(bin, table string) {
	out, err := exec.Command(bin+"-save", "-t", table).Output()
	if err != nil {
		return
	}
	var chains []string
	var rules [][]string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			if name := strings.Fields(line[1:]); len(name) > 0 && ours(name[0]) {
				chains = append(chains, name[0])
			}
		case strings.HasPrefix(line, "-A "):
			args := splitRule(line)
			if len(args) < 2 || ours(args[1]) {
				continue // goes with its chain
			}
			for i, a := range args {
				if (a == "-j" || a == "-g") && i+1 < len(args) && ours(args[i+1]) || a == guardComment {
					rules = append(rules, args)
					break
				}
			}
		}
	}
	for _, r := range rules {
		_ = exec.Command(bin, append([]string{"-t", table, "-D"}, r[1:]...)...).Run()
	}
	for _, c := range chains {
		_ = exec.Command(bin, "-t", table, "-F", c).Run()
	}
	for _, c := range chains {
		_ = exec.Command(bin, "-t", table, "-X", c).Run()
	}
}

// splitRule splits an iptables-save rule into arguments, honouring the
// double quotes around comments.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && inQuote && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQuote, have = !inQuote, true
		case ch == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

func waitBriefly() { time.Sleep(300 * time.Millisecond) }

// HostLeftovers lists what a node cluster that ran in dir left on the host:
// the bridge, iptables chains or rules of the kubelet, kube-proxy and CNI,
// the guard, pod network namespaces, pod cgroups, mounts under dir,
// containerd shims, and the state file. After Stop it must be empty, or the
// next run on the same machine breaks.
func HostLeftovers(dir string) []string {
	var left []string
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		left = append(left, "link "+Bridge)
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			out, err := exec.Command(bin+"-save", "-t", table).Output()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, ":") && ours(strings.Fields(line[1:])[0]) || strings.Contains(line, guardComment) {
					left = append(left, bin+" "+table+" "+line)
				}
			}
		}
	}
	if ns, _ := filepath.Glob(filepath.Join(netnsDir, "cni-*")); len(ns) > 0 {
		left = append(left, ns...)
	}
	for _, root := range cgroupRoots() {
		if _, err := os.Stat(filepath.Join(root, "kubepods")); err == nil {
			left = append(left, filepath.Join(root, "kubepods"))
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && dir != "" {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(unescapeMount(f[4]), dir) {
				left = append(left, "mount "+f[4])
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && dir != "" {
			cmd := strings.ReplaceAll(string(b), "\x00", " ")
			if strings.Contains(cmd, "containerd-shim") && strings.Contains(cmd, dir) {
				left = append(left, "process "+cmd)
			}
		}
	}
	if _, err := os.Stat(statePath); err == nil {
		left = append(left, statePath)
	}
	if _, err := os.Stat(dir); err == nil && dir != "" {
		left = append(left, "directory "+dir)
	}
	return left
}
