// Command herald-testenv runs a real Kubernetes control plane for tests in one
// process: an embedded etcd, kube-apiserver and, with --controllers,
// kube-controller-manager. It needs no container runtime, no kubelet and no
// downloaded binaries; everything is built from Go modules.
//
// When the API server answers /readyz (and, with --controllers, the controller
// manager has created the "default" ServiceAccount), it prints one JSON line on
// stdout, starting with {"status":"ready", and keeps running until SIGTERM or
// SIGINT (or EOF on stdin with --exit-on-stdin-close).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	goflag "flag"

	"github.com/spf13/pflag"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
)

type options struct {
	dataDir         string
	kubeconfig      string
	port            int
	bindAddress     string
	etcdPort        int
	etcdPeerPort    int
	token           string
	controllers     bool
	controllerList  string
	apiserverArgs   []string
	cmArgs          []string
	verbosity       int
	readyTimeout    time.Duration
	keepData        bool
	exitOnStdin     bool
	shutdownTimeout time.Duration
	printVersion    bool
}

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("herald-testenv", pflag.ContinueOnError)
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for etcd data, certificates and tokens (default: a new temporary directory, removed on exit)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig (default: <data-dir>/kubeconfig)")
	fs.IntVar(&o.port, "port", 0, "kube-apiserver secure port on 127.0.0.1 (0: a free port)")
	fs.StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "address kube-apiserver listens on (0.0.0.0: also reachable from pods of a real node; the kubeconfig still uses 127.0.0.1)")
	fs.IntVar(&o.etcdPort, "etcd-port", 0, "etcd client port on 127.0.0.1 (0: a free port)")
	fs.IntVar(&o.etcdPeerPort, "etcd-peer-port", 0, "etcd peer port on 127.0.0.1 (0: a free port)")
	fs.StringVar(&o.token, "token", "", "admin bearer token, in group system:masters (default: reuse <data-dir>/token or make a random one)")
	fs.BoolVar(&o.controllers, "controllers", false, "also run kube-controller-manager in this process")
	fs.StringVar(&o.controllerList, "controller-list", "*", "value of kube-controller-manager --controllers")
	fs.StringArrayVar(&o.apiserverArgs, "apiserver-arg", nil, "extra kube-apiserver flag, e.g. --apiserver-arg=--feature-gates=Foo=true (repeatable)")
	fs.StringArrayVar(&o.cmArgs, "controller-manager-arg", nil, "extra kube-controller-manager flag (repeatable)")
	fs.IntVarP(&o.verbosity, "v", "v", 0, "log verbosity of the Kubernetes components (logs go to stderr)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 2*time.Minute, "give up if the control plane is not ready by then")
	fs.BoolVar(&o.keepData, "keep-data", false, "keep a temporary --data-dir on exit")
	fs.BoolVar(&o.exitOnStdin, "exit-on-stdin-close", false, "shut down when stdin reaches EOF (ties the lifetime to a parent process holding a pipe)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "exit anyway if a clean shutdown takes longer")
	fs.BoolVar(&o.printVersion, "version", false, "print the Kubernetes version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

// readyInfo is the single JSON line printed on stdout once everything is up.
type readyInfo struct {
	Status      string `json:"status"`
	Kubeconfig  string `json:"kubeconfig"`
	Server      string `json:"server"`
	Token       string `json:"token"`
	CAFile      string `json:"ca_file"`
	DataDir     string `json:"data_dir"`
	Etcd        string `json:"etcd"`
	Version     string `json:"version"`
	Controllers bool   `json:"controllers"`
	PID         int    `json:"pid"`
	StartupSecs string `json:"startup_seconds"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		klog.Flush()
		fmt.Fprintf(os.Stderr, "herald-testenv: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	start := time.Now()
	o, err := parseOptions(args)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.printVersion {
		fmt.Println(version.Get().GitVersion)
		return nil
	}

	klogFlags := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", strconv.Itoa(o.verbosity))
	defer klog.Flush()

	// Data dir, certificates, tokens.
	tempData := false
	if o.dataDir == "" {
		if o.dataDir, err = os.MkdirTemp("", "herald-testenv-"); err != nil {
			return err
		}
		tempData = true
	} else if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return err
	}
	if o.dataDir, err = filepath.Abs(o.dataDir); err != nil {
		return err
	}
	if tempData && !o.keepData {
		defer os.RemoveAll(o.dataDir)
	}
	if o.kubeconfig == "" {
		o.kubeconfig = filepath.Join(o.dataDir, "kubeconfig")
	}
	if o.kubeconfig, err = filepath.Abs(o.kubeconfig); err != nil {
		return err
	}
	pki := newPKIFiles(filepath.Join(o.dataDir, "pki"))
	if err := pki.ensure(); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	token, err := ensureToken(o.dataDir, o.token)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(o.dataDir, "tokens.csv")
	// token,user,uid,"group1,group2"
	if err := os.WriteFile(tokenFile, []byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := stopSignals(cancel, o.exitOnStdin)

	// etcd.
	etcd, err := startEtcd(filepath.Join(o.dataDir, "etcd"), o.etcdPort, o.etcdPeerPort)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()

	// The controller manager's options must be created before the API server's
	// flags: building the API server flag set closes the shared feature gate.
	var cm *controllerManager
	if o.controllers {
		cmArgs := append([]string{
			"--kubeconfig=" + o.kubeconfig,
			"--leader-elect=false",
			"--secure-port=0",
			"--controllers=" + o.controllerList,
			"--service-account-private-key-file=" + pki.SAKey,
			"--root-ca-file=" + pki.CACert,
			"--cluster-signing-cert-file=" + pki.CACert,
			"--cluster-signing-key-file=" + pki.CAKey,
			"--use-service-account-credentials=false",
			"--cluster-name=herald-testenv",
		}, o.cmArgs...)
		if cm, err = newControllerManager(cmArgs); err != nil {
			return fmt.Errorf("kube-controller-manager: %w", err)
		}
	}

	// kube-apiserver.
	listener, err := net.Listen("tcp", net.JoinHostPort(o.bindAddress, strconv.Itoa(o.port)))
	if err != nil {
		return fmt.Errorf("kube-apiserver listener: %w", err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	apiArgs := append([]string{
		"--advertise-address=127.0.0.1",
		"--bind-address=" + o.bindAddress,
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + pki.Dir,
		"--tls-cert-file=" + pki.ServingCert,
		"--tls-private-key-file=" + pki.ServingKey,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.SAPub,
		"--service-account-signing-key-file=" + pki.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--etcd-servers=" + etcd.clientURL,
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}, o.apiserverArgs...)
	// Pods need no service account token, unless the caller chooses the admission
	// plugins itself (a real node runs pods that use their tokens).
	if !hasFlag(o.apiserverArgs, "--disable-admission-plugins") {
		apiArgs = append(apiArgs, "--disable-admission-plugins=ServiceAccount")
	}
	apiDone, err := startAPIServer(ctx, apiArgs, listener)
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}

	server := "https://127.0.0.1:" + strconv.Itoa(port)
	if err := writeKubeconfig(o.kubeconfig, server, pki.CACert, token); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}

	failed := func(err error) error {
		cancel()
		waitDone(apiDone, o.shutdownTimeout)
		return err
	}
	readyCtx, readyCancel := context.WithTimeout(ctx, o.readyTimeout)
	defer readyCancel()
	if err := waitAPIReady(readyCtx, o.kubeconfig, apiDone, etcd); err != nil {
		return failed(fmt.Errorf("kube-apiserver did not become ready: %w", err))
	}

	var cmDone <-chan error
	if cm != nil {
		if cmDone, err = cm.start(ctx); err != nil {
			return failed(fmt.Errorf("kube-controller-manager: %w", err))
		}
		if err := waitControllersReady(readyCtx, o.kubeconfig, cmDone, apiDone); err != nil {
			return failed(fmt.Errorf("kube-controller-manager did not become ready: %w", err))
		}
	}

	info := readyInfo{
		Status:      "ready",
		Kubeconfig:  o.kubeconfig,
		Server:      server,
		Token:       token,
		CAFile:      pki.CACert,
		DataDir:     o.dataDir,
		Etcd:        etcd.clientURL,
		Version:     version.Get().GitVersion,
		Controllers: cm != nil,
		PID:         os.Getpid(),
		StartupSecs: fmt.Sprintf("%.2f", time.Since(start).Seconds()),
	}
	line, _ := json.Marshal(info)
	fmt.Fprintln(os.Stdout, string(line))
	_ = os.Stdout.Sync()

	// Run until told to stop or until a component fails.
	var runErr error
	select {
	case <-ctx.Done():
		klog.InfoS("herald-testenv: shutting down", "reason", stop())
	case err := <-apiDone:
		runErr = fmt.Errorf("kube-apiserver exited: %v", err)
	case err := <-cmDone:
		runErr = fmt.Errorf("kube-controller-manager exited: %v", err)
	case err := <-etcd.Err():
		runErr = fmt.Errorf("etcd failed: %v", err)
	}
	cancel()
	if !waitDone(apiDone, o.shutdownTimeout) {
		klog.Warning("herald-testenv: kube-apiserver did not stop in time")
	}
	if cmDone != nil {
		waitDone(cmDone, 5*time.Second)
	}
	return runErr
}

// hasFlag reports whether args set the flag name (as "name=value" or "name value").
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// waitDone waits for a component's done channel; false on timeout.
func waitDone(done <-chan error, timeout time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stopSignals cancels the context on SIGTERM/SIGINT (a second signal exits at
// once) and optionally on EOF on stdin. The returned func tells why.
func stopSignals(cancel context.CancelFunc, watchStdin bool) func() string {
	reason := make(chan string, 2)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		reason <- s.String()
		cancel()
		<-sigs
		os.Exit(1)
	}()
	if watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			reason <- "stdin closed"
			cancel()
		}()
	}
	return func() string {
		select {
		case r := <-reason:
			return r
		default:
			return "stopped"
		}
	}
}

func ensureToken(dataDir, token string) (string, error) {
	path := filepath.Join(dataDir, "token")
	if token == "" {
		if data, err := os.ReadFile(path); err == nil {
			token = strings.TrimSpace(string(data))
		}
	}
	if token == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		token = hex.EncodeToString(b)
	}
	if strings.ContainsAny(token, ",\"\n ") {
		return "", errors.New("--token must not contain commas, quotes or whitespace")
	}
	return token, os.WriteFile(path, []byte(token+"\n"), 0o600)
}
