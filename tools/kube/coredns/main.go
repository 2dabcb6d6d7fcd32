// Command coredns is CoreDNS, built from its Go module with only the plugins
// that the test cluster's DNS needs (tools/kube/cluster runs it as a pod in
// kube-system, the way kubeadm does). A full CoreDNS build pulls in every
// cloud provider's SDK; this one takes a fraction of the time and answers
// cluster.local names the same way.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins of the Corefile in tools/kube/cluster, in the order the
	// full build's plugin.cfg runs them.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives are the plugins above in execution order (a subset of
// CoreDNS's plugin.cfg, in its order).
var directives = []string{
	"reload",
	"health",
	"ready",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"loop",
	"kubernetes",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
