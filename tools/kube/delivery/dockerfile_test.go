package delivery

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// stage is one FROM ... [AS name] section of the Dockerfile.
type stage struct {
	image, name string
	nodes       []*parser.Node
}

func (s stage) instructions(cmd string) []*parser.Node {
	var out []*parser.Node
	for _, n := range s.nodes {
		if strings.EqualFold(n.Value, cmd) {
			out = append(out, n)
		}
	}
	return out
}

func args(n *parser.Node) []string {
	var out []string
	for x := n.Next; x != nil; x = x.Next {
		out = append(out, x.Value)
	}
	return out
}

// parseDockerfile parses the repository's Dockerfile with BuildKit's own
// parser and groups the instructions by stage.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile warning: %s (line %d)", w.Short, w.Location.Start.Line)
	}
	var stages []stage
	for _, n := range res.AST.Children {
		if strings.EqualFold(n.Value, "from") {
			a := args(n)
			s := stage{image: a[0]}
			if len(a) == 3 && strings.EqualFold(a[1], "as") {
				s.name = a[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].nodes = append(stages[len(stages)-1].nodes, n)
		}
	}
	return stages
}

var (
	buildOnce              sync.Once
	paygateBin, buildStamp string
	buildOut               []byte
	buildErr               error
)

// goBuildRE finds the build command of the build stage.
var goBuildRE = regexp.MustCompile(`go build .*-o (\S+) \./cmd/paygate`)

// buildPaygate runs the Dockerfile's own `go build` command (from its RUN
// instruction, with the output path moved to a temp dir) once per run.
func buildPaygate(t *testing.T) (bin, version string) {
	t.Helper()
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: want a build stage and a runtime stage, got %d stages", len(stages))
	}
	var cmd, outPath string
	for _, n := range stages[0].instructions("run") {
		a := strings.Join(args(n), " ")
		if m := goBuildRE.FindStringSubmatch(a); m != nil {
			cmd, outPath = a, m[1]
		}
	}
	if cmd == "" {
		t.Fatalf("Dockerfile: the first stage has no RUN ... go build ... -o PATH ./cmd/paygate")
	}
	buildOnce.Do(func() {
		dir, err := tempDir("paygate-image-build-")
		if err != nil {
			buildErr = err
			return
		}
		paygateBin = filepath.Join(dir, "paygate")
		buildStamp = "v0.0.0-delivery-test+" + strings.Repeat("x", 4)
		c := exec.Command("sh", "-euc", strings.Replace(cmd, "-o "+outPath, "-o "+paygateBin, 1))
		c.Dir = repoRoot()
		c.Env = append(os.Environ(), "VERSION="+buildStamp, "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH)
		if !strings.Contains(os.Getenv("GOFLAGS"), "-p=") {
			c.Env = append(c.Env, "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -p=2"))
		}
		buildOut, buildErr = c.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("the Dockerfile's build command failed: %v\n%s", buildErr, buildOut)
	}
	return paygateBin, buildStamp
}

func TestDockerfileStages(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.image, "golang:") {
		t.Errorf("build stage FROM %s, want a golang image", build.image)
	}
	if build.name == "" {
		t.Errorf("the build stage has no name (FROM ... AS build)")
	}
	switch final.image {
	case "gcr.io/distroless/static-debian12:nonroot", "scratch":
	default:
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot or scratch", final.image)
	}

	// The build command: static, reproducible paths, version stamped.
	var goBuild string
	for _, n := range build.instructions("run") {
		if a := strings.Join(args(n), " "); strings.Contains(a, "go build") {
			goBuild = a
		}
	}
	for _, want := range []string{
		"CGO_ENABLED=0",
		"-trimpath",
		"-X github.com/paygate/paygate/internal/platform/buildinfo.Version=${VERSION}",
		"./cmd/paygate",
	} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("build command %q lacks %q", goBuild, want)
		}
	}
	var hasVersionArg bool
	for _, n := range build.instructions("arg") {
		if a := args(n); len(a) > 0 && strings.HasPrefix(a[0], "VERSION") {
			hasVersionArg = true
		}
	}
	if !hasVersionArg {
		t.Errorf("the build stage declares no ARG VERSION")
	}

	// The final stage copies the binary the build command writes, runs as
	// a non-root user and needs no shell.
	m := goBuildRE.FindStringSubmatch(goBuild)
	if m == nil {
		t.Fatalf("build command %q has no -o PATH ./cmd/paygate", goBuild)
	}
	var dest string
	for _, n := range final.instructions("copy") {
		a := args(n)
		if len(a) == 2 && a[0] == m[1] && strings.Contains(strings.Join(n.Flags, " "), "--from="+build.name) {
			dest = a[1]
		}
	}
	if dest == "" {
		t.Errorf("the final stage does not COPY --from=%s %s", build.name, m[1])
	}
	users := final.instructions("user")
	if len(users) == 0 {
		t.Errorf("the final stage sets no USER")
	} else {
		u := args(users[len(users)-1])[0]
		uid := strings.SplitN(u, ":", 2)[0]
		if uid == "0" || uid == "root" || uid == "" {
			t.Errorf("USER %s runs as root", u)
		}
	}
	if runs := final.instructions("run"); len(runs) > 0 {
		t.Errorf("the final stage has RUN instructions (it has no shell): %s", runs[0].Original)
	}
	for _, cmd := range []string{"entrypoint", "cmd"} {
		ns := final.instructions(cmd)
		if len(ns) == 0 {
			t.Errorf("the final stage has no %s", strings.ToUpper(cmd))
			continue
		}
		if !ns[len(ns)-1].Attributes["json"] {
			t.Errorf("%s must use the exec (JSON) form: there is no shell", ns[len(ns)-1].Original)
		}
	}
	if ep := final.instructions("entrypoint"); len(ep) > 0 && dest != "" {
		if a := args(ep[len(ep)-1]); len(a) == 0 || a[0] != dest {
			t.Errorf("ENTRYPOINT %v does not run the copied binary %s", a, dest)
		}
	}
}

func TestDockerImageBinary(t *testing.T) {
	bin, stamp := buildPaygate(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary has an ELF interpreter: it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links shared libraries %v", libs)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("paygate version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != stamp {
		t.Errorf("paygate version = %q, want the stamp %q", got, stamp)
	}
}

func TestDockerignore(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot(), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	// What the build needs must be in the context ...
	needed := []string{"go.mod", "go.sum", "cmd/paygate/main.go"}
	sqls, _ := filepath.Glob(filepath.Join(repoRoot(), "internal", "migrations", "*.sql"))
	if len(sqls) == 0 {
		t.Fatal("no migrations found")
	}
	for _, s := range sqls {
		rel, _ := filepath.Rel(repoRoot(), s)
		needed = append(needed, rel)
	}
	for _, p := range needed {
		if ok, _ := pm.MatchesOrParentMatches(p); ok {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
	// ... and local state, VCS data and other modules must not.
	for _, p := range []string{".git/config", ".local/bin/paygate", "tools/go.mod", "tools/kube/go.mod", "charts/paygate/Chart.yaml"} {
		if ok, _ := pm.MatchesOrParentMatches(p); !ok {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}
