// cluster-assets writes the objects the local cluster needs from the Go modules that embed them:
//
//	cluster-assets stages   kwok's Stage objects: nodes initialize and keep a lease; pods become Ready,
//	                        complete and are deleted (what a kubelet would report)
//	cluster-assets crds     Karpenter's CRDs (NodePool, NodeClaim, ...), as the stacks register NodePools
//
// Output is a multi-document YAML stream on stdout.
package main

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/karpenter/pkg/apis"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cluster-assets stages|crds")
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
		for _, crd := range apis.CRDs {
			out, err := yaml.Marshal(crd)
			if err != nil {
				fmt.Fprintln(os.Stderr, "cluster-assets:", err)
				os.Exit(1)
			}
			docs = append(docs, string(out))
		}
	default:
		fmt.Fprintf(os.Stderr, "cluster-assets: unknown asset %q (stages|crds)\n", os.Args[1])
		os.Exit(2)
	}
	for _, doc := range docs {
		fmt.Printf("---\n%s\n", strings.TrimSpace(strings.TrimPrefix(doc, "---")))
	}
}
