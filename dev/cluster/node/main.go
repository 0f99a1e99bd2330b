// herald-node: the node components of the single-node cluster (dev/cluster), built
// from the same k8s.io/kubernetes module version as dev/testenv's control plane.
//
//	herald-node kubelet   [kubelet flags]
//	herald-node scheduler [kube-scheduler flags]
//	herald-node proxy     [kube-proxy flags]
//	herald-node version
//
// One binary so that the three share one link and one copy of Kubernetes on disk;
// each still runs as its own process.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/component-base/version"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: herald-node kubelet|scheduler|proxy|version [flags]")
		os.Exit(2)
	}
	var command *cobra.Command
	switch os.Args[1] {
	case "kubelet":
		command = kubeletapp.NewKubeletCommand(context.Background())
	case "scheduler":
		command = schedulerapp.NewSchedulerCommand()
	case "proxy":
		command = proxyapp.NewProxyCommand()
	case "version", "--version":
		fmt.Println(version.Get().GitVersion)
		return
	default:
		fmt.Fprintf(os.Stderr, "herald-node: unknown component %q (kubelet, scheduler, proxy, version)\n", os.Args[1])
		os.Exit(2)
	}
	command.SetArgs(os.Args[2:])
	os.Exit(cli.Run(command))
}
