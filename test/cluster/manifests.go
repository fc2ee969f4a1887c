package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// DeployManifests lists the Kubernetes manifests (*.yaml, except
// kustomization.yaml, which is kustomize's and not an API object) in deploy/
// and deploy/nodelocal/, as absolute paths.
func DeployManifests() ([]string, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dirs := []string{"deploy", filepath.Join("deploy", "nodelocal")}
	var out []string
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(root, d, "*.yaml"))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", d, err)
		}
		for _, f := range files {
			if filepath.Base(f) != "kustomization.yaml" {
				out = append(out, f)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no manifests in %s", strings.Join(dirs, ", "))
	}
	return out, nil
}

// ReadObjects decodes every object of a multi-document YAML file. Empty
// documents (comments only) are skipped.
func ReadObjects(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("%s: document %d: apiVersion, kind and metadata.name are required", path, i)
		}
		objs = append(objs, u)
	}
}

// Apply sends every object in the manifest files to the API server with
// server-side apply and strict field validation, so an unknown or
// misspelled field is an error, as is anything the server's validation or
// admission rejects. With dryRun the server checks everything and stores
// nothing. The error names each object that failed.
func (c *Cluster) Apply(ctx context.Context, dryRun bool, paths ...string) error {
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		return fmt.Errorf("discover API resources: %w", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	opts := metav1.PatchOptions{FieldManager: "clusterdns-test", FieldValidation: "Strict", Force: new(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var errs []error
	for _, path := range paths {
		objs, err := ReadObjects(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, u := range objs {
			id := fmt.Sprintf("%s: %s %s", filepath.Base(path), u.GetKind(), u.GetName())
			gvk := u.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				continue
			}
			ri := dyn.Resource(m.Resource)
			var r dynamic.ResourceInterface = ri
			if m.Scope.Name() == "namespace" {
				ns := u.GetNamespace()
				if ns == "" {
					ns = metav1.NamespaceDefault
				}
				r = ri.Namespace(ns)
			}
			data, err := u.MarshalJSON()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: encode: %w", id, err))
				continue
			}
			if _, err := r.Patch(ctx, u.GetName(), types.ApplyPatchType, data, opts); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ExtractConfigs writes the clusterdns configuration files held in the
// ConfigMaps of the given manifests (every data key ending in .yaml or .yml)
// into dir, one file per key named <namespace>_<configmap>_<key>, and returns
// their paths sorted. It is how tests hand each shipped config to
// `clusterdns -check-config`.
func ExtractConfigs(dir string, manifests ...string) ([]string, error) {
	var out []string
	for _, path := range manifests {
		objs, err := ReadObjects(path)
		if err != nil {
			return nil, err
		}
		for _, u := range objs {
			if u.GetAPIVersion() != "v1" || u.GetKind() != "ConfigMap" {
				continue
			}
			var cm corev1.ConfigMap
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cm); err != nil {
				return nil, fmt.Errorf("%s: ConfigMap %s: %w", path, u.GetName(), err)
			}
			for key, text := range cm.Data {
				if !strings.HasSuffix(key, ".yaml") && !strings.HasSuffix(key, ".yml") {
					continue
				}
				name := filepath.Join(dir, cm.Namespace+"_"+cm.Name+"_"+key)
				if slices.Contains(out, name) {
					return nil, fmt.Errorf("%s: ConfigMap %s/%s key %s appears twice", path, cm.Namespace, cm.Name, key)
				}
				if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
					return nil, fmt.Errorf("write config: %w", err)
				}
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
