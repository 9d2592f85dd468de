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
	stack   *stack.Stack
	factory informers.SharedInformerFactory
	client  kubernetes.Interface
	caPEM   []byte
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
	return &authSetup{stack: st, factory: factory, client: client, caPEM: files.ca.CertPEM}, nil
}

// apiConfig sets what the API server needs of the stack.
func (a *authSetup) apiConfig(cfg *apiserver.Config) {
	cfg.Auth = apiserver.NewAuthConfig(a.stack)
	cfg.Admission = []admission.Plugin{
		admission.NodeRestriction{Restriction: a.stack.NodeRestriction},
		admission.RBACEscalation{Checker: a.stack.Escalation},
	}
}

// registryOptions are the reviews' and tokens' authority.
func (a *authSetup) registryOptions(o *registry.Options) {
	o.Authority = authority{a.stack}
	o.Tokens = a.stack
}

// start runs the informers and keeps the default roles reconciled until
// they are in place; done is closed when both have stopped.
func (a *authSetup) start(ctx context.Context, log *slog.Logger) <-chan struct{} {
	a.factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer a.factory.Shutdown()
		_ = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
			if err := bootstrappolicy.Reconcile(ctx, a.client, log); err != nil {
				log.Warn("default roles not reconciled yet; retrying", "err", err)
				return false, nil
			}
			log.Info("default roles reconciled")
			return true, nil
		})
		<-ctx.Done()
	}()
	return done
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
