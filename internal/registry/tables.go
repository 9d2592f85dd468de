package registry

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// The tables here are what `kubectl get` prints: the columns and cells of
// Kubernetes' server-side printers. The server always sends every column,
// the `-o wide` ones (Priority 1) included; kubectl hides those unless asked.
// Cells are strings, int64 or bool, as Kubernetes sends them, and a column's
// Type is the one Kubernetes declares (which is "string" for several columns
// that hold numbers).

func defaultColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name"},
		{Name: "Created At", Type: "date"},
	}
}

func defaultRow(obj runtime.Object) []interface{} {
	m := obj.(metav1.Object)
	return []interface{}{m.GetName(), m.GetCreationTimestamp().UTC().Format("2006-01-02T15:04:05Z")}
}

// Column builders. Every table starts with tableNameColumn (events aside, whose
// Name is a wide column at the end, as in Kubernetes).

func tableNameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name of the object, unique within its namespace."}
}

func tableAgeColumn() metav1.TableColumnDefinition {
	return tableColumn("Age", "string", "Time since the object was created.")
}

func tableColumn(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: description}
}

// tableWideColumn is a column kubectl shows only with `-o wide`.
func tableWideColumn(name, typ, description string) metav1.TableColumnDefinition {
	c := tableColumn(name, typ, description)
	c.Priority = 1
	return c
}

// templateColumns are the wide Containers/Images(/Selector) columns of the
// workload kinds.
func templateColumns(withSelector bool) []metav1.TableColumnDefinition {
	cols := []metav1.TableColumnDefinition{
		tableWideColumn("Containers", "string", "Names of each container in the template."),
		tableWideColumn("Images", "string", "Images referenced by each container in the template."),
	}
	if withSelector {
		cols = append(cols, tableWideColumn("Selector", "string", "Label selector of the pods the object manages."))
	}
	return cols
}

// Cell helpers.

// tableAge renders the time since t the way kubectl users know it ("5s",
// "3m2s", "10m", "2d3h"): "<unknown>" for an unset time, "<invalid>" for a
// time in the future (beyond a second of clock skew).
func tableAge(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func tableMicroAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// containerCells returns the comma-joined names and images of containers.
func containerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, 0, len(containers))
	im := make([]string, 0, len(containers))
	for _, c := range containers {
		n = append(n, c.Name)
		im = append(im, c.Image)
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}

// cellOrNone returns s, or "<none>" when it is empty.
func cellOrNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// cellReplicas reads a replicas field the API defaults to 1 when unset.
func cellReplicas(p *int32) int64 {
	if p == nil {
		return 1
	}
	return int64(*p)
}
