package image

// NonrootUID is the user paygate's image runs as: distroless "nonroot".
const NonrootUID = 65532

// CACertificates is the host's CA bundle (Debian's ca-certificates), the
// file distroless/static ships at the same path.
const CACertificates = "/etc/ssl/certs/ca-certificates.crt"

// Paygate is paygate's image with the Dockerfile's layout: the static binary
// at /paygate, run as 65532:65532 with `serve`, the CA bundle, the passwd and
// group entries, /tmp and the home directory of distroless/static's nonroot
// user, and no shell. bin must be a static (CGO_ENABLED=0) build.
// tools/kube/delivery keeps this and the Dockerfile equal.
func Paygate(ref, bin, version string) Spec {
	return Spec{
		Ref: ref,
		Files: []File{
			{Path: "/paygate", Source: bin, Mode: 0o755},
			{Path: CACertificates, Source: CACertificates, Mode: 0o644},
			{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
			{Path: "/etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
			{Path: "/etc/nsswitch.conf", Data: []byte("hosts: files dns\n")},
			{Path: "/tmp", Dir: true, Mode: 0o1777},
			{Path: "/home/nonroot", Dir: true, Mode: 0o700, UID: NonrootUID, GID: NonrootUID},
		},
		Config: Config{
			User:         "65532:65532",
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + CACertificates},
			Entrypoint:   []string{"/paygate"},
			Cmd:          []string{"serve"},
			WorkingDir:   "/",
			ExposedPorts: map[string]any{"8080/tcp": struct{}{}},
			Labels: map[string]string{
				"org.opencontainers.image.title":       "paygate",
				"org.opencontainers.image.description": "paygate payment gateway",
				"org.opencontainers.image.version":     version,
				"org.opencontainers.image.source":      "https://github.com/paygate/paygate",
			},
		},
	}
}
