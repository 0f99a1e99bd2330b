// herald-pause: the pod sandbox ("pause") process of the single-node cluster (dev/cluster).
//
// It holds a pod's namespaces open and does nothing else: it sleeps until SIGINT or
// SIGTERM (then exits 0) and, as PID 1 of a pod that shares its process namespace,
// reaps the zombies its orphaned children leave. Built statically (CGO_ENABLED=0), it is
// the only file of the image (dev/pause/Dockerfile, FROM scratch).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("herald-pause 1")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "herald-pause: warning: not PID 1")
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "herald-pause: shutting down, got signal %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
