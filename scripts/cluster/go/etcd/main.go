// etcd: the etcd server of the local cluster, built from the go.etcd.io/etcd/server/v3 module (Debian's
// etcd is too old for the pinned Kubernetes).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
