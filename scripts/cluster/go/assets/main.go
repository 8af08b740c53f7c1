// cluster-assets writes the objects the local cluster needs from the Go modules that declare them, and checks the
// PromQL the stacks generate with Prometheus' own parser:
//
//	cluster-assets stages   kwok's Stage objects: nodes initialize and keep a lease; pods become Ready,
//	                        complete and are deleted (what a kubelet would report)
//	cluster-assets crds     the CRDs the stacks register objects of: Karpenter's (NodePool, NodeClaim, ...) from
//	                        the package that embeds them; KEDA's ScaledObject, prometheus-operator's
//	                        ServiceMonitor, PodMonitor and PrometheusRule, Gateway API's GatewayClass, Gateway and
//	                        HTTPRoute, the Inference Extension's InferencePool and InferenceObjective, and
//	                        LeaderWorkerSet generated from their API types at build time (crdgen,
//	                        controller-tools) and embedded here
//	cluster-assets promql   reads one PromQL expression a line on stdin; writes one JSON object a line,
//	                        {"query", "metrics"} (the metric names it selects) or {"query", "error"}; exit 1 when
//	                        any does not parse
//
// stages and crds write a multi-document YAML stream on stdout.
package main

import (
	"bufio"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/karpenter/pkg/apis"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/yaml"
)

// Written by crdgen into the build's copy of this directory before it is built.
//
//go:embed crds/*.yaml
var generated embed.FS

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cluster-assets stages|crds|promql")
		os.Exit(2)
	}
	var docs []string
	switch os.Args[1] {
	case "stages":
		docs = []string{
			nodefast.DefaultNodeInit,
			nodelease.DefaultNodeHeartbeatWithLease,
			podfast.DefaultPodReady,
			podfast.DefaultPodComplete,
			podfast.DefaultPodDelete,
		}
	case "crds":
		docs = crds()
	case "promql":
		if !promql() {
			os.Exit(1)
		}
		return
	default:
		fmt.Fprintf(os.Stderr, "cluster-assets: unknown command %q (stages|crds|promql)\n", os.Args[1])
		os.Exit(2)
	}
	for _, doc := range docs {
		fmt.Printf("---\n%s\n", strings.TrimSpace(strings.TrimPrefix(doc, "---")))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cluster-assets:", err)
	os.Exit(1)
}

func crds() []string {
	var docs []string
	for _, crd := range apis.CRDs {
		out, err := yaml.Marshal(crd)
		if err != nil {
			fail(err)
		}
		docs = append(docs, string(out))
	}
	names, err := fs.Glob(generated, "crds/*.yaml")
	if err != nil {
		fail(err)
	}
	for _, name := range names {
		out, err := generated.ReadFile(name)
		if err != nil {
			fail(err)
		}
		docs = append(docs, string(out))
	}
	return docs
}

type result struct {
	Query   string   `json:"query"`
	Metrics []string `json:"metrics,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// promql parses each line of stdin as Prometheus does (default options) and reports the metric names it selects.
func promql() bool {
	p := parser.NewParser(parser.Options{})
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	ok := true
	for in.Scan() {
		query := in.Text()
		if strings.TrimSpace(query) == "" {
			continue
		}
		r := result{Query: query}
		if expr, err := p.ParseExpr(query); err != nil {
			r.Error, ok = err.Error(), false
		} else {
			r.Metrics = metricNames(expr)
		}
		if err := out.Encode(r); err != nil {
			fail(err)
		}
	}
	if err := in.Err(); err != nil {
		fail(err)
	}
	return ok
}

func metricNames(expr parser.Expr) []string {
	names := []string{}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual && !slices.Contains(names, m.Value) {
					names = append(names, m.Value)
				}
			}
		}
		return nil
	})
	slices.Sort(names)
	return names
}
