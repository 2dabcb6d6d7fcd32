package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/tools/kube/cluster"
	"github.com/paygate/paygate/tools/kube/image"
)

const (
	ns      = "paygate"
	release = "paygate"
	// imageRepo is where the test's paygate images are imported.
	imageRepo = "localhost/paygate"
	// curlImage is Debian's curl, packed as an image for `helm test`.
	curlImage = "localhost/paygate-test-curl"
	adminUser = "admin@paygate.test"
	// serverSelector selects the release's serving pods.
	serverSelector = "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=server"
)

// TestPaygateOnANode runs the steps of k8s/README.md ("Try it on the test
// cluster") in its order; each step needs the one before, so the first
// failure ends the test.
func TestPaygateOnANode(t *testing.T) {
	start := time.Now()
	c := startCluster(t)
	k := newKube(t, c)
	work, err := cluster.OwnedTempDir("paygate-e2e-work-")
	if err != nil {
		t.Fatal(err)
	}
	atExit(func() { _ = os.RemoveAll(work) })
	svc := startHostServices(t, work)
	buildImages(t, c, work, "v1", "v2")
	sb := startSandbox(t, work, filepath.Join(work, "paygate-v1"))

	adminPassword := randomHex(t, 16)
	jwtKey := []byte(randomHex(t, 16)) // 32 random bytes
	values := []string{
		"-f", filepath.Join(repoRoot(), "tools", "kube", "e2e", "testdata", "values-node.yaml"),
		"--set-string", "image.repository=" + imageRepo,
		"--set-string", "tests.image.repository=" + curlImage,
		"--set-string", "secrets.databaseUrl=" + svc.DatabaseURL,
		"--set-string", "secrets.jwtPrivateKey=" + base64.StdEncoding.EncodeToString(jwtKey),
		"--set-string", "secrets.bootstrapAdminPassword=" + adminPassword,
		"--set-string", "config.bootstrapAdminEmail=" + adminUser,
		"--set-string", "config.kafka.brokers[0]=" + svc.Broker,
		"--set-string", "config.smtp.host=" + cluster.HostIP,
		"--set", "config.smtp.port=" + strconv.Itoa(svc.SMTPPort),
		"--set-string", "provider.url=" + sb.URL,
		"--set-string", "provider.secretKey=" + sb.SecretKey,
		"--set-string", "provider.callbackToken=" + sb.CallbackToken,
	}

	run := map[string]func(t *testing.T){
		"namespace": func(t *testing.T) {
			k.must(t, "apply", "--server-side", "-k", filepath.Join(repoRoot(), "k8s", "namespace"))
		},
		"install": func(t *testing.T) {
			testInstall(t, k, values)
			testProviderWiring(t, k, sb)
		},
		"helm test": func(t *testing.T) {
			out, err := k.helm("test", release, "-n", ns, "--timeout", "3m")
			if err != nil {
				logs, _ := k.kubectl("-n", ns, "logs", release+"-test-readyz")
				t.Fatalf("helm test: %v\n%s\ntest pod's log:\n%s\n%s", err, out, logs, k.describe())
			}
			if !strings.Contains(string(out), "Phase:          Succeeded") {
				t.Fatalf("helm test passed without a succeeded test pod:\n%s", out)
			}
			t.Logf("helm test:\n%s", lastLines(out, 12))
		},
		"rolling upgrade": func(t *testing.T) { testRollingUpgrade(t, k, values, "v2") },
		"drain":           func(t *testing.T) { testDrain(t, k) },
		"killed pod":      func(t *testing.T) { testKilledPod(t, k) },
		"database":        func(t *testing.T) { testDatabaseReadiness(t, k, svc.PGPort) },
		"rollback":        func(t *testing.T) { testRollback(t, k) },
		"uninstall":       func(t *testing.T) { testUninstall(t, k) },
	}
	var steps []struct {
		name string
		fn   func(t *testing.T)
	}
	for _, s := range readmeSteps {
		fn, ok := run[s.name]
		if !ok {
			t.Fatalf("README step %q has no test", s.name)
		}
		steps = append(steps, struct {
			name string
			fn   func(t *testing.T)
		}{s.name + ": " + s.proves, fn})
		delete(run, s.name)
	}
	for name := range run {
		t.Fatalf("test step %q is not in readmeSteps (k8s/README.md)", name)
	}
	for _, s := range steps {
		stepStart := time.Now()
		ok := t.Run(s.name, s.fn)
		t.Logf("step %q: %s", s.name, time.Since(stepStart).Round(100*time.Millisecond))
		if !ok {
			t.Logf("cluster logs:\n%s", c.Logs(30))
			t.FailNow()
		}
	}
	t.Logf("all steps in %s", time.Since(start).Round(time.Second))

	// Stopping the cluster leaves nothing behind, so that the next run on
	// this machine starts clean.
	t.Run("clean-up leaves the host as it was", func(t *testing.T) {
		stopStart := time.Now()
		c.Stop()
		if left := cluster.HostLeftovers(c.Dir); len(left) > 0 {
			t.Errorf("the stopped cluster left on the host:\n  %s", strings.Join(left, "\n  "))
		}
		t.Logf("cluster stopped and cleaned up in %s", time.Since(stopStart).Round(100*time.Millisecond))
	})
}

// buildImages builds paygate with the Dockerfile's build command for each
// version, packs it with the Dockerfile's layout (image.Paygate) as
// imageRepo:version, packs Debian's curl for `helm test`, and imports them.
func buildImages(t *testing.T, c *cluster.Cluster, dir string, versions ...string) {
	t.Helper()
	for _, v := range versions {
		bin := filepath.Join(dir, "paygate-"+v)
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-s -w -X github.com/paygate/paygate/internal/platform/buildinfo.Version="+v,
			"-o", bin, "./cmd/paygate")
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building paygate %s: %v\n%s", v, err, out)
		}
		archive := filepath.Join(dir, "paygate-"+v+".tar")
		if _, err := image.WriteFile(archive, image.Paygate(imageRepo+":"+v, bin, v), runtime.GOARCH); err != nil {
			t.Fatal(err)
		}
		if err := c.ImportImage(archive); err != nil {
			t.Fatal(err)
		}
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl not found (Debian package curl): %v", err)
	}
	files := []image.File{{Path: "/usr/bin/curl", Source: curl, Mode: 0o755}}
	for _, lib := range sharedLibraries(t, curl) {
		files = append(files, image.File{Path: lib, Source: lib, Mode: 0o755})
	}
	files = append(files, image.File{Path: image.CACertificates, Source: image.CACertificates})
	archive := filepath.Join(dir, "curl.tar")
	spec := image.Spec{Ref: curlImage + ":debian", Files: files, Config: image.Config{User: "100:101", Entrypoint: []string{"/usr/bin/curl"}}}
	if _, err := image.WriteFile(archive, spec, runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(archive); err != nil {
		t.Fatal(err)
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// describe returns the namespace's pods, jobs and events for failure
// reports.
func (k *kube) describe() string {
	pods, _ := k.kubectl("-n", ns, "get", "pods,jobs,endpointslices", "-o", "wide")
	events, _ := k.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp")
	return string(pods) + "\n" + lastLines(events, 40)
}

// podInfo is what the tests read of a pod.
type podInfo struct {
	Name, IP, Image string
	Ready, Deleting bool
}

func (k *kube) pods(t *testing.T) []podInfo {
	t.Helper()
	ps, err := k.podList()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// podList lists the release's serving pods; it is safe in any goroutine.
func (k *kube) podList() ([]podInfo, error) {
	out, err := k.kubectl("-n", ns, "get", "pods", "-l", serverSelector, "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("get pods: %v\n%s", err, out)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec struct {
				Containers []struct {
					Image string `json:"image"`
				} `json:"containers"`
			} `json:"spec"`
			Status struct {
				PodIP      string `json:"podIP"`
				Conditions []struct {
					Type, Status string
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("pods: %v", err)
	}
	var ps []podInfo
	for _, it := range list.Items {
		p := podInfo{Name: it.Metadata.Name, IP: it.Status.PodIP, Deleting: it.Metadata.DeletionTimestamp != nil}
		if len(it.Spec.Containers) > 0 {
			p.Image = it.Spec.Containers[0].Image
		}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				p.Ready = true
			}
		}
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps, nil
}

// readyPods returns the Ready pods that are not being deleted.
func (k *kube) readyPods(t *testing.T) []podInfo {
	var out []podInfo
	for _, p := range k.pods(t) {
		if p.Ready && !p.Deleting {
			out = append(out, p)
		}
	}
	return out
}

// waitReady waits until want pods run image, are Ready and no other pod is
// left.
func (k *kube) waitReady(t *testing.T, want int, image string, timeout time.Duration) []podInfo {
	t.Helper()
	var ps []podInfo
	ok, detail := eventually(timeout, time.Second, func() (bool, string) {
		ps = k.pods(t)
		ready := 0
		for _, p := range ps {
			if p.Ready && !p.Deleting && (image == "" || p.Image == image) {
				ready++
			}
		}
		return ready == want && len(ps) == want, fmt.Sprintf("%+v", ps)
	})
	if !ok {
		t.Fatalf("want %d Ready pods of %s, got %s\n%s", want, image, detail, k.describe())
	}
	return ps
}

func testInstall(t *testing.T, k *kube, values []string) {
	args := append([]string{"install", release, filepath.Join(repoRoot(), "charts", "paygate"), "-n", ns,
		"--set-string", "image.tag=v1", "--wait", "--timeout", "5m"}, values...)
	out, err := k.helm(args...)
	if err != nil {
		t.Fatalf("helm install: %v\n%s\n%s", err, out, k.describe())
	}
	// The pre-install hook ran paygate migrate: the Job succeeded (Helm
	// waited for it) and was then deleted (hook-succeeded), and the schema
	// is there: the pods' /readyz answers 200 only with no pending migration.
	if jobs := k.must(t, "-n", ns, "get", "jobs", "-o", "name"); strings.TrimSpace(jobs) != "" {
		t.Errorf("the migration hook's Job is still there after it succeeded: %s", jobs)
	}
	events := k.must(t, "-n", ns, "get", "events", "--field-selector", "involvedObject.kind=Job", "-o", "jsonpath={range .items[*]}{.reason}{\" \"}{.involvedObject.name}{\"\\n\"}{end}")
	if !strings.Contains(events, "Completed "+release+"-migrate") {
		t.Errorf("no Completed event of Job %s-migrate:\n%s", release, events)
	}
	k.waitReady(t, 2, imageRepo+":v1", 2*time.Minute)
}

// testProviderWiring: the release talks to the sandbox with its
// credentials, and the sandbox's callbacks reach the release. The pods run
// with config.env prod, where paygate refuses to start without the
// provider's secret key and callback token: being Ready, they have both,
// from the chart's Secret through secretKeyRefs, and they are the
// sandbox's. The callbacks go to the release's Service from now on.
func testProviderWiring(t *testing.T, k *kube, sb *sandbox) {
	cm := "configmap/" + release
	if got := k.must(t, "-n", ns, "get", cm, "-o", "jsonpath={.data.PAYGATE_PROVIDER} {.data.PAYGATE_PROVIDER_URL}"); got != "sandbox "+sb.URL {
		t.Errorf("%s names provider %q, want \"sandbox %s\"", cm, got, sb.URL)
	}
	env := k.must(t, "-n", ns, "get", "deployment", release, "-o",
		`jsonpath={range .spec.template.spec.containers[0].env[*]}{.name}={.valueFrom.secretKeyRef.name}/{.valueFrom.secretKeyRef.key}{"\n"}{end}`)
	for name, want := range map[string]string{"PAYGATE_PROVIDER_SECRET_KEY": sb.SecretKey, "PAYGATE_PROVIDER_CALLBACK_TOKEN": sb.CallbackToken} {
		ref := release + "-secrets/" + name
		if !strings.Contains(env, name+"="+ref+"\n") {
			t.Errorf("the paygate container does not read %s from Secret key %s:\n%s", name, ref, env)
		}
		b64 := k.must(t, "-n", ns, "get", "secret", release+"-secrets", "-o", "jsonpath={.data."+name+"}")
		if got, err := base64.StdEncoding.DecodeString(b64); err != nil || string(got) != want {
			t.Errorf("Secret %s-secrets holds another %s than the sandbox's (%v)", release, name, err)
		}
	}
	base := k.serviceURL(t)
	sb.callbacks.setTarget(t, base)
	resp, err := http.Get(sb.callbacks.URL + "/readyz")
	if err != nil {
		t.Fatalf("the sandbox's callback address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /readyz at the sandbox's callback address: %s, want 200 from the release behind it", resp.Status)
	}
	t.Logf("provider: sandbox at %s; its callbacks reach %s", sb.URL, base)
}

// load sends GET /v1/auth/me at a steady rate through the Service's
// ClusterIP, each on a new connection (as from many clients), and counts
// the answers and the failures (transport errors and 5xx).
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       map[string]int
	stop       chan struct{}
	done       sync.WaitGroup
}

func startLoad(t *testing.T, url, token string, perSecond int) *load {
	l := &load{errs: map[string]int{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			l.done.Add(1)
			go func() {
				defer l.done.Done()
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						l.ok.Add(1)
						return
					}
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				l.failed.Add(1)
				l.mu.Lock()
				l.errs[err.Error()]++
				l.mu.Unlock()
			}()
		}
	}()
	return l
}

func (l *load) finish() {
	close(l.stop)
	l.done.Wait()
}

// serviceURL is the http address of the release's Service ClusterIP, which
// kube-proxy's rules on the host route to the pods.
func (k *kube) serviceURL(t *testing.T) string {
	ip := strings.TrimSpace(k.must(t, "-n", ns, "get", "service", release, "-o", "jsonpath={.spec.clusterIP}"))
	port := strings.TrimSpace(k.must(t, "-n", ns, "get", "service", release, "-o", "jsonpath={.spec.ports[0].port}"))
	return "http://" + ip + ":" + port
}

func login(t *testing.T, base, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": adminUser, "password": password})
	resp, err := http.Post(base+"/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s: %s", resp.Status, b)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login answer: %v: %s", err, b)
	}
	return tok.AccessToken
}

// drainTimeline records, for each pod that is deleted during an upgrade,
// when it was seen deleted and when it left the Service's ready endpoints:
// the measured basis of a rollout that drops nothing.
type drainTimeline struct {
	deleted, unready, gone map[string]time.Time
}

// pollUntil calls fn every interval, in a goroutine, until stop is closed;
// the function it returns waits for that goroutine to end.
func pollUntil(stop <-chan struct{}, every time.Duration, fn func()) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
			fn()
		}
	}()
	return func() { <-done }
}

// watchEndpoints polls pods and EndpointSlices until stop is closed; read
// the timeline after wait returns.
func (k *kube) watchEndpoints(stop <-chan struct{}) (tl *drainTimeline, wait func()) {
	tl = &drainTimeline{deleted: map[string]time.Time{}, unready: map[string]time.Time{}, gone: map[string]time.Time{}}
	wait = pollUntil(stop, 200*time.Millisecond, func() {
		out, err := k.kubectl("-n", ns, "get", "pods", "-l", serverSelector, "-o",
			`jsonpath={range .items[*]}{.status.podIP}{" "}{.metadata.deletionTimestamp}{"\n"}{end}`)
		if err != nil {
			return
		}
		now := time.Now()
		present := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 {
				present[f[0]] = true
			}
			if len(f) == 2 {
				if _, seen := tl.deleted[f[0]]; !seen {
					tl.deleted[f[0]] = now
				}
			}
		}
		for ip := range tl.deleted {
			if _, done := tl.gone[ip]; !done && !present[ip] {
				tl.gone[ip] = now
			}
		}
		eps, err := k.endpoints()
		if err != nil {
			return
		}
		ready := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(eps)), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[1] == "true" {
				ready[f[0]] = true
			}
		}
		for ip := range tl.deleted {
			if _, done := tl.unready[ip]; !done && !ready[ip] {
				tl.unready[ip] = now
			}
		}
	})
	return tl, wait
}

func testRollingUpgrade(t *testing.T, k *kube, values []string, tag string) {
	base := k.serviceURL(t)
	password := valueOf(values, "secrets.bootstrapAdminPassword")
	token := login(t, base, password)
	const rate = 20
	l := startLoad(t, base+"/v1/auth/me", token, rate)
	stop := make(chan struct{})
	tl, waitWatch := k.watchEndpoints(stop)
	time.Sleep(3 * time.Second) // steady traffic before the rollout
	start := time.Now()
	args := append([]string{"upgrade", release, filepath.Join(repoRoot(), "charts", "paygate"), "-n", ns,
		"--set-string", "image.tag=" + tag, "--wait", "--timeout", "5m"}, values...)
	out, err := k.helm(args...)
	rollout := time.Since(start)
	// The old pods finish terminating after --wait returns; keep the traffic
	// on until they are gone.
	k.waitReady(t, 2, imageRepo+":"+tag, 3*time.Minute)
	time.Sleep(3 * time.Second)
	l.finish()
	close(stop)
	waitWatch()
	if err != nil {
		t.Fatalf("helm upgrade: %v\n%s\n%s", err, out, k.describe())
	}
	ok, failed := l.ok.Load(), l.failed.Load()
	t.Logf("rolling upgrade to %s: helm upgrade --wait took %s; %d requests answered 200, %d failed (%v), at %d/s",
		tag, rollout.Round(100*time.Millisecond), ok, failed, l.errs, rate)
	for ip, del := range tl.deleted {
		un, gone := tl.unready[ip], tl.gone[ip]
		t.Logf("old pod %s, from its deletion (polled every 200ms): out of the Service's ready endpoints after %s, gone after %s",
			ip, un.Sub(del).Round(100*time.Millisecond), gone.Sub(del).Round(100*time.Millisecond))
	}
	if failed != 0 {
		t.Errorf("%d requests failed during the rolling upgrade: %v", failed, l.errs)
	}
	if min := int64(float64(rate) * rollout.Seconds() * 0.8); ok < min {
		t.Errorf("only %d requests answered during %s at %d/s (want at least %d): the load did not run", ok, rollout, rate, min)
	}
	if len(tl.deleted) < 2 {
		t.Errorf("saw %d old pods deleted, want 2: the rollout was not observed", len(tl.deleted))
	}
	// The preStop sleep keeps a deleted pod serving while it leaves the
	// endpoints; that only works when it leaves them within the sleep.
	for ip, del := range tl.deleted {
		un, okk := tl.unready[ip]
		if !okk {
			t.Errorf("old pod %s never left the Service's ready endpoints", ip)
			continue
		}
		if d := un.Sub(del); d > 5*time.Second {
			t.Errorf("old pod %s left the endpoints %s after deletion, longer than the preStop sleep (5s)", ip, d)
		}
		// It went on serving for the preStop sleep and the drain delay after
		// it left the endpoints: connections kube-proxy had already sent to
		// it were answered.
		if gone, okk := tl.gone[ip]; !okk || gone.Sub(un) < 5*time.Second {
			t.Errorf("old pod %s was gone %s after it left the endpoints (seen: %v), less than its preStop sleep (5s)", ip, gone.Sub(un), okk)
		}
	}
}

// endpoints lists the release Service's endpoints as "IP ready" lines.
func (k *kube) endpoints() ([]byte, error) {
	return k.kubectl("-n", ns, "get", "endpointslices", "-l", "kubernetes.io/service-name="+release, "-o",
		`jsonpath={range .items[*].endpoints[*]}{.addresses[0]}{" "}{.conditions.ready}{"\n"}{end}`)
}

// valueOf returns the value of a --set-string key=value in args.
func valueOf(args []string, key string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, key+"="); ok {
			return v
		}
	}
	return ""
}

func testDrain(t *testing.T, k *kube) {
	defer k.must(t, "uncordon", cluster.NodeName)
	stop := make(chan struct{})
	var minReady atomic.Int64
	minReady.Store(99)
	wait := pollUntil(stop, 300*time.Millisecond, func() {
		ps, err := k.podList()
		if err != nil {
			return
		}
		n := int64(0)
		for _, p := range ps {
			if p.Ready && !p.Deleting {
				n++
			}
		}
		if n < minReady.Load() {
			minReady.Store(n)
		}
	})
	out, err := k.kubectl("drain", cluster.NodeName, "--pod-selector", serverSelector,
		"--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "40s")
	close(stop)
	wait()
	if err == nil {
		t.Fatalf("kubectl drain evicted every paygate pod despite the PodDisruptionBudget:\n%s", out)
	}
	if !strings.Contains(string(out), "disruption budget") {
		t.Errorf("kubectl drain failed, but not because of the disruption budget:\n%s", out)
	}
	if minReady.Load() < 1 {
		t.Errorf("a moment with no Ready paygate pod during the drain")
	}
	t.Logf("drain stopped at the budget; fewest Ready pods during it: %d\n%s", minReady.Load(), lastLines(out, 4))
	k.must(t, "uncordon", cluster.NodeName)
	k.waitReady(t, 2, "", 3*time.Minute)
}

func testKilledPod(t *testing.T, k *kube) {
	before := k.waitReady(t, 2, "", time.Minute)
	victim := before[0].Name
	k.must(t, "-n", ns, "delete", "pod", victim, "--grace-period=0", "--force", "--wait=false")
	start := time.Now()
	after := k.waitReady(t, 2, "", 3*time.Minute)
	for _, p := range after {
		if p.Name == victim {
			t.Fatalf("pod %s is still there after it was killed", victim)
		}
	}
	t.Logf("killed %s; replaced and Ready again in %s", victim, time.Since(start).Round(100*time.Millisecond))
}

func testDatabaseReadiness(t *testing.T, k *kube, pgPort int) {
	ps := k.waitReady(t, 2, "", time.Minute)
	cut, other := ps[0], ps[1]
	// Reject this pod's packets to PostgreSQL (the comment lets the cluster's
	// clean-up remove the rule if the test dies).
	rule := []string{"INPUT", "-s", cut.IP, "-p", "tcp", "--dport", strconv.Itoa(pgPort),
		"-m", "comment", "--comment", "paygate-test-cluster", "-j", "REJECT", "--reject-with", "tcp-reset"}
	if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("iptables: %v: %s", err, out)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			_ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run()
		}
	}
	defer restore()
	start := time.Now()
	ok, detail := eventually(60*time.Second, 500*time.Millisecond, func() (bool, string) {
		for _, p := range k.pods(t) {
			if p.Name == cut.Name {
				return !p.Ready, fmt.Sprintf("%+v", p)
			}
		}
		return false, "pod gone"
	})
	if !ok {
		t.Fatalf("pod %s stayed Ready with its database unreachable: %s\n%s", cut.Name, detail, k.describe())
	}
	t.Logf("pod %s not Ready %s after its database became unreachable", cut.Name, time.Since(start).Round(100*time.Millisecond))
	ready := k.readyPods(t)
	if len(ready) != 1 || ready[0].Name != other.Name {
		t.Errorf("want only %s Ready, got %+v", other.Name, ready)
	}
	eps, err := k.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(eps), cut.IP+" true") {
		t.Errorf("the Service still sends traffic to %s:\n%s", cut.IP, eps)
	}
	restore()
	start = time.Now()
	k.waitReady(t, 2, "", 2*time.Minute)
	t.Logf("Ready again %s after the database came back", time.Since(start).Round(100*time.Millisecond))
}

func testRollback(t *testing.T, k *kube) {
	out, err := k.helm("rollback", release, "1", "-n", ns, "--wait", "--timeout", "5m")
	if err != nil {
		t.Fatalf("helm rollback: %v\n%s\n%s", err, out, k.describe())
	}
	k.waitReady(t, 2, imageRepo+":v1", 3*time.Minute)
	hist, err := k.helm("history", release, "-n", ns)
	if err != nil {
		t.Fatalf("helm history: %v\n%s", err, hist)
	}
	if !strings.Contains(string(hist), "Rollback to 1") {
		t.Errorf("helm history has no rollback:\n%s", hist)
	}
}

func testUninstall(t *testing.T, k *kube) {
	out, err := k.helm("uninstall", release, "-n", ns, "--wait", "--timeout", "3m")
	if err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	kinds := strings.Fields(k.must(t, "api-resources", "--verbs=list", "--namespaced", "-o", "name"))
	var keep []string
	for _, kind := range kinds {
		// Events outlive what they are about; v1 Endpoints are deprecated
		// (EndpointSlices are listed).
		if kind != "events" && kind != "events.events.k8s.io" && kind != "endpoints" {
			keep = append(keep, kind)
		}
	}
	var left string
	ok, _ := eventually(90*time.Second, time.Second, func() (bool, string) {
		out := k.must(t, "-n", ns, "get", strings.Join(keep, ","), "-o", "name")
		var rest []string
		for _, name := range strings.Fields(out) {
			if !strings.Contains(name, "/") {
				continue // not an object name (a warning)
			}
			switch name {
			case "configmap/kube-root-ca.crt", "serviceaccount/default":
				continue
			}
			rest = append(rest, name)
		}
		left = strings.Join(rest, "\n")
		return len(rest) == 0, left
	})
	if !ok {
		t.Errorf("helm uninstall left objects in namespace %s:\n%s", ns, left)
	}
}
