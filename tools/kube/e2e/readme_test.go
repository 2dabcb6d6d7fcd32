package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// readmeSteps are the steps of k8s/README.md's section "The test cluster",
// in its order, with the commands it shows for each; TestPaygateOnANode
// runs them in this order, and TestReadmeSteps keeps the README equal to
// this list. HOST_SERVICES stands for the --set flags of the database URL,
// the broker, the SMTP relay and the payment sandbox on the host.
var readmeSteps = []struct {
	name, proves string
	commands     []string
}{
	{"namespace", "the namespace, with its Pod Security labels", []string{
		"kubectl apply --server-side -k k8s/namespace",
	}},
	{"install", "the migration hook Job completes, then the pods become Ready with the sandbox's credentials, and its callbacks reach them", []string{
		"helm install paygate charts/paygate -n paygate -f tools/kube/e2e/testdata/values-node.yaml $HOST_SERVICES --set-string image.tag=v1 --wait --timeout 5m",
	}},
	{"helm test", "the chart's test pod reaches /readyz through the Service", []string{
		"helm test paygate -n paygate --timeout 3m",
	}},
	{"rolling upgrade", "a new image tag under 20 requests/s drops no request", []string{
		"helm upgrade paygate charts/paygate -n paygate -f tools/kube/e2e/testdata/values-node.yaml $HOST_SERVICES --set-string image.tag=v2 --wait --timeout 5m",
	}},
	{"drain", "a drain stops at the PodDisruptionBudget", []string{
		"kubectl drain paygate-node --pod-selector app.kubernetes.io/instance=paygate,app.kubernetes.io/component=server --ignore-daemonsets --delete-emptydir-data --timeout 40s",
		"kubectl uncordon paygate-node",
	}},
	{"killed pod", "a killed pod is replaced and becomes Ready", []string{
		"kubectl -n paygate delete pod POD --grace-period=0 --force --wait=false",
	}},
	{"database", "a pod whose database is unreachable turns unready, and Ready again after", []string{
		"iptables -I INPUT -s POD_IP -p tcp --dport PG_PORT -m comment --comment paygate-test-cluster -j REJECT --reject-with tcp-reset",
		"iptables -D INPUT -s POD_IP -p tcp --dport PG_PORT -m comment --comment paygate-test-cluster -j REJECT --reject-with tcp-reset",
	}},
	{"rollback", "helm rollback returns to the first image", []string{
		"helm rollback paygate 1 -n paygate --wait --timeout 5m",
	}},
	{"uninstall", "helm uninstall leaves nothing of the release", []string{
		"helm uninstall paygate -n paygate --wait --timeout 3m",
	}},
}

// readmeSection is the heading of the steps in k8s/README.md.
const readmeSection = "## The test cluster"

// TestReadmeSteps: the shell block of k8s/README.md's "The test cluster"
// lists exactly the commands of readmeSteps, in their order (comments and
// blank lines aside).
func TestReadmeSteps(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "k8s", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+readmeSection+"\n")
	if i < 0 {
		t.Fatalf("k8s/README.md has no section %q", readmeSection)
	}
	section := text[i+len(readmeSection)+2:]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	start := strings.Index(section, "```sh\n")
	if start < 0 {
		t.Fatalf("section %q has no ```sh block", readmeSection)
	}
	block := section[start+6:]
	block = block[:strings.Index(block, "```")]
	var got []string
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		if c := strings.Index(line, "#"); c >= 0 {
			line = strings.TrimSpace(line[:c])
		}
		if line != "" {
			got = append(got, strings.Join(strings.Fields(line), " "))
		}
	}
	var want []string
	for _, s := range readmeSteps {
		want = append(want, s.commands...)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("k8s/README.md %q lists\n  %s\nbut the test runs\n  %s", readmeSection, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
