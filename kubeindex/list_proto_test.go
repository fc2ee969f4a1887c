package kubeindex

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

func protobufSerializer() *protobuf.Serializer {
	return protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
}

// protoEncode encodes obj the way kube-apiserver does for a protobuf client.
func protoEncode(tb testing.TB, obj runtime.Object, gv schema.GroupVersion) []byte {
	tb.Helper()
	enc := scheme.Codecs.EncoderForVersion(protobufSerializer(), gv)
	b, err := runtime.Encode(enc, obj)
	if err != nil {
		tb.Fatalf("encode %T: %v", obj, err)
	}
	return b
}

func testServiceList(n int) *corev1.ServiceList {
	l := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next-page"}}
	for i := range n {
		l.Items = append(l.Items, *testService("ns", fmt.Sprintf("svc-%d", i), fmt.Sprintf("10.0.0.%d", i+1)))
	}
	return l
}

// readServices reads a protobuf ServiceList with readProtoList.
func readServices(data []byte, kind string) (metav1.ListMeta, []corev1.Service, error) {
	var got []corev1.Service
	lm, err := readProtoList(bytes.NewReader(data), kind, func(b []byte) error {
		var s corev1.Service
		if err := s.Unmarshal(b); err != nil {
			return err
		}
		got = append(got, s)
		return nil
	})
	return lm, got, err
}

func TestReadProtoList(t *testing.T) {
	want := testServiceList(3)
	lm, got, err := readServices(protoEncode(t, want, corev1.SchemeGroupVersion), "ServiceList")
	if err != nil {
		t.Fatal(err)
	}
	if lm.ResourceVersion != "42" || lm.Continue != "next-page" {
		t.Errorf("list meta = %+v", lm)
	}
	if !reflect.DeepEqual(got, want.Items) {
		t.Errorf("items differ:\n got %+v\nwant %+v", got, want.Items)
	}

	empty := protoEncode(t, &discoveryv1.EndpointSliceList{ListMeta: metav1.ListMeta{ResourceVersion: "7"}}, discoveryv1.SchemeGroupVersion)
	lm, err = readProtoList(bytes.NewReader(empty), "EndpointSliceList", func([]byte) error { return errors.New("no items expected") })
	if err != nil || lm.ResourceVersion != "7" {
		t.Errorf("empty list: meta %+v, err %v", lm, err)
	}
}

func TestReadProtoListErrors(t *testing.T) {
	valid := protoEncode(t, testServiceList(2), corev1.SchemeGroupVersion)
	jsonList, err := json.Marshal(testServiceList(2))
	if err != nil {
		t.Fatal(err)
	}
	raw := valid[len(protoMagic):]
	var env runtime.Unknown
	if err := env.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	envelope := func(edit func(*runtime.Unknown)) []byte {
		u := env
		edit(&u)
		b, err := u.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return append(append([]byte{}, protoMagic...), b...)
	}
	itemErr := errors.New("item rejected")
	for _, c := range []struct {
		name string
		data []byte
		kind string
		item error // returned by the item callback
		want error
	}{
		{name: "json", data: jsonList, want: errNotProtobuf},
		{name: "empty", data: nil, want: errNotProtobuf},
		{name: "short magic", data: protoMagic[:3], want: errNotProtobuf},
		{name: "wrong kind", data: valid, kind: "PodList", want: errBadProtobuf},
		{name: "content encoding", data: envelope(func(u *runtime.Unknown) { u.ContentEncoding = "gzip" }), want: errBadProtobuf},
		{name: "no list", data: envelope(func(u *runtime.Unknown) { u.Raw = nil }), want: errBadProtobuf},
		{name: "list is not a message", data: envelope(func(u *runtime.Unknown) { u.Raw = []byte{0x12, 0x05, 1} }), want: errBadProtobuf},
		{name: "item callback error", data: valid, item: itemErr, want: itemErr},
	} {
		t.Run(c.name, func(t *testing.T) {
			kind := c.kind
			if kind == "" {
				kind = "ServiceList"
			}
			_, err := readProtoList(bytes.NewReader(c.data), kind, func([]byte) error { return c.item })
			if !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// TestReadProtoListTruncated cuts a valid response at every byte: a cut
// stream must never pass for a shorter list.
func TestReadProtoListTruncated(t *testing.T) {
	want := testServiceList(3)
	valid := protoEncode(t, want, corev1.SchemeGroupVersion)
	for n := range len(valid) {
		lm, got, err := readServices(valid[:n], "ServiceList")
		if err == nil && (len(got) != len(want.Items) || lm.ResourceVersion != "42") {
			t.Fatalf("cut at %d of %d: accepted %d items, meta %+v", n, len(valid), len(got), lm)
		}
		if err != nil && n >= len(protoMagic) && !errors.Is(err, errBadProtobuf) {
			t.Fatalf("cut at %d: err %v, want errBadProtobuf", n, err)
		}
	}
}

func FuzzReadProtoList(f *testing.F) {
	f.Add(protoEncode(f, testServiceList(2), corev1.SchemeGroupVersion))
	f.Add(protoEncode(f, &corev1.ServiceList{}, corev1.SchemeGroupVersion))
	f.Add(append(append([]byte{}, protoMagic...), 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0xfe, 0xff, 0xff, 0xff, 0x0f))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = readServices(data, "ServiceList")
	})
}

// fullPod is a Pod with everything a real one carries, so that decodePod
// must skip spec, managedFields and the rest.
func fullPod() *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-7d4b9c-x2x9z", Namespace: "Prod", ResourceVersion: "123456", UID: "u-1",
			Labels:          map[string]string{"app": "web"},
			Annotations:     map[string]string{"a": strings.Repeat("x", 300)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d4b9c", UID: "u-2", Controller: &yes}},
			ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
				FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:status":{"f:podIP":{}}}`),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:   "node-1",
			Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}}}},
		},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			HostIP:            "192.0.2.1",
			PodIP:             "10.1.2.3",
			PodIPs:            []corev1.PodIP{{IP: "10.1.2.3"}, {IP: "fd00::3"}},
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, RestartCount: 2, Image: "registry.invalid/app:1"}},
		},
	}
}

// decodeBoth decodes b with decodePod and with the generated Unmarshal and
// returns what the pod transform makes of each.
func decodeBoth(tb testing.TB, b []byte) (slim, whole *storedPod, slimErr, wholeErr error) {
	tb.Helper()
	tr := newTestTransformer(false)
	if o, err := decodePod(b); err == nil {
		st, _ := tr.pod(o)
		slim = st.(*storedPod)
	} else {
		slimErr = err
	}
	if o, err := decodeAs[corev1.Pod]()(b); err == nil {
		st, _ := tr.pod(o)
		whole = st.(*storedPod)
	} else {
		wholeErr = err
	}
	return slim, whole, slimErr, wholeErr
}

func TestDecodePod(t *testing.T) {
	legacy := fullPod()
	legacy.Status.PodIPs = nil
	done := fullPod()
	done.Status.Phase = corev1.PodSucceeded
	bad := fullPod()
	bad.Status.PodIPs = []corev1.PodIP{{IP: "not-an-ip"}, {IP: "10.9.9.9"}}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want storedPod
	}{
		{"dual stack", fullPod(), storedPod{namespace: "prod", key: "Prod/web-7d4b9c-x2x9z", rv: "123456",
			ips: [2]netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00::3")}}},
		{"podIP only", legacy, storedPod{namespace: "prod", key: "Prod/web-7d4b9c-x2x9z", rv: "123456",
			ips: [2]netip.Addr{netip.MustParseAddr("10.1.2.3")}}},
		{"succeeded", done, storedPod{namespace: "prod", key: "Prod/web-7d4b9c-x2x9z", rv: "123456"}},
		{"invalid IP skipped", bad, storedPod{namespace: "prod", key: "Prod/web-7d4b9c-x2x9z", rv: "123456",
			ips: [2]netip.Addr{netip.MustParseAddr("10.9.9.9")}}},
		{"empty", &corev1.Pod{}, storedPod{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.pod.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			slim, whole, slimErr, wholeErr := decodeBoth(t, b)
			if slimErr != nil || wholeErr != nil {
				t.Fatalf("decode: %v, %v", slimErr, wholeErr)
			}
			if *slim != tc.want || *whole != tc.want {
				t.Errorf("decodePod: %+v\nUnmarshal: %+v\nwant:      %+v", *slim, *whole, tc.want)
			}
			for n := range len(b) - 1 { // every cut is either an error or a valid shorter message
				if _, err := decodePod(b[:n]); err != nil && !errors.Is(err, errBadProtobuf) {
					t.Fatalf("cut at %d: %v, not errBadProtobuf", n, err)
				}
			}
		})
	}
}

// FuzzDecodePod: wherever the generated Unmarshal accepts a Pod, decodePod
// accepts it too and the pod transform makes the same stored pod of both.
// (decodePod may accept what Unmarshal rejects, e.g. a malformed field it
// skips.)
func FuzzDecodePod(f *testing.F) {
	b, err := fullPod().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		slim, whole, slimErr, wholeErr := decodeBoth(t, b)
		if wholeErr != nil {
			return
		}
		if slimErr != nil {
			t.Fatalf("decodePod: %v; Unmarshal accepted it", slimErr)
		}
		if *slim != *whole {
			t.Fatalf("decodePod: %+v\nUnmarshal: %+v", *slim, *whole)
		}
	})
}
