// Command paygate-image packs a static paygate binary into paygate's
// container image without Docker, with the Dockerfile's layout (package
// image, Paygate), as a docker-save archive that `docker load` and
// `ctr images import` read. `make image` runs it when no Docker engine is
// there:
//
//	paygate-image -bin .local/bin/paygate-static -version v1.2.3 -ref paygate:v1.2.3 -o .local/image/paygate-v1.2.3.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/paygate/paygate/tools/kube/image"
)

func main() {
	bin := flag.String("bin", "", "static paygate `binary` (CGO_ENABLED=0)")
	version := flag.String("version", "dev", "version for the image's label")
	ref := flag.String("ref", "", "image `name:tag`")
	out := flag.String("o", "", "archive to write")
	arch := flag.String("arch", runtime.GOARCH, "image architecture")
	flag.Parse()
	if *bin == "" || *ref == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	id, err := image.WriteFile(*out, image.Paygate(*ref, *bin, *version), *arch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "paygate-image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s -> %s\n", *ref, id, *out)
}
