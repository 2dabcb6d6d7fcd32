// Package buildinfo carries the version stamped into the binary at build time.
package buildinfo

// Version is the release of this binary. The build sets it with
// -ldflags "-X github.com/paygate/paygate/internal/platform/buildinfo.Version=...";
// a plain `go build` leaves it as "dev".
var Version = "dev"
