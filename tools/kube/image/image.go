// Package image writes container images without a container engine: one
// layer made of files from the host, and an image config, packed as the
// archive that `docker save` writes (manifest.json, the config blob and the
// layer tar). `ctr images import` and `docker load` both read it.
//
// The test cluster (tools/kube/cluster) runs these images: its pause image,
// CoreDNS, the curl image of `helm test`, and paygate's image, whose layout
// is the Dockerfile's (Paygate).
package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// File is one entry of the image's single layer.
type File struct {
	// Path is the absolute path in the image ("/paygate"); parent
	// directories are added as root-owned 0755 directories.
	Path string
	// Source is a host file to copy; empty with Data set writes Data, and
	// both empty with Dir makes a directory.
	Source string
	Data   []byte
	Dir    bool
	// Mode is the permission bits (0 means 0644, 0755 for directories and
	// for copied executables).
	Mode int64
	// UID and GID own the entry.
	UID, GID int
}

// Config is the part of the OCI image config that says how to run it.
type Config struct {
	User         string            `json:"User,omitempty"`
	Env          []string          `json:"Env,omitempty"`
	Entrypoint   []string          `json:"Entrypoint,omitempty"`
	Cmd          []string          `json:"Cmd,omitempty"`
	WorkingDir   string            `json:"WorkingDir,omitempty"`
	ExposedPorts map[string]any    `json:"ExposedPorts,omitempty"`
	Labels       map[string]string `json:"Labels,omitempty"`
}

// Spec is one image: its name, its files and its config.
type Spec struct {
	// Ref is the name and tag the image is imported as ("paygate:v1").
	Ref    string
	Files  []File
	Config Config
}

// epoch is the timestamp of every entry and of the image, so that the same
// inputs give the same image digest.
var epoch = time.Unix(0, 0).UTC()

// Layer returns the layer tar of files, sorted by path with parent
// directories first.
func Layer(files []File) ([]byte, error) {
	entries := map[string]File{}
	for _, f := range files {
		p := path.Clean("/" + f.Path)
		if p == "/" {
			return nil, fmt.Errorf("image: file with empty path")
		}
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = File{Path: d, Dir: true, Mode: 0o755}
			}
		}
		f.Path = p
		entries[p] = f
	}
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := entries[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		data := f.Data
		switch {
		case f.Dir:
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", orMode(f.Mode, 0o755)
		case f.Source != "":
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, fmt.Errorf("image: %w", err)
			}
			fi, err := os.Stat(f.Source)
			if err != nil {
				return nil, fmt.Errorf("image: %w", err)
			}
			data = b
			def := int64(0o644)
			if fi.Mode()&0o111 != 0 {
				def = 0o755
			}
			hdr.Typeflag, hdr.Mode = tar.TypeReg, orMode(f.Mode, def)
		default:
			hdr.Typeflag, hdr.Mode = tar.TypeReg, orMode(f.Mode, 0o644)
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func orMode(m, def int64) int64 {
	if m == 0 {
		return def
	}
	return m
}

// ociConfig is the image config blob (OCI image spec, "application/vnd.oci.image.config.v1+json").
type ociConfig struct {
	Created      time.Time `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       Config    `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []map[string]any `json:"history"`
}

// Write writes s as a docker-save archive to w, for linux on arch (amd64,
// arm64), and returns the image ID (the digest of its config).
func Write(w io.Writer, s Spec, arch string) (string, error) {
	layer, err := Layer(s.Files)
	if err != nil {
		return "", err
	}
	layerSum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(layerSum[:])

	var cfg ociConfig
	cfg.Created, cfg.Architecture, cfg.OS, cfg.Config = epoch, arch, "linux", s.Config
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{"sha256:" + layerHex}
	cfg.History = []map[string]any{{"created": epoch, "created_by": "paygate tools/kube/image"}}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	cfgSum := sha256.Sum256(cfgJSON)
	cfgHex := hex.EncodeToString(cfgSum[:])

	manifest, err := json.Marshal([]map[string]any{{
		"Config":   cfgHex + ".json",
		"RepoTags": []string{s.Ref},
		"Layers":   []string{layerHex + "/layer.tar"},
	}})
	if err != nil {
		return "", err
	}

	tw := tar.NewWriter(w)
	for _, e := range []struct {
		name string
		data []byte
	}{
		{layerHex + "/layer.tar", layer},
		{cfgHex + ".json", cfgJSON},
		{"manifest.json", manifest},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return "", err
		}
		if _, err := tw.Write(e.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return "sha256:" + cfgHex, nil
}

// WriteFile writes s as a docker-save archive to the file at p.
func WriteFile(p string, s Spec, arch string) (string, error) {
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	id, err := Write(f, s, arch)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return id, err
}
