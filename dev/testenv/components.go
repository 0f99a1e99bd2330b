package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

// ---- etcd ----------------------------------------------------------------

type etcdServer struct {
	*embed.Etcd
	clientURL string
	logLevel  zap.AtomicLevel
}

// Close stops etcd. Listener errors logged while it closes are expected, so
// logging is turned down first.
func (e *etcdServer) Close() {
	e.logLevel.SetLevel(zap.FatalLevel)
	e.Etcd.Close()
}

// startEtcd starts a single-member etcd on loopback. Ports of 0 are picked
// free; since etcd binds them itself, a lost race is retried with new ports.
func startEtcd(dir string, clientPort, peerPort int) (*etcdServer, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		cp, pp := clientPort, peerPort
		var err error
		if cp == 0 {
			if cp, err = freePort(); err != nil {
				return nil, err
			}
		}
		if pp == 0 {
			if pp, err = freePort(); err != nil {
				return nil, err
			}
		}
		cfg := embed.NewConfig()
		cfg.Name = "herald-testenv"
		cfg.Dir = dir
		cfg.UnsafeNoFsync = true
		level := zap.NewAtomicLevelAt(zap.ErrorLevel)
		logCfg := zap.NewProductionConfig()
		logCfg.Level = level
		logCfg.DisableStacktrace = true
		logCfg.Sampling = nil
		logCfg.OutputPaths = []string{"stderr"}
		logCfg.ErrorOutputPaths = []string{"stderr"}
		logger, err := logCfg.Build()
		if err != nil {
			return nil, err
		}
		cfg.Logger = "zap"
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger.Named("etcd"))
		clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(cp))}
		peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(pp))}
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
		cfg.ListenPeerUrls = []url.URL{peerURL}
		cfg.AdvertisePeerUrls = []url.URL{peerURL}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		if fileExists(filepath.Join(dir, "member")) {
			cfg.ClusterState = embed.ClusterStateFlagExisting
		}
		// The member's peer URL is stored in its data; a restart on a new peer
		// port is still fine for a single member.
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "address already in use") && (clientPort == 0 || peerPort == 0) {
				continue
			}
			return nil, err
		}
		select {
		case <-e.Server.ReadyNotify():
			return &etcdServer{Etcd: e, clientURL: clientURL.String(), logLevel: level}, nil
		case err := <-e.Err():
			e.Close()
			return nil, err
		case <-time.After(60 * time.Second):
			e.Server.Stop()
			e.Close()
			return nil, errors.New("etcd took more than 60s to start")
		}
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ---- kube-apiserver ------------------------------------------------------

// startAPIServer configures kube-apiserver from command-line style flags and
// runs it until ctx is cancelled. The returned channel receives Run's result.
func startAPIServer(ctx context.Context, args []string, listener net.Listener) (<-chan error, error) {
	s := apiserveroptions.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	s.SecureServing.Listener = listener
	s.SecureServing.BindPort = listener.Addr().(*net.TCPAddr).Port
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, utilerrors.NewAggregate(errs)
	}
	done := make(chan error, 1)
	go func() {
		done <- apiserverapp.Run(ctx, completed)
		close(done)
	}()
	return done, nil
}

// ---- kube-controller-manager --------------------------------------------

type controllerManager struct {
	opts *cmoptions.KubeControllerManagerOptions
}

func newControllerManager(args []string) (*controllerManager, error) {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	named := s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	s.ParsedFlags = &named
	return &controllerManager{opts: s}, nil
}

// start builds the controller manager's configuration (this reads the
// kubeconfig, so the API server must be up) and runs it until ctx is cancelled.
func (cm *controllerManager) start(ctx context.Context) (<-chan error, error) {
	if err := cm.opts.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	c, err := cm.opts.Config(ctx, cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		done <- cmapp.Run(ctx, c.Complete())
		close(done)
	}()
	return done, nil
}

// ---- kubeconfig and readiness -------------------------------------------

func writeKubeconfig(path, server, caFile, token string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["herald-testenv"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["herald-testenv"] = &clientcmdapi.Context{Cluster: "herald-testenv", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "herald-testenv"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func clientFor(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(cfg)
}

func waitAPIReady(ctx context.Context, kubeconfig string, apiDone <-chan error, etcd *etcdServer) error {
	client, err := clientFor(kubeconfig)
	if err != nil {
		return err
	}
	var last string
	for {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		if err != nil {
			last = err.Error()
		}
		select {
		case err := <-apiDone:
			return fmt.Errorf("kube-apiserver exited: %v", err)
		case err := <-etcd.Err():
			return fmt.Errorf("etcd failed: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last /readyz answer: %s)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitControllersReady waits until the service-account controller has made the
// "default" ServiceAccount, which shows the controllers are running.
func waitControllersReady(ctx context.Context, kubeconfig string, cmDone, apiDone <-chan error) error {
	client, err := clientFor(kubeconfig)
	if err != nil {
		return err
	}
	for {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) {
			klog.V(2).InfoS("waiting for the default ServiceAccount", "err", err)
		}
		select {
		case err := <-cmDone:
			return fmt.Errorf("kube-controller-manager exited: %v", err)
		case err := <-apiDone:
			return fmt.Errorf("kube-apiserver exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
