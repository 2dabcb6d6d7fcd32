package delivery

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/paygate/paygate/tools/kube/image"
)

// dockerfileImage is what the Dockerfile's final stage says about the image
// it builds.
type dockerfileImage struct {
	binary     string // where the build stage's binary is copied
	user       string
	entrypoint []string
	cmd        []string
	ports      []string
	labels     map[string]string
}

func readDockerfileImage(t *testing.T, version string) dockerfileImage {
	t.Helper()
	stages := parseDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]
	var out dockerfileImage
	out.labels = map[string]string{}
	var goBuild string
	for _, n := range build.instructions("run") {
		if a := strings.Join(args(n), " "); strings.Contains(a, "go build") {
			goBuild = a
		}
	}
	m := goBuildRE.FindStringSubmatch(goBuild)
	if m == nil {
		t.Fatalf("no go build -o PATH ./cmd/paygate in the build stage")
	}
	for _, n := range final.instructions("copy") {
		if a := args(n); len(a) == 2 && a[0] == m[1] {
			out.binary = a[1]
		}
	}
	if u := final.instructions("user"); len(u) > 0 {
		out.user = args(u[len(u)-1])[0]
	}
	if e := final.instructions("entrypoint"); len(e) > 0 {
		out.entrypoint = args(e[len(e)-1])
	}
	if c := final.instructions("cmd"); len(c) > 0 {
		out.cmd = args(c[len(c)-1])
	}
	for _, n := range final.instructions("expose") {
		for _, p := range args(n) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			out.ports = append(out.ports, p)
		}
	}
	for _, n := range final.instructions("label") {
		// BuildKit's parser gives key, value and the "=" separator of each pair.
		a := args(n)
		for i := 0; i+1 < len(a); {
			out.labels[a[i]] = strings.ReplaceAll(strings.Trim(a[i+1], `"`), "${VERSION}", version)
			i += 2
			if i < len(a) && a[i] == "=" {
				i++
			}
		}
	}
	return out
}

// TestImageMatchesDockerfile keeps the image that `make image` builds
// without Docker (package image, Paygate) equal to the Dockerfile's: the
// same binary path, user, entrypoint, command, ports and labels, and the
// files that distroless/static:nonroot brings (CA bundle, the nonroot user,
// /tmp), with no shell.
func TestImageMatchesDockerfile(t *testing.T) {
	bin, stamp := buildPaygate(t)
	want := readDockerfileImage(t, stamp)
	dir, err := tempDir("paygate-image-")
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "paygate.tar")
	if _, err := image.WriteFile(archive, image.Paygate("paygate:"+stamp, bin, stamp), runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	cfg, files := readArchive(t, archive)

	var got struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]any
			Labels       map[string]string
		} `json:"config"`
	}
	if err := json.Unmarshal(cfg, &got); err != nil {
		t.Fatal(err)
	}
	if got.OS != "linux" || got.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", got.OS, got.Architecture, runtime.GOARCH)
	}
	if got.Config.User != want.user {
		t.Errorf("User %q, the Dockerfile says %q", got.Config.User, want.user)
	}
	if !reflect.DeepEqual(got.Config.Entrypoint, want.entrypoint) {
		t.Errorf("Entrypoint %q, the Dockerfile says %q", got.Config.Entrypoint, want.entrypoint)
	}
	if !reflect.DeepEqual(got.Config.Cmd, want.cmd) {
		t.Errorf("Cmd %q, the Dockerfile says %q", got.Config.Cmd, want.cmd)
	}
	var ports []string
	for p := range got.Config.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	sort.Strings(want.ports)
	if !reflect.DeepEqual(ports, want.ports) {
		t.Errorf("ExposedPorts %v, the Dockerfile says %v", ports, want.ports)
	}
	if !reflect.DeepEqual(got.Config.Labels, want.labels) {
		t.Errorf("Labels %v, the Dockerfile says %v", got.Config.Labels, want.labels)
	}

	binBytes, _ := os.ReadFile(bin)
	f, ok := files[strings.TrimPrefix(want.binary, "/")]
	switch {
	case !ok:
		t.Errorf("no %s in the image", want.binary)
	case !bytes.Equal(f.data, binBytes):
		t.Errorf("%s in the image is not the built binary", want.binary)
	case f.hdr.Mode&0o111 == 0:
		t.Errorf("%s is not executable (mode %o)", want.binary, f.hdr.Mode)
	}
	if ca, ok := files[strings.TrimPrefix(image.CACertificates, "/")]; !ok || !bytes.Contains(ca.data, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("no CA bundle at %s", image.CACertificates)
	}
	if pw, ok := files["etc/passwd"]; !ok || !strings.Contains(string(pw.data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user 65532")
	}
	if tmp, ok := files["tmp/"]; !ok || tmp.hdr.Mode&0o1777 != 0o1777 {
		t.Errorf("no world-writable sticky /tmp")
	}
	for name := range files {
		if base := filepath.Base(name); base == "sh" || base == "bash" || base == "busybox" {
			t.Errorf("the image has a shell: %s", name)
		}
	}
}

type archived struct {
	hdr  *tar.Header
	data []byte
}

// readArchive reads a docker-save archive: its config and its layers' files.
func readArchive(t *testing.T, path string) ([]byte, map[string]archived) {
	t.Helper()
	outer := map[string][]byte{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		outer[h.Name] = b
	}
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(outer["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v %s", err, outer["manifest.json"])
	}
	files := map[string]archived{}
	for _, l := range manifest[0].Layers {
		lr := tar.NewReader(bytes.NewReader(outer[l]))
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(lr)
			files[h.Name] = archived{hdr: h, data: b}
		}
	}
	return outer[manifest[0].Config], files
}
