// Command pause is the sandbox ("pause") container of the test cluster's
// pods: it holds the pod's namespaces open until it is told to stop, and
// reaps the zombies of the pod when it is PID 1 of a shared process
// namespace, like Kubernetes' own pause. tools/kube/cluster builds it
// statically into an image that containerd's CRI uses as sandbox_image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
