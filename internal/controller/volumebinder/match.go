package volumebinder

import (
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// This file holds the binder's decisions as pure functions over built
// objects: which volume suits a claim, and the small predicates they use.

// ClaimClass is the StorageClass a claim asks for: spec.storageClassName,
// or the beta annotation that preceded it; "" asks for a volume without a
// class.
func ClaimClass(c *corev1.PersistentVolumeClaim) string {
	if c.Spec.StorageClassName != nil {
		return *c.Spec.StorageClassName
	}
	return c.Annotations[corev1.BetaStorageClassAnnotation]
}

// VolumeClass is the StorageClass of a volume, read the same way.
func VolumeClass(v *corev1.PersistentVolume) string {
	if v.Spec.StorageClassName != "" {
		return v.Spec.StorageClassName
	}
	return v.Annotations[corev1.BetaStorageClassAnnotation]
}

// claimRefersTo reports whether ref names claim: same namespace and name,
// and the same uid unless ref has none yet (a volume pre-bound by name).
func claimRefersTo(ref *corev1.ObjectReference, claim *corev1.PersistentVolumeClaim) bool {
	if ref == nil || ref.Namespace != claim.Namespace || ref.Name != claim.Name {
		return false
	}
	return ref.UID == "" || ref.UID == claim.UID
}

// volumeMode is m with the API's default (Filesystem) for nil.
func volumeMode(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

// hasAccessModes reports whether the volume offers every mode the claim asks for.
func hasAccessModes(volume, claim []corev1.PersistentVolumeAccessMode) bool {
	offered := make(map[corev1.PersistentVolumeAccessMode]bool, len(volume))
	for _, m := range volume {
		offered[m] = true
	}
	for _, m := range claim {
		if !offered[m] {
			return false
		}
	}
	return true
}

// sameAttributesClass reports whether claim and volume name the same
// VolumeAttributesClass (unset counts as "").
func sameAttributesClass(claim, volume *string) bool {
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	return deref(claim) == deref(volume)
}

// nodeMatches reports whether node satisfies the volume's required node
// affinity; a volume without one is reachable from every node.
func nodeMatches(v *corev1.PersistentVolume, node *corev1.Node) (bool, error) {
	if v.Spec.NodeAffinity == nil || v.Spec.NodeAffinity.Required == nil {
		return true, nil
	}
	// The terms are ORed; an empty list selects no node.
	for _, term := range v.Spec.NodeAffinity.Required.NodeSelectorTerms {
		ok, err := termMatches(term, node)
		if err != nil {
			return false, fmt.Errorf("volume %s: node affinity: %w", v.Name, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// termMatches ANDs the term's label expressions and field expressions (the
// only field is metadata.name). A term with neither selects nothing.
func termMatches(term corev1.NodeSelectorTerm, node *corev1.Node) (bool, error) {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false, nil
	}
	for _, r := range term.MatchExpressions {
		v, has := node.Labels[r.Key]
		ok, err := requirementMatches(r, v, has)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, r := range term.MatchFields {
		if r.Key != metav1.ObjectNameField {
			return false, fmt.Errorf("unsupported field selector key %q", r.Key)
		}
		ok, err := requirementMatches(r, node.Name, true)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// requirementMatches evaluates one requirement against a value (has: the
// label is present).
func requirementMatches(r corev1.NodeSelectorRequirement, value string, has bool) (bool, error) {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return has && slices.Contains(r.Values, value), nil
	case corev1.NodeSelectorOpNotIn:
		return !has || !slices.Contains(r.Values, value), nil
	case corev1.NodeSelectorOpExists:
		return has, nil
	case corev1.NodeSelectorOpDoesNotExist:
		return !has, nil
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if len(r.Values) != 1 {
			return false, fmt.Errorf("operator %s on %q needs exactly one value", r.Operator, r.Key)
		}
		want, err := strconv.ParseInt(r.Values[0], 10, 64)
		if err != nil {
			return false, fmt.Errorf("operator %s on %q needs an integer: %w", r.Operator, r.Key, err)
		}
		got, err := strconv.ParseInt(value, 10, 64)
		if !has || err != nil {
			return false, nil
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return got > want, nil
		}
		return got < want, nil
	}
	return false, fmt.Errorf("unknown node selector operator %q", r.Operator)
}

// matchQuery is what findBestMatch needs besides the claim and volumes.
type matchQuery struct {
	// node, when set, is the node the claim's pod goes to: volumes whose
	// node affinity excludes it do not match.
	node *corev1.Node
	// preBoundOnly restricts the match to volumes pre-bound to the claim
	// (a WaitForFirstConsumer claim whose consumer has no node yet).
	preBoundOnly bool
}

// findBestMatch returns the volume to bind claim to, or nil if none suits:
//
//   - a volume pre-bound to the claim (spec.claimRef naming it) wins when it
//     is large enough, has the claim's volume mode and (with q.node) is
//     reachable from the node; like Kubernetes, an administrator's
//     pre-binding overrides class, selector and access modes;
//   - otherwise the smallest Available, unclaimed volume, not being deleted,
//     that has the claim's class, volume mode and attributes class, every
//     requested access mode, labels matching the claim's selector,
//     capacity ≥ the request and (with q.node) reaches the node.
//
// Ties are broken by name so the choice is stable.
func findBestMatch(claim *corev1.PersistentVolumeClaim, volumes []*corev1.PersistentVolume, q matchQuery) (*corev1.PersistentVolume, error) {
	request := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	class := ClaimClass(claim)
	mode := volumeMode(claim.Spec.VolumeMode)
	var selector labels.Selector
	if claim.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(claim.Spec.Selector)
		if err != nil {
			return nil, fmt.Errorf("claim %s/%s: selector: %w", claim.Namespace, claim.Name, err)
		}
		selector = s
	}
	var best *corev1.PersistentVolume
	for _, v := range volumes {
		size, ok := v.Spec.Capacity[corev1.ResourceStorage]
		if !ok || size.Cmp(request) < 0 || volumeMode(v.Spec.VolumeMode) != mode {
			continue
		}
		if !sameAttributesClass(claim.Spec.VolumeAttributesClassName, v.Spec.VolumeAttributesClassName) {
			continue
		}
		reachable := true
		if q.node != nil {
			ok, err := nodeMatches(v, q.node)
			if err != nil {
				return nil, err
			}
			reachable = ok
		}
		if claimRefersTo(v.Spec.ClaimRef, claim) {
			if reachable {
				return v, nil
			}
			continue
		}
		switch {
		case q.preBoundOnly, !reachable,
			v.Spec.ClaimRef != nil,
			v.DeletionTimestamp != nil,
			// A volume not yet Available is about to become so; taking it
			// now would only race with its own sync.
			v.Status.Phase != corev1.VolumeAvailable,
			VolumeClass(v) != class,
			!hasAccessModes(v.Spec.AccessModes, claim.Spec.AccessModes),
			selector != nil && !selector.Matches(labels.Set(v.Labels)):
			continue
		}
		if best == nil {
			best = v
			continue
		}
		bestSize := best.Spec.Capacity[corev1.ResourceStorage]
		if c := size.Cmp(bestSize); c < 0 || c == 0 && v.Name < best.Name {
			best = v
		}
	}
	return best, nil
}

// volumeSatisfiesClaim checks a volume the claim names in spec.volumeName:
// the claim's class, volume mode and attributes class, and enough capacity.
// The error says what does not fit.
func volumeSatisfiesClaim(v *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) error {
	request := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	size := v.Spec.Capacity[corev1.ResourceStorage]
	switch {
	case size.Cmp(request) < 0:
		return fmt.Errorf("requested %s but the volume has %s", request.String(), size.String())
	case VolumeClass(v) != ClaimClass(claim):
		return fmt.Errorf("storage class %q does not match the claim's %q", VolumeClass(v), ClaimClass(claim))
	case volumeMode(v.Spec.VolumeMode) != volumeMode(claim.Spec.VolumeMode):
		return fmt.Errorf("volume mode %s does not match the claim's %s", volumeMode(v.Spec.VolumeMode), volumeMode(claim.Spec.VolumeMode))
	case !sameAttributesClass(claim.Spec.VolumeAttributesClassName, v.Spec.VolumeAttributesClassName):
		return fmt.Errorf("volume attributes class does not match the claim's")
	}
	return nil
}
