// pause is the sandbox ("pause") container of the local cluster's real node: it holds the pod's namespaces
// open, reaps orphaned children (it is PID 1 of the pod when namespaces are shared) and exits 0 on SIGINT or
// SIGTERM. Built from source because the node reaches no image registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
