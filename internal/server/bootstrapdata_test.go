package server

import "testing"

// TestBootstrapDataEtcdCA: the etcd CA travels sealed with the rest, data
// of older servers (without it) still opens, and merging adds it to such
// data without touching the rest.
func TestBootstrapDataEtcdCA(t *testing.T) {
	const secret = "s3cret"
	old := bootstrapData{CACert: []byte("ca"), CAKey: []byte("ca-key"), Token: "tok"}
	sealed, err := sealBootstrap(secret, old)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openBootstrap(secret, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got.EtcdCACert != nil || got.EtcdCAKey != nil || got.Token != "tok" {
		t.Fatalf("older data opened as %+v", got)
	}

	withEtcd := bootstrapData{CACert: []byte("ca"), CAKey: []byte("ca-key"), Token: "tok",
		ServiceAccountKey: []byte("sa"), EtcdCACert: []byte("etcd-ca"), EtcdCAKey: []byte("etcd-ca-key")}
	merged, changed := mergeBootstrap(got, withEtcd)
	if !changed || string(merged.EtcdCACert) != "etcd-ca" || string(merged.EtcdCAKey) != "etcd-ca-key" ||
		string(merged.ServiceAccountKey) != "sa" || string(merged.CAKey) != "ca-key" {
		t.Fatalf("merged = %+v, changed %v", merged, changed)
	}
	if _, changed := mergeBootstrap(merged, withEtcd); changed {
		t.Error("merging the same data again changed it")
	}
	// A member whose peers are still on the cluster CA stores no etcd CA:
	// it must not remove one stored by others.
	noEtcd := withEtcd
	noEtcd.EtcdCACert, noEtcd.EtcdCAKey = nil, nil
	if again, changed := mergeBootstrap(merged, noEtcd); changed || again.EtcdCACert == nil {
		t.Errorf("data without an etcd CA changed the stored one: %+v", again)
	}
	// A different etcd CA replaces the stored one (it comes from a member
	// whose peers use it: after a cluster reset).
	other := withEtcd
	other.EtcdCACert, other.EtcdCAKey = []byte("new-ca"), []byte("new-key")
	if m, changed := mergeBootstrap(merged, other); !changed || string(m.EtcdCACert) != "new-ca" || string(m.EtcdCAKey) != "new-key" {
		t.Errorf("a new etcd CA was not taken: %+v", m)
	}
}
