// crdgen writes CustomResourceDefinitions generated from Go API types with controller-tools' CRD generator (used as
// a library, as controller-gen uses it), for API modules that ship their types but no package embedding the CRDs:
//
//	crdgen DIR
//
// writes one <group>_<plural>.yaml per kind below into DIR. It loads the API packages with go/packages, so it runs
// inside a module that requires them (scripts/install-k8s runs it in cluster-assets' wrapper module, whose build
// then embeds DIR).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"golang.org/x/tools/go/packages"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-tools/pkg/crd"
	crdmarkers "sigs.k8s.io/controller-tools/pkg/crd/markers"
	"sigs.k8s.io/controller-tools/pkg/loader"
	"sigs.k8s.io/controller-tools/pkg/markers"
	"sigs.k8s.io/yaml"
)

// The kinds the stacks register, by the package declaring them.
var kinds = map[string][]schema.GroupKind{
	// KEDA: a model with autoscaling.driver keda.
	"github.com/kedacore/keda/v2/apis/keda/v1alpha1": {{Group: "keda.sh", Kind: "ScaledObject"}},
	// prometheus-operator: monitoring.enabled and gpuPool.dcgmExporter.
	"github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1": {
		{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"},
		{Group: "monitoring.coreos.com", Kind: "PodMonitor"},
		{Group: "monitoring.coreos.com", Kind: "PrometheusRule"},
	},
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: crdgen DIR")
		os.Exit(2)
	}
	if err := generate(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "crdgen:", err)
		os.Exit(1)
	}
}

func generate(dir string) error {
	paths := make([]string, 0, len(kinds))
	for path := range kinds {
		paths = append(paths, path)
	}
	roots, err := loader.LoadRoots(paths...)
	if err != nil {
		return err
	}
	registry := &markers.Registry{}
	if err := crdmarkers.Register(registry); err != nil {
		return err
	}
	// The generator's own settings (controller-gen crd:crdVersions=v1): descriptions kept, no float fields.
	parser := &crd.Parser{
		Collector: &markers.Collector{Registry: registry},
		Checker:   &loader.TypeChecker{NodeFilters: []loader.NodeFilter{crd.Generator{}.CheckFilter()}},
	}
	crd.AddKnownTypes(parser)
	for _, root := range roots {
		parser.NeedPackage(root)
	}
	files := map[string][]byte{}
	for _, root := range roots {
		for _, gk := range kinds[root.PkgPath] {
			name, out, err := render(parser, gk)
			if err != nil {
				return err
			}
			files[name] = out
		}
	}
	// Type errors are expected from partial type checking (controller-gen skips them too); others are not.
	if loader.PrintErrors(roots, packages.TypeError) {
		return fmt.Errorf("loading %v failed", paths)
	}
	for name, out := range files {
		if err := os.WriteFile(filepath.Join(dir, name), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// render is one kind's CRD as controller-gen writes it: apiextensions.k8s.io/v1, without status.
func render(parser *crd.Parser, gk schema.GroupKind) (string, []byte, error) {
	parser.NeedCRDFor(gk, nil)
	generated, ok := parser.CustomResourceDefinitions[gk]
	if !ok || len(generated.Spec.Versions) == 0 {
		return "", nil, fmt.Errorf("no CRD generated for %s", gk)
	}
	crd.FixTopLevelMetadata(generated)
	converted, err := crd.AsVersion(generated, apiextensionsv1.SchemeGroupVersion)
	if err != nil {
		return "", nil, err
	}
	out, err := yaml.Marshal(converted)
	if err != nil {
		return "", nil, err
	}
	// The API server owns status and creationTimestamp.
	var obj map[string]any
	if err := yaml.Unmarshal(out, &obj); err != nil {
		return "", nil, err
	}
	delete(obj, "status")
	if meta, ok := obj["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	out, err = yaml.Marshal(obj)
	return fmt.Sprintf("%s_%s.yaml", generated.Spec.Group, generated.Spec.Names.Plural), out, err
}
