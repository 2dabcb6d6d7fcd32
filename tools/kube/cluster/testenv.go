package cluster

import (
	"os"
	"testing"
)

// ToolFromEnv returns the path of a tool that scripts/k8s-test.sh (make
// chart-test) built and passed in the environment variable name, and
// fails the test when it is not set: the tests never skip for a missing
// tool.
func ToolFromEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run scripts/k8s-test.sh (make chart-test), which builds the cluster tools", name)
	}
	return v
}
