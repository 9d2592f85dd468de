package rbac

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	rbacinformers "k8s.io/client-go/informers/rbac/v1"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// AggregationController fills the rules of every ClusterRole with an
// aggregationRule with the rules of the ClusterRoles its selectors match,
// so admin, edit and view grow with the roles custom resources label for
// them.
type AggregationController struct {
	client kubernetes.Interface
	lister rbaclisters.ClusterRoleLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
}

// NewAggregationController watches ClusterRoles through informer and
// writes through client. Run starts it.
func NewAggregationController(client kubernetes.Interface, informer rbacinformers.ClusterRoleInformer, log *slog.Logger) (*AggregationController, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &AggregationController{
		client: client,
		lister: informer.Lister(),
		synced: informer.Informer().HasSynced,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "clusterrole-aggregation"}),
		log: log.With("controller", "clusterrole-aggregation"),
	}
	// Any change to any ClusterRole may change what an aggregated role
	// gathers, so every aggregated role is looked at again.
	_, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueAll() },
		UpdateFunc: func(any, any) { c.enqueueAll() },
		DeleteFunc: func(any) { c.enqueueAll() },
	})
	if err != nil {
		return nil, fmt.Errorf("clusterrole aggregation: %w", err)
	}
	return c, nil
}

func (c *AggregationController) enqueueAll() {
	roles, err := c.lister.List(labels.Everything())
	if err != nil {
		c.log.Error("list cluster roles", "err", err)
		return
	}
	for _, r := range roles {
		if r.AggregationRule != nil {
			c.queue.Add(r.Name)
		}
	}
}

// Run runs the controller until ctx is done and returns once its worker
// has stopped. It has the shape of the controller manager's Runner.
func (c *AggregationController) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	c.log.Info("starting")
	defer c.log.Info("stopped")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for c.next(ctx) {
		}
	})
	c.log.Info("ready")
	<-ctx.Done()
	c.log.Info("stopping")
	c.queue.ShutDown()
	wg.Wait()
}

func (c *AggregationController) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.sync(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key)
	case errors.Is(err, errPermanent):
		c.log.Error("cannot aggregate cluster role", "name", key, "err", err)
		c.queue.Forget(key)
	default:
		c.log.Info("aggregating cluster role failed; retrying", "name", key, "err", err)
		c.queue.AddRateLimited(key)
	}
	return true
}

var errPermanent = errors.New("permanent")

// AggregatedRules returns the rules an aggregated ClusterRole should hold:
// those of the ClusterRoles its selectors match (itself excepted), in
// order of name, each rule once.
func AggregatedRules(role *rbacv1.ClusterRole, lister rbaclisters.ClusterRoleLister) ([]rbacv1.PolicyRule, error) {
	var rules []rbacv1.PolicyRule
	for i := range role.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&role.AggregationRule.ClusterRoleSelectors[i])
		if err != nil {
			return nil, fmt.Errorf("%w: selector %d: %v", errPermanent, i, err)
		}
		matched, err := lister.List(sel)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(matched, func(a, b *rbacv1.ClusterRole) int { return strings.Compare(a.Name, b.Name) })
		for _, m := range matched {
			if m.Name == role.Name {
				continue
			}
			for _, r := range m.Rules {
				if !slices.ContainsFunc(rules, func(x rbacv1.PolicyRule) bool { return equality.Semantic.DeepEqual(x, r) }) {
					rules = append(rules, *r.DeepCopy())
				}
			}
		}
	}
	return rules, nil
}

// sync brings one aggregated ClusterRole's rules up to date.
func (c *AggregationController) sync(ctx context.Context, name string) error {
	role, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if role.AggregationRule == nil {
		return nil
	}
	rules, err := AggregatedRules(role, c.lister)
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(rules, role.Rules) {
		return nil
	}
	updated := role.DeepCopy()
	updated.Rules = rules
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = c.client.RbacV1().ClusterRoles().Update(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
