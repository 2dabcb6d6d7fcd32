// Package api holds paygate's HTTP API contract, api/openapi.yaml, and the
// Redoc bundle that renders it, embedded so that the binary serves both
// (internal/apidocs) and the tests validate against the very same bytes
// (internal/apptest).
package api

import "embed"

// OpenAPI is the OpenAPI 3.0.3 document of the API.
//
//go:embed openapi.yaml
var OpenAPI []byte

// redoc holds the committed README.txt and, once `make docs` copied it,
// the git-ignored redoc.standalone.js. Embedding the directory always
// matches, so a fresh clone builds before npm ever ran.
//
//go:embed redoc
var redoc embed.FS

// RedocBundle returns the Redoc standalone bundle, or nil when the binary
// was built without it (before `make docs`).
func RedocBundle() []byte {
	b, err := redoc.ReadFile("redoc/redoc.standalone.js")
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}
