package volumebinder

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Builders.

type pvOpt func(*corev1.PersistentVolume)

func makePV(name, size string, opts ...pvOpt) *corev1.PersistentVolume {
	v := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			VolumeMode:  new(corev1.PersistentVolumeFilesystem),
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/srv/" + name},
			},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable},
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

func pvClass(c string) pvOpt { return func(v *corev1.PersistentVolume) { v.Spec.StorageClassName = c } }
func pvModes(m ...corev1.PersistentVolumeAccessMode) pvOpt {
	return func(v *corev1.PersistentVolume) { v.Spec.AccessModes = m }
}
func pvLabels(l map[string]string) pvOpt { return func(v *corev1.PersistentVolume) { v.Labels = l } }
func pvPhase(p corev1.PersistentVolumePhase) pvOpt {
	return func(v *corev1.PersistentVolume) { v.Status.Phase = p }
}
func pvBlock(v *corev1.PersistentVolume) { v.Spec.VolumeMode = new(corev1.PersistentVolumeBlock) }
func pvClaimRef(ns, name string, uid types.UID) pvOpt {
	return func(v *corev1.PersistentVolume) {
		v.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: name, UID: uid}
	}
}
func pvOnHost(host string) pvOpt {
	return func(v *corev1.PersistentVolume) {
		v.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{host}}},
		}}}}
	}
}
func pvDeleting(v *corev1.PersistentVolume) { v.DeletionTimestamp = &metav1.Time{} }

type pvcOpt func(*corev1.PersistentVolumeClaim)

func makePVC(name, size string, opts ...pvcOpt) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			VolumeMode:  new(corev1.PersistentVolumeFilesystem),
		},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func pvcClass(class string) pvcOpt {
	return func(c *corev1.PersistentVolumeClaim) { c.Spec.StorageClassName = &class }
}
func pvcModes(m ...corev1.PersistentVolumeAccessMode) pvcOpt {
	return func(c *corev1.PersistentVolumeClaim) { c.Spec.AccessModes = m }
}
func pvcSelector(l map[string]string) pvcOpt {
	return func(c *corev1.PersistentVolumeClaim) { c.Spec.Selector = &metav1.LabelSelector{MatchLabels: l} }
}
func pvcBlock(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeMode = new(corev1.PersistentVolumeBlock) }

func makeNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}
}

func TestFindBestMatch(t *testing.T) {
	rwo, rox, rwx := corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany
	tests := []struct {
		name    string
		claim   *corev1.PersistentVolumeClaim
		volumes []*corev1.PersistentVolume
		query   matchQuery
		want    string // "" for no match
	}{
		{
			name:    "smallest fitting volume wins",
			claim:   makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{makePV("big", "10Gi"), makePV("small", "500Mi"), makePV("fit", "2Gi"), makePV("exact", "1Gi")},
			want:    "exact",
		},
		{
			name:    "larger volume when nothing smaller fits",
			claim:   makePVC("c", "3Gi"),
			volumes: []*corev1.PersistentVolume{makePV("a", "10Gi"), makePV("b", "5Gi"), makePV("c", "2Gi")},
			want:    "b",
		},
		{
			name:    "equal sizes break ties by name",
			claim:   makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{makePV("zeta", "1Gi"), makePV("alpha", "1Gi")},
			want:    "alpha",
		},
		{
			name:    "quantities compare by value, not text",
			claim:   makePVC("c", "1000M"),
			volumes: []*corev1.PersistentVolume{makePV("gi", "1Gi"), makePV("g", "1G")},
			want:    "g",
		},
		{
			name:    "too small",
			claim:   makePVC("c", "5Gi"),
			volumes: []*corev1.PersistentVolume{makePV("a", "4Gi")},
		},
		{
			name:  "access modes must be a superset",
			claim: makePVC("c", "1Gi", pvcModes(rwo, rox)),
			volumes: []*corev1.PersistentVolume{
				makePV("rwo", "1Gi"),
				makePV("rwx", "1Gi", pvModes(rwx)),
				makePV("all", "5Gi", pvModes(rwo, rox, rwx)),
			},
			want: "all",
		},
		{
			name:    "no volume has the access mode",
			claim:   makePVC("c", "1Gi", pvcModes(rwx)),
			volumes: []*corev1.PersistentVolume{makePV("rwo", "1Gi"), makePV("rox", "1Gi", pvModes(rox))},
		},
		{
			name:  "class must match",
			claim: makePVC("c", "1Gi", pvcClass("fast")),
			volumes: []*corev1.PersistentVolume{
				makePV("none", "1Gi"),
				makePV("slow", "1Gi", pvClass("slow")),
				makePV("fast", "2Gi", pvClass("fast")),
			},
			want: "fast",
		},
		{
			name:    "a claim without a class takes only volumes without one",
			claim:   makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{makePV("fast", "1Gi", pvClass("fast")), makePV("none", "2Gi")},
			want:    "none",
		},
		{
			name: "class from the beta annotation",
			claim: makePVC("c", "1Gi", func(c *corev1.PersistentVolumeClaim) {
				c.Annotations = map[string]string{corev1.BetaStorageClassAnnotation: "fast"}
			}),
			volumes: []*corev1.PersistentVolume{
				makePV("none", "1Gi"),
				makePV("fast", "1Gi", func(v *corev1.PersistentVolume) {
					v.Annotations = map[string]string{corev1.BetaStorageClassAnnotation: "fast"}
				}),
			},
			want: "fast",
		},
		{
			name:  "selector filters by labels",
			claim: makePVC("c", "1Gi", pvcSelector(map[string]string{"tier": "gold"})),
			volumes: []*corev1.PersistentVolume{
				makePV("unlabelled", "1Gi"),
				makePV("silver", "1Gi", pvLabels(map[string]string{"tier": "silver"})),
				makePV("gold", "3Gi", pvLabels(map[string]string{"tier": "gold", "zone": "a"})),
			},
			want: "gold",
		},
		{
			name:    "volume mode must match",
			claim:   makePVC("c", "1Gi", pvcBlock),
			volumes: []*corev1.PersistentVolume{makePV("fs", "1Gi"), makePV("block", "2Gi", pvBlock)},
			want:    "block",
		},
		{
			name:  "bound, pending, released and deleting volumes are skipped",
			claim: makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{
				makePV("bound", "1Gi", pvClaimRef("ns", "other", "uid-other"), pvPhase(corev1.VolumeBound)),
				makePV("prebound-other", "1Gi", pvClaimRef("ns", "other", "")),
				makePV("pending", "1Gi", pvPhase(corev1.VolumePending)),
				makePV("released", "1Gi", pvPhase(corev1.VolumeReleased)),
				makePV("deleting", "1Gi", pvDeleting),
				makePV("free", "9Gi"),
			},
			want: "free",
		},
		{
			name:  "a volume pre-bound to the claim wins over a smaller one",
			claim: makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{
				makePV("small", "1Gi"),
				makePV("mine", "5Gi", pvClaimRef("ns", "c", ""), pvPhase(corev1.VolumePending), pvClass("other")),
			},
			want: "mine",
		},
		{
			name:    "a volume pre-bound to an older claim of the same name is not ours",
			claim:   makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{makePV("old", "1Gi", pvClaimRef("ns", "c", "uid-gone"))},
		},
		{
			name:    "a pre-bound volume still has to be large enough",
			claim:   makePVC("c", "2Gi"),
			volumes: []*corev1.PersistentVolume{makePV("mine", "1Gi", pvClaimRef("ns", "c", ""))},
		},
		{
			name:    "waiting for a consumer: only pre-bound volumes",
			claim:   makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{makePV("free", "1Gi"), makePV("mine", "1Gi", pvClaimRef("ns", "c", "uid-c"))},
			query:   matchQuery{preBoundOnly: true},
			want:    "mine",
		},
		{
			name:    "waiting for a consumer, nothing pre-bound",
			claim:   makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{makePV("free", "1Gi")},
			query:   matchQuery{preBoundOnly: true},
		},
		{
			name:  "with a selected node, only volumes reachable from it",
			claim: makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{
				makePV("on-a", "1Gi", pvOnHost("a")),
				makePV("on-b", "2Gi", pvOnHost("b")),
				makePV("anywhere", "3Gi"),
			},
			query: matchQuery{node: makeNode("b")},
			want:  "on-b",
		},
		{
			name:    "with a selected node, a pre-bound volume elsewhere does not match",
			claim:   makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{makePV("mine", "1Gi", pvOnHost("a"), pvClaimRef("ns", "c", "uid-c"))},
			query:   matchQuery{node: makeNode("b")},
		},
		{
			name:    "without a selected node, node affinity is not checked",
			claim:   makePVC("c", "1Gi"),
			volumes: []*corev1.PersistentVolume{makePV("on-a", "1Gi", pvOnHost("a"))},
			want:    "on-a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findBestMatch(tt.claim, tt.volumes, tt.query)
			if err != nil {
				t.Fatalf("findBestMatch: %v", err)
			}
			gotName := ""
			if got != nil {
				gotName = got.Name
			}
			if gotName != tt.want {
				t.Errorf("matched %q, want %q", gotName, tt.want)
			}
		})
	}
}

func TestNodeMatches(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a", "disks": "4"}}}
	req := func(key string, op corev1.NodeSelectorOperator, vals ...string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: key, Operator: op, Values: vals}
	}
	tests := []struct {
		name  string
		terms []corev1.NodeSelectorTerm
		want  bool
	}{
		{"In", []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{req("zone", corev1.NodeSelectorOpIn, "a", "b")}}}, true},
		{"NotIn", []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{req("zone", corev1.NodeSelectorOpNotIn, "a")}}}, false},
		{"Exists and DoesNotExist", []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			req("zone", corev1.NodeSelectorOpExists), req("gpu", corev1.NodeSelectorOpDoesNotExist)}}}, true},
		{"Gt", []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{req("disks", corev1.NodeSelectorOpGt, "3")}}}, true},
		{"Lt", []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{req("disks", corev1.NodeSelectorOpLt, "3")}}}, false},
		{"terms are ORed", []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{req("zone", corev1.NodeSelectorOpIn, "b")}},
			{MatchFields: []corev1.NodeSelectorRequirement{req(metav1.ObjectNameField, corev1.NodeSelectorOpIn, "n1")}},
		}, true},
		{"expressions are ANDed", []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			req("zone", corev1.NodeSelectorOpIn, "a"), req("disks", corev1.NodeSelectorOpIn, "8")}}}, false},
		{"empty term selects nothing", []corev1.NodeSelectorTerm{{}}, false},
		{"no terms select nothing", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := makePV("v", "1Gi")
			v.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: tt.terms}}
			got, err := nodeMatches(v, node)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("nodeMatches = %v, want %v", got, tt.want)
			}
		})
	}
	if ok, _ := nodeMatches(makePV("v", "1Gi"), node); !ok {
		t.Error("a volume without node affinity must match every node")
	}
}

func TestVolumeSatisfiesClaim(t *testing.T) {
	tests := []struct {
		name   string
		volume *corev1.PersistentVolume
		claim  *corev1.PersistentVolumeClaim
		ok     bool
	}{
		{"fits", makePV("v", "2Gi", pvClass("fast")), makePVC("c", "1Gi", pvcClass("fast")), true},
		{"too small", makePV("v", "1Gi"), makePVC("c", "2Gi"), false},
		{"other class", makePV("v", "1Gi", pvClass("slow")), makePVC("c", "1Gi", pvcClass("fast")), false},
		{"other mode", makePV("v", "1Gi", pvBlock), makePVC("c", "1Gi"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := volumeSatisfiesClaim(tt.volume, tt.claim)
			if (err == nil) != tt.ok {
				t.Errorf("volumeSatisfiesClaim = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
