package cronjob

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

// A bad time zone or schedule is reported as an event, not a crash or a
// retry loop.
func TestRunScheduleReportsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*batchv1.CronJob)
		reason string
	}{
		"unknown zone": {func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptr.To("Mars/Olympus_Mons") }, "UnknownTimeZone"},
		"empty zone":   {func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptr.To("") }, "UnknownTimeZone"},
		"bad schedule": {func(cj *batchv1.CronJob) { cj.Spec.Schedule = "61 * * * *" }, "UnparseableSchedule"},
	} {
		rec := record.NewFakeRecorder(10)
		c := &Controller{recorder: rec}
		cj := &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour))},
			Spec:       batchv1.CronJobSpec{Schedule: "* * * * *"},
		}
		tc.mutate(cj)
		next, err := c.runSchedule(context.Background(), cj, &cj.Status, nil, time.Now())
		if err != nil || !next.IsZero() {
			t.Errorf("%s: next %v, err %v", name, next, err)
		}
		select {
		case e := <-rec.Events:
			if !strings.Contains(e, tc.reason) {
				t.Errorf("%s: event %q, want %s", name, e, tc.reason)
			}
		default:
			t.Errorf("%s: no event", name)
		}
	}
}
