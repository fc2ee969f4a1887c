package main

import (
	"maps"
	"testing"
)

func TestCountLists(t *testing.T) {
	metrics := `# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
apiserver_request_total{code="200",component="apiserver",dry_run="",group="discovery.k8s.io",resource="endpointslices",scope="cluster",subresource="",verb="LIST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="services",scope="cluster",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="services",scope="namespace",subresource="",verb="LIST",version="v1"} 1
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="",verb="POST",version="v1"} 500
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 7
apiserver_request_duration_seconds_count{resource="services",verb="LIST"} 99
`
	got, err := countLists([]byte(metrics), "services", "endpointslices")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"services": 4, "endpointslices": 2}; !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got, err = countLists(nil, "endpointslices")
	if err != nil || got["endpointslices"] != 0 {
		t.Errorf("no metrics: %v, %v", got, err)
	}
}
