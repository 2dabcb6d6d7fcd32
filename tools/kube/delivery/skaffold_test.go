package delivery

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// skaffoldModule is the skaffold release whose published JSON schemas
// skaffold.yaml is validated against (docs-v2/content/en/schemas/ in its
// module zip, fetched through the Go module proxy like any module).
const skaffoldModule = "github.com/GoogleContainerTools/skaffold/v2@v2.16.1"

func skaffoldSchemaDir(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", skaffoldModule)
	cmd.Dir = filepath.Join(repoRoot(), "tools", "kube")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", skaffoldModule, err, out)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %s\n%s", skaffoldModule, err, m.Error, out)
	}
	return filepath.Join(m.Dir, "docs-v2", "content", "en", "schemas")
}

func TestSkaffoldSchema(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("skaffold.yaml: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(j)))
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(head.APIVersion, "skaffold/") || head.Kind != "Config" {
		t.Fatalf("skaffold.yaml: apiVersion %q kind %q", head.APIVersion, head.Kind)
	}
	schemaFile := filepath.Join(skaffoldSchemaDir(t), strings.TrimPrefix(head.APIVersion, "skaffold/")+".json")
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(schemaFile)
	if err != nil {
		t.Fatalf("compiling %s: %v", schemaFile, err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("skaffold.yaml does not validate against %s:\n%v", filepath.Base(schemaFile), err)
	}

	// What it points at exists, and its value templates name chart values.
	var cfg map[string]any
	if err := json.Unmarshal(j, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, a := range asSlice(get(cfg, "build", "artifacts")) {
		df := filepath.Join(repoRoot(), str(a, "context"), str(a, "docker", "dockerfile"))
		if _, err := os.Stat(df); err != nil {
			t.Errorf("artifact %s: %v", str(a, "image"), err)
		}
	}
	vals := chartValues(t, "")
	for _, r := range asSlice(get(cfg, "deploy", "helm", "releases")) {
		if _, err := os.Stat(filepath.Join(repoRoot(), str(r, "chartPath"), "Chart.yaml")); err != nil {
			t.Errorf("release %s: %v", str(r, "name"), err)
		}
		for _, f := range asSlice(get(r, "valuesFiles")) {
			if _, err := os.Stat(filepath.Join(repoRoot(), f.(string))); err != nil {
				t.Errorf("release %s: %v", str(r, "name"), err)
			}
		}
		for k := range strMap(get(r, "setValueTemplates")) {
			var path []any
			for _, p := range strings.Split(k, ".") {
				path = append(path, p)
			}
			if _, ok := get(vals, path...).(string); !ok {
				t.Errorf("setValueTemplates %s is not a string value of the chart", k)
			}
		}
	}
	// The port-forward targets the chart's Service.
	pf := get(cfg, "portForward", 0)
	svc := one(t, render(t, "-f", filepath.Join(repoRoot(), "k8s", "paygate", "values-dev.yaml")), "Service", "paygate")
	if str(pf, "resourceName") != svc.Name() || num(get(pf, "port")) != num(get(svc, "spec", "ports", 0, "port")) {
		t.Errorf("portForward %v does not match Service %s port %v", pf, svc.Name(), get(svc, "spec", "ports", 0, "port"))
	}
	// The newest schema of the skaffold release, not an older one.
	schemas, _ := filepath.Glob(filepath.Join(skaffoldSchemaDir(t), "v*.json"))
	newest := ""
	for _, f := range schemas {
		if v := strings.TrimSuffix(filepath.Base(f), ".json"); newest == "" || schemaNewer(v, newest) {
			newest = v
		}
	}
	if head.APIVersion != "skaffold/"+newest {
		t.Errorf("apiVersion %s, want the current schema skaffold/%s", head.APIVersion, newest)
	}
	// Pushing is decided per cluster: never switched off for all of them.
	if push := get(cfg, "build", "local", "push"); push != nil {
		t.Errorf("build.local.push: %v for every profile; a remote cluster then never gets the image", push)
	}
	var kind bool
	for _, p := range asSlice(get(cfg, "profiles")) {
		if str(p, "name") != "kind" {
			continue
		}
		kind = true
		var ctx, local bool
		for _, patch := range asSlice(get(p, "patches")) {
			switch str(patch, "path") {
			case "/deploy/kubeContext":
				ctx = str(patch, "value") == "kind-paygate"
			case "/build/local/push":
				local = str(patch, "op") == "add" && get(patch, "value") == false
			}
		}
		if !ctx || !local {
			t.Errorf("the kind profile must target kube context kind-paygate (%v) and keep the image local, push false (%v)", ctx, local)
		}
	}
	if !kind {
		t.Errorf("no kind profile")
	}
	fmt.Fprintf(os.Stderr, "skaffold.yaml validates against %s of %s\n", filepath.Base(schemaFile), skaffoldModule)
}

// schemaNewer reports whether skaffold schema version a (v4beta13, v3, ...)
// is newer than b: by major version, then GA over beta/alpha, then number.
func schemaNewer(a, b string) bool {
	parse := func(v string) (major, stage, n int) {
		v = strings.TrimPrefix(v, "v")
		i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
		if i < 0 {
			major, _ = strconv.Atoi(v)
			return major, 3, 0
		}
		major, _ = strconv.Atoi(v[:i])
		rest := v[i:]
		switch {
		case strings.HasPrefix(rest, "beta"):
			stage, rest = 2, strings.TrimPrefix(rest, "beta")
		case strings.HasPrefix(rest, "alpha"):
			stage, rest = 1, strings.TrimPrefix(rest, "alpha")
		}
		n, _ = strconv.Atoi(rest)
		return major, stage, n
	}
	am, as, an := parse(a)
	bm, bs, bn := parse(b)
	if am != bm {
		return am > bm
	}
	if as != bs {
		return as > bs
	}
	return an > bn
}
