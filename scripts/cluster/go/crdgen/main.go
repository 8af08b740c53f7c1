// crdgen writes CustomResourceDefinitions generated from Go API types with controller-tools' CRD generator (used as
// a library, as controller-gen uses it), for API modules that ship their types but no package embedding the CRDs:
//
//	crdgen DIR
//
// writes one <group>_<plural>.yaml per kind below into DIR. It loads the API packages with go/packages, so it runs
// inside a module that requires them (scripts/install-k8s runs it in cluster-assets' wrapper module, whose build
// then embeds DIR). Each CRD has the one version its package declares (served and storage), with the CEL rules
// (x-kubernetes-validations) of the types' +kubebuilder:validation:XValidation markers.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/tools/go/packages"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-tools/pkg/crd"
	crdmarkers "sigs.k8s.io/controller-tools/pkg/crd/markers"
	"sigs.k8s.io/controller-tools/pkg/loader"
	"sigs.k8s.io/controller-tools/pkg/markers"
	inferenceversion "sigs.k8s.io/gateway-api-inference-extension/version"
	gatewayconsts "sigs.k8s.io/gateway-api/pkg/consts"
	"sigs.k8s.io/yaml"
)

// The kinds the stacks register, by the package declaring them (only that package's version is generated).
var kinds = map[string][]schema.GroupKind{
	// KEDA: a model with autoscaling.driver keda. The operator watches every kind of its API and exits when one has
	// no CRD, so the ones the stacks do not register are here too.
	"github.com/kedacore/keda/v2/apis/keda/v1alpha1": {
		{Group: "keda.sh", Kind: "ScaledObject"},
		{Group: "keda.sh", Kind: "ScaledJob"},
		{Group: "keda.sh", Kind: "TriggerAuthentication"},
		{Group: "keda.sh", Kind: "ClusterTriggerAuthentication"},
	},
	"github.com/kedacore/keda/v2/apis/eventing/v1alpha1": {
		{Group: "eventing.keda.sh", Kind: "CloudEventSource"},
		{Group: "eventing.keda.sh", Kind: "ClusterCloudEventSource"},
	},
	// prometheus-operator: monitoring.enabled and gpuPool.dcgmExporter; Prometheus (the local cluster's server) and
	// Probe, which the operator's Prometheus controller always watches.
	"github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1": {
		{Group: "monitoring.coreos.com", Kind: "Prometheus"},
		{Group: "monitoring.coreos.com", Kind: "Probe"},
		{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"},
		{Group: "monitoring.coreos.com", Kind: "PodMonitor"},
		{Group: "monitoring.coreos.com", Kind: "PrometheusRule"},
	},
	// Gateway API v1, standard channel (gatewayStandard): the gateway and routes in front of the model servers.
	"sigs.k8s.io/gateway-api/apis/v1": {
		{Group: gatewayGroup, Kind: "GatewayClass"},
		{Group: gatewayGroup, Kind: "Gateway"},
		{Group: gatewayGroup, Kind: "HTTPRoute"},
	},
	// Gateway API Inference Extension: the InferencePool an HTTPRoute sends to (through its endpoint picker), and
	// the InferenceObjective (request priority) the endpoint picker watches.
	"sigs.k8s.io/gateway-api-inference-extension/api/v1": {{Group: "inference.networking.k8s.io", Kind: "InferencePool"}},
	"sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2": {
		{Group: "inference.networking.x-k8s.io", Kind: "InferenceObjective"},
	},
	// LeaderWorkerSet: multi-host model servers (one leader and its workers per replica).
	"sigs.k8s.io/lws/api/leaderworkerset/v1": {{Group: "leaderworkerset.x-k8s.io", Kind: "LeaderWorkerSet"}},
	// Not used by the stacks: the LeaderWorkerSet controller (scripts/cluster/addons.py) watches it from its start.
	"sigs.k8s.io/lws/api/disaggregatedset/v1": {{Group: "disaggregatedset.x-k8s.io", Kind: "DisaggregatedSet"}},
}

const gatewayGroup = "gateway.networking.k8s.io"

// The annotations each project's own generator puts on its CRDs. Groups under k8s.io need the API approval one, or
// the API server refuses the CRD (InferencePool has it from a marker).
var annotations = map[string]map[string]string{
	gatewayGroup: {
		gatewayconsts.BundleVersionAnnotation:     gatewayconsts.BundleVersion,
		gatewayconsts.ChannelAnnotation:           "standard",
		apiextensionsv1.KubeAPIApprovedAnnotation: gatewayconsts.ApprovalLink,
	},
	"inference.networking.k8s.io":   {inferenceversion.BundleVersionAnnotation: inferenceversion.BundleVersion},
	"inference.networking.x-k8s.io": {inferenceversion.BundleVersionAnnotation: inferenceversion.BundleVersion},
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
	// The generator's own settings (controller-gen crd:crdVersions=v1): descriptions kept, no float fields; and
	// generateEmbeddedObjectMeta, as LeaderWorkerSet's generator has it: the schema of the pod templates' metadata
	// (without it the API server would prune their labels and annotations; no other kind here embeds ObjectMeta).
	parser := &crd.Parser{
		Collector:                  &markers.Collector{Registry: registry},
		Checker:                    &loader.TypeChecker{NodeFilters: []loader.NodeFilter{crd.Generator{}.CheckFilter()}},
		GenerateEmbeddedObjectMeta: true,
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
	if extra := annotations[gk.Group]; extra != nil {
		if generated.Annotations == nil {
			generated.Annotations = map[string]string{}
		}
		for k, v := range extra {
			generated.Annotations[k] = v
		}
	}
	if gk.Group == gatewayGroup {
		for _, version := range generated.Spec.Versions {
			if err := gatewayStandard(version.Schema.OpenAPIV3Schema.Properties, gk.Kind); err != nil {
				return "", nil, fmt.Errorf("%s: %w", gk, err)
			}
		}
	}
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

// Gateway API's types carry <gateway:...> tags in their comments, past what controller-tools' markers express; its
// own generator (tools/generator, a module of its own) applies them to the schema. controller-tools leaves them in
// the descriptions; gatewayStandard applies them for the standard channel, as that generator does:
//   - <gateway:experimental>: the field is experimental-channel only and is dropped;
//   - <gateway:standard:validation:XValidation:message="...",rule="..."> (and :Enum=a;b, :Pattern=`...`): a CEL rule
//     (enum, pattern) of the standard channel only; the experimental channel's are ignored;
//   - <gateway:validateIPAddress>: the address list's items are IP addresses when their type is IPAddress;
//   - <gateway:experimental:description> and <gateway:util:excludeFromCRD> blocks are dropped from descriptions.
var (
	gatewayValidation = "<gateway:standard:validation:"
	gatewayEnum       = regexp.MustCompile(`<gateway:standard:validation:Enum=([A-Za-z;]*)>`)
	gatewayCEL        = regexp.MustCompile(`<gateway:standard:validation:XValidation:message="([^"]*)",rule="([^"]*)">`)
	gatewayPattern    = regexp.MustCompile("<gateway:standard:validation:Pattern=`([^`]*)`")
	gatewayExpDesc    = regexp.MustCompile(`\n*<gateway:experimental:description>(?s:.*?)</gateway:experimental:description>\n*`)
	gatewayExclude    = regexp.MustCompile(`\n*<gateway:util:excludeFromCRD>(?s:.*?)</gateway:util:excludeFromCRD>\n*`)
	gatewayTag        = regexp.MustCompile(`<gateway:.*>`)
	extraNewlines     = regexp.MustCompile(`\n\n\n+`)
)

func gatewayStandard(props map[string]apiextensionsv1.JSONSchemaProps, path string) error {
	for name, prop := range props {
		p, keep, err := gatewayProp(prop, path+"."+name)
		if err != nil {
			return err
		}
		if keep {
			props[name] = p
		} else {
			delete(props, name)
		}
	}
	return nil
}

func gatewayProp(p apiextensionsv1.JSONSchemaProps, path string) (apiextensionsv1.JSONSchemaProps, bool, error) {
	desc := p.Description
	if strings.Contains(desc, "<gateway:experimental>") {
		return p, false, nil
	}
	if strings.Contains(desc, "<gateway:validateIPAddress>") {
		if p.Items == nil || p.Items.Schema == nil {
			return p, false, fmt.Errorf("%s: <gateway:validateIPAddress> on a field that is not a list", path)
		}
		ipAddress := []apiextensionsv1.JSON{{Raw: []byte(`"IPAddress"`)}}
		p.Items.Schema.OneOf = []apiextensionsv1.JSONSchemaProps{
			{Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"type":  {Enum: ipAddress},
				"value": {AnyOf: []apiextensionsv1.JSONSchemaProps{{Format: "ipv4"}, {Format: "ipv6"}}},
			}},
			{Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"type": {Not: &apiextensionsv1.JSONSchemaProps{Enum: ipAddress}},
			}},
		}
	}
	applied := 0
	for _, m := range gatewayEnum.FindAllStringSubmatch(desc, -1) {
		p.Enum = nil
		for v := range strings.SplitSeq(m[1], ";") {
			p.Enum = append(p.Enum, apiextensionsv1.JSON{Raw: []byte(`"` + v + `"`)})
		}
		applied++
	}
	for _, m := range gatewayCEL.FindAllStringSubmatch(desc, -1) {
		p.XValidations = append(p.XValidations, apiextensionsv1.ValidationRule{Message: m[1], Rule: m[2]})
		applied++
	}
	if m := gatewayPattern.FindAllStringSubmatch(desc, -1); len(m) == 1 && p.Pattern == "" {
		p.Pattern = m[0][1]
		applied++
	}
	if n := strings.Count(desc, gatewayValidation); applied != n {
		return p, false, fmt.Errorf("%s: %d of %d standard-channel validation tags understood", path, applied, n)
	}
	desc = gatewayExpDesc.ReplaceAllString(desc, "\n\n")
	desc = gatewayExclude.ReplaceAllString(desc, "\n\n\n")
	desc = gatewayTag.ReplaceAllLiteralString(desc, "")
	p.Description = strings.Trim(extraNewlines.ReplaceAllString(desc, "\n\n\n"), "\n")
	if len(p.Properties) > 0 {
		if err := gatewayStandard(p.Properties, path); err != nil {
			return p, false, err
		}
	} else if p.Items != nil && p.Items.Schema != nil {
		item, keep, err := gatewayProp(*p.Items.Schema, path+"[]")
		if err != nil {
			return p, false, err
		}
		if !keep {
			return p, false, fmt.Errorf("%s: list items marked experimental", path)
		}
		p.Items.Schema = &item
	}
	return p, true, nil
}
