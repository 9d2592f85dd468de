package registry

// Validation of a pod spec's volumes.

import (
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateVolumes checks the pod's volumes and returns them by name.
func validateVolumes(volumes []corev1.Volume, p *field.Path) (map[string]corev1.VolumeSource, field.ErrorList) {
	byName := map[string]corev1.VolumeSource{}
	var errs field.ErrorList
	for i, v := range volumes {
		vp := p.Index(i)
		switch {
		case v.Name == "":
			errs = append(errs, field.Required(vp.Child("name"), ""))
		default:
			errs = append(errs, validateDNSLabel(v.Name, vp.Child("name"))...)
			if _, dup := byName[v.Name]; dup {
				errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
			} else {
				byName[v.Name] = v.VolumeSource
			}
		}
		if oneOf := validateOneOf(&v.VolumeSource, vp, "volume type"); len(oneOf) > 0 {
			errs = append(errs, oneOf...)
			continue
		}
		errs = append(errs, validateVolumeSource(&v.VolumeSource, vp)...)
	}
	return byName, errs
}

// validateVolumeSource checks the one source a volume has.
func validateVolumeSource(v *corev1.VolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case v.HostPath != nil:
		errs = append(errs, validateHostPath(v.HostPath, p.Child("hostPath"))...)
	case v.EmptyDir != nil:
		ep := p.Child("emptyDir")
		if m := v.EmptyDir.Medium; m != corev1.StorageMediumDefault && m != corev1.StorageMediumMemory && !strings.HasPrefix(string(m), string(corev1.StorageMediumHugePages)) {
			errs = append(errs, field.NotSupported(ep.Child("medium"), m, []corev1.StorageMedium{corev1.StorageMediumDefault, corev1.StorageMediumMemory, corev1.StorageMediumHugePages}))
		}
		if q := v.EmptyDir.SizeLimit; q != nil && q.Sign() < 0 {
			errs = append(errs, field.Invalid(ep.Child("sizeLimit"), q.String(), apimachineryvalidation.IsNegativeErrorMsg))
		}
	case v.Secret != nil:
		sp := p.Child("secret")
		if v.Secret.SecretName == "" {
			errs = append(errs, field.Required(sp.Child("secretName"), ""))
		}
		errs = append(errs, validateFileMode(v.Secret.DefaultMode, sp.Child("defaultMode"))...)
		errs = append(errs, validateKeyToPaths(v.Secret.Items, sp.Child("items"))...)
	case v.ConfigMap != nil:
		cp := p.Child("configMap")
		if v.ConfigMap.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		}
		errs = append(errs, validateFileMode(v.ConfigMap.DefaultMode, cp.Child("defaultMode"))...)
		errs = append(errs, validateKeyToPaths(v.ConfigMap.Items, cp.Child("items"))...)
	case v.DownwardAPI != nil:
		dp := p.Child("downwardAPI")
		errs = append(errs, validateFileMode(v.DownwardAPI.DefaultMode, dp.Child("defaultMode"))...)
		errs = append(errs, validateDownwardAPIItems(v.DownwardAPI.Items, dp.Child("items"))...)
	case v.Projected != nil:
		errs = append(errs, validateProjected(v.Projected, p.Child("projected"))...)
	case v.PersistentVolumeClaim != nil:
		if v.PersistentVolumeClaim.ClaimName == "" {
			errs = append(errs, field.Required(p.Child("persistentVolumeClaim", "claimName"), ""))
		}
	case v.NFS != nil:
		errs = append(errs, validateNFS(v.NFS, p.Child("nfs"))...)
	case v.CSI != nil:
		if v.CSI.Driver == "" {
			errs = append(errs, field.Required(p.Child("csi", "driver"), ""))
		}
	case v.Ephemeral != nil:
		tp := p.Child("ephemeral", "volumeClaimTemplate")
		if v.Ephemeral.VolumeClaimTemplate == nil {
			errs = append(errs, field.Required(tp, ""))
		} else {
			errs = append(errs, metav1validation.ValidateLabels(v.Ephemeral.VolumeClaimTemplate.Labels, tp.Child("metadata", "labels"))...)
			errs = append(errs, validatePersistentVolumeClaimSpec(&v.Ephemeral.VolumeClaimTemplate.Spec, tp.Child("spec"))...)
		}
	case v.Image != nil:
		ip := p.Child("image")
		if v.Image.Reference == "" {
			errs = append(errs, field.Required(ip.Child("reference"), ""))
		}
		errs = append(errs, validateOptionalEnum(v.Image.PullPolicy, ip.Child("pullPolicy"), corev1.PullAlways, corev1.PullNever, corev1.PullIfNotPresent)...)
	}
	return errs
}

func validateHostPath(h *corev1.HostPathVolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if h.Path == "" {
		errs = append(errs, field.Required(p.Child("path"), ""))
	}
	errs = append(errs, validateNoBacksteps(h.Path, p.Child("path"))...)
	if h.Type != nil {
		errs = append(errs, validateOptionalEnum(*h.Type, p.Child("type"),
			corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
			corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev)...)
	}
	return errs
}

func validateNFS(n *corev1.NFSVolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if n.Server == "" {
		errs = append(errs, field.Required(p.Child("server"), ""))
	}
	switch {
	case n.Path == "":
		errs = append(errs, field.Required(p.Child("path"), ""))
	case !strings.HasPrefix(n.Path, "/"):
		errs = append(errs, field.Invalid(p.Child("path"), n.Path, "must be an absolute path"))
	}
	return errs
}

func validateKeyToPaths(items []corev1.KeyToPath, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, it := range items {
		ip := p.Index(i)
		if it.Key == "" {
			errs = append(errs, field.Required(ip.Child("key"), ""))
		}
		errs = append(errs, validateItemPath(it.Path, ip.Child("path"))...)
		errs = append(errs, validateFileMode(it.Mode, ip.Child("mode"))...)
	}
	return errs
}

// validateItemPath checks the relative file path of a projected item.
func validateItemPath(v string, p *field.Path) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	errs := validateRelativePath(v, p)
	if strings.HasPrefix(v, "..") {
		errs = append(errs, field.Invalid(p, v, "must not start with '..'"))
	}
	return errs
}

func validateDownwardAPIItems(items []corev1.DownwardAPIVolumeFile, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, it := range items {
		ip := p.Index(i)
		errs = append(errs, validateItemPath(it.Path, ip.Child("path"))...)
		errs = append(errs, validateFileMode(it.Mode, ip.Child("mode"))...)
		switch {
		case it.FieldRef != nil && it.ResourceFieldRef != nil:
			errs = append(errs, field.Invalid(ip, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		case it.FieldRef != nil:
			errs = append(errs, validateFieldRef(it.FieldRef, downwardAPIVolumeFieldPaths, ip.Child("fieldRef"))...)
		case it.ResourceFieldRef != nil:
			errs = append(errs, validateResourceFieldRef(it.ResourceFieldRef, ip.Child("resourceFieldRef"))...)
		default:
			errs = append(errs, field.Required(ip, "one of fieldRef and resourceFieldRef is required"))
		}
	}
	return errs
}

func validateProjected(v *corev1.ProjectedVolumeSource, p *field.Path) field.ErrorList {
	errs := validateFileMode(v.DefaultMode, p.Child("defaultMode"))
	paths := map[string]bool{}
	addPath := func(path string, pp *field.Path) {
		if paths[path] {
			errs = append(errs, field.Invalid(pp, path, "conflicting duplicate paths"))
		}
		paths[path] = true
	}
	for i := range v.Sources {
		s := &v.Sources[i]
		sp := p.Child("sources").Index(i)
		if set := setPointerFields(s); len(set) != 1 {
			if len(set) == 0 {
				errs = append(errs, field.Required(sp, "must specify a projection source"))
			} else {
				errs = append(errs, field.Forbidden(sp.Child(set[1]), "may not specify more than 1 projection source"))
			}
			continue
		}
		switch {
		case s.Secret != nil:
			errs = append(errs, validateKeyToPaths(s.Secret.Items, sp.Child("secret", "items"))...)
			for j, it := range s.Secret.Items {
				addPath(it.Path, sp.Child("secret", "items").Index(j).Child("path"))
			}
		case s.ConfigMap != nil:
			errs = append(errs, validateKeyToPaths(s.ConfigMap.Items, sp.Child("configMap", "items"))...)
			for j, it := range s.ConfigMap.Items {
				addPath(it.Path, sp.Child("configMap", "items").Index(j).Child("path"))
			}
		case s.DownwardAPI != nil:
			errs = append(errs, validateDownwardAPIItems(s.DownwardAPI.Items, sp.Child("downwardAPI", "items"))...)
			for j, it := range s.DownwardAPI.Items {
				addPath(it.Path, sp.Child("downwardAPI", "items").Index(j).Child("path"))
			}
		case s.ServiceAccountToken != nil:
			tp := sp.Child("serviceAccountToken")
			if s.ServiceAccountToken.Path == "" {
				errs = append(errs, field.Required(tp.Child("path"), ""))
			} else {
				errs = append(errs, validateItemPath(s.ServiceAccountToken.Path, tp.Child("path"))...)
				addPath(s.ServiceAccountToken.Path, tp.Child("path"))
			}
			if e := s.ServiceAccountToken.ExpirationSeconds; e != nil {
				if *e < 600 {
					errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *e, "may not specify a duration less than 10 minutes"))
				} else if *e > math.MaxUint32 {
					errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *e, "may not specify a duration larger than 2^32 seconds"))
				}
			}
		}
	}
	return errs
}
