// herald-coredns: CoreDNS with only the plugins the cluster's Corefile uses
// (dev/cluster/coredns/Corefile), built from CoreDNS's Go module into the cluster DNS image.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// The order in which the plugins handle a query (a subset of CoreDNS's plugin.cfg, same order).
var directives = []string{
	"reload", "health", "ready", "errors", "log", "cache", "loadbalance", "loop",
	"kubernetes", "forward",
}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
