package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"skiff/internal/admission"
	"skiff/internal/apiserver"
	"skiff/internal/auth"
	"skiff/internal/auth/bootstrappolicy"
	"skiff/internal/auth/stack"
	"skiff/internal/config"
	"skiff/internal/controller"
	"skiff/internal/controller/manager"
	"skiff/internal/controller/rootcacert"
	"skiff/internal/controller/satoken"
	"skiff/internal/controller/serviceaccount"
	"skiff/internal/pki"
	"skiff/internal/registry"
)

// authSetup is the API's authentication and authorization when the server
// runs with --authorization-mode Node,RBAC: the internal/auth stack over
// one informer factory of the server's own (admin) client.
type authSetup struct {
	stack      *stack.Stack
	identities *componentIdentities
	factory    informers.SharedInformerFactory
	client     kubernetes.Interface
	caPEM      []byte
	// reconciled is closed once the default roles are in place: until
	// then nobody but system:masters may do anything, so the server is
	// not ready (upstream's rbac/bootstrap-roles post-start hook).
	reconciled chan struct{}
}

func (s *Server) authEnabled() bool {
	return s.cfg.AuthorizationMode == config.AuthorizationNodeRBAC || s.cfg.AuthorizationMode == "RBAC,Node"
}

// ensureServiceAccountKey loads the token signing key, creating it on a
// cluster's first server (joining servers get it with the bootstrap data).
func ensureServiceAccountKey(path string) (crypto.Signer, error) {
	if data, err := os.ReadFile(path); err == nil {
		return pki.ParseKeyPEM(data)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate service-account key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := pki.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write service-account key: %w", err)
	}
	return key, nil
}

// newAuth assembles the stack; nothing runs until start.
func (s *Server) newAuth(layout config.Layout, files *tlsFiles, rc *rest.Config) (*authSetup, error) {
	key, err := ensureServiceAccountKey(layout.ServiceAccountKeyFile())
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("auth: client: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	jwks := "https://" + net.JoinHostPort(s.advertiseIP().String(), strconv.Itoa(s.cfg.HTTPSPort)) + "/openid/v1/jwks"
	st, err := stack.New(stack.Config{
		Client: client, Informers: factory, ClientCA: files.ca.CertPool(),
		Issuer: "https://kubernetes.default.svc." + s.cfg.ClusterDomain, JWKSURI: jwks,
		APIAudiences: []string{"https://kubernetes.default.svc." + s.cfg.ClusterDomain, "https://kubernetes.default.svc"},
		SigningKey:   key, Logger: s.log.With("component", "auth"),
	})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &authSetup{stack: st, identities: newComponentIdentities(rc, files.ca), factory: factory, reconciled: make(chan struct{}), client: client, caPEM: files.ca.CertPEM}, nil
}

// apiConfig sets what the API server needs of the stack.
func (a *authSetup) apiConfig(cfg *apiserver.Config) {
	cfg.Auth = apiserver.NewAuthConfig(a.stack)
	cfg.PostStartHooks = map[string]<-chan struct{}{"rbac/bootstrap-roles": a.reconciled}
	cfg.Admission = func(g admission.Getter) []admission.Plugin {
		return []admission.Plugin{
			admission.ServiceAccount{Getter: g},
			admission.NodeRestriction{Restriction: a.stack.NodeRestriction},
			admission.RBACEscalation{Checker: a.stack.Escalation},
		}
	}
}

// registryOptions are the reviews' and tokens' authority.
func (a *authSetup) registryOptions(o *registry.Options) {
	o.Authority = authority{a.stack}
	o.Tokens = a.stack
}

// start runs the informers and reconciles the default roles until they are
// in place, then closes a.reconciled; done is closed when both have
// stopped.
func (a *authSetup) start(ctx context.Context, log *slog.Logger) (done <-chan struct{}) {
	a.factory.Start(ctx.Done())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer a.factory.Shutdown()
		err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
			if err := bootstrappolicy.Reconcile(ctx, a.client, log); err != nil {
				log.Warn("default roles not reconciled yet; retrying", "err", err)
				return false, nil
			}
			log.Info("default roles reconciled")
			return true, nil
		})
		if err == nil {
			close(a.reconciled)
		}
		<-ctx.Done()
	}()
	return stopped
}

// controllers are the leader's controllers that the stack needs: role
// aggregation, default service accounts, kube-root-ca.crt and legacy
// token secrets.
func (a *authSetup) controllers() []manager.Entry {
	return []manager.Entry{
		{Name: "clusterrole-aggregation", New: func(*controller.Context) (manager.Runner, error) { return a.stack.Aggregation, nil }},
		{Name: "serviceaccount", New: func(cctx *controller.Context) (manager.Runner, error) { return serviceaccount.New(cctx) }},
		{Name: "root-ca-cert-publisher", New: func(cctx *controller.Context) (manager.Runner, error) {
			return rootcacert.New(cctx, rootcacert.Config{CA: a.caPEM})
		}},
		{Name: "serviceaccount-token", New: func(cctx *controller.Context) (manager.Runner, error) {
			return satoken.New(cctx, satoken.Config{Signer: a.stack.Signer, RootCA: a.caPEM})
		}},
	}
}

// authority answers the review kinds from the stack.
type authority struct{ st *stack.Stack }

func (a authority) ReviewAccess(ctx context.Context, spec authorizationv1.SubjectAccessReviewSpec) authorizationv1.SubjectAccessReviewStatus {
	return auth.ReviewAccess(ctx, a.st.Authorizer, spec)
}

func (a authority) ReviewRules(ctx context.Context, u registry.User, namespace string) authorizationv1.SubjectRulesReviewStatus {
	return auth.ReviewRules(ctx, a.st.Authorizer, &auth.User{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}, namespace)
}

func (a authority) ReviewToken(ctx context.Context, spec authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus {
	return auth.ReviewToken(ctx, []auth.TokenAuthenticator{a.st.Tokens}, spec)
}

// componentIdentities are the in-process components' own credentials, so
// that RBAC limits what each may do and requests name who made them: the
// scheduler is system:kube-scheduler, the controller manager's informers and
// events are system:kube-controller-manager, and each controller acts as its
// kube-system service account (upstream's --use-service-account-credentials).
// The certificates live in memory and are issued anew at each start.
type componentIdentities struct {
	base *rest.Config
	ca   *pki.CA

	mu     sync.Mutex
	issued map[string]*rest.Config
}

func newComponentIdentities(base *rest.Config, ca *pki.CA) *componentIdentities {
	return &componentIdentities{base: base, ca: ca, issued: map[string]*rest.Config{}}
}

// config returns a client configuration for user in groups.
func (c *componentIdentities) config(user string, groups ...string) (*rest.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc, ok := c.issued[user]; ok {
		return rc, nil
	}
	certPEM, keyPEM, err := c.ca.IssueClientCert(user, groups)
	if err != nil {
		return nil, err
	}
	rc := rest.CopyConfig(c.base)
	rc.CertFile, rc.KeyFile = "", ""
	rc.CertData, rc.KeyData = certPEM, keyPEM
	c.issued[user] = rc
	return rc, nil
}

// manager is the controller manager's own identity.
func (c *componentIdentities) manager() (*rest.Config, error) {
	return c.config(auth.KubeControllerManager)
}

// controller is the identity of the manager entry named name; nil (the
// manager's identity) for a loop with no service account of its own.
func (c *componentIdentities) controller(name string) (*rest.Config, error) {
	if name == schedulerEntryName {
		return c.config(auth.KubeScheduler)
	}
	sa, ok := bootstrappolicy.ControllerServiceAccount(name)
	if !ok {
		return nil, nil
	}
	ns := bootstrappolicy.ControllerNamespace
	return c.config(auth.ServiceAccountUsernamePrefix+ns+":"+sa, auth.AllServiceAccountsGroup, auth.ServiceAccountGroupPrefix+ns)
}
