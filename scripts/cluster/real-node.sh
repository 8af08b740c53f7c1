# shellcheck shell=bash
# The local cluster's real worker node, sourced by scripts/local-cluster (which defines DIR, PKI, PIDS, LOGS, BIN,
# PORT, say, die, start, stop, alive, cert, kubeconfig and kubectl).
#
# One node that runs pods for real, next to kwok's fake GPU and CPU nodes: containerd and runc (Debian's), the
# CNI bridge and host-local plugins (Debian's containernetworking-plugins), a kubelet built from the pinned
# k8s.io/kubernetes, and metrics-server beside the control plane behind the aggregation layer, so that CPU-based
# HPAs and `kubectl top` work. The app image is built from app/ (scripts/lib-app-image.sh) and imported into the
# node's containerd together with a pause image built from source: nothing is pulled from a registry.
#
# Networking: pods sit on the bridge $NODE_BRIDGE ($NODE_IP/24); the node's IP is the bridge's, which the kubelet
# accepts (it refuses loopback). Pods get no default route and no masquerade: they reach this machine, each other
# and Services only. kube-proxy (iptables mode, a host process like the kubelet: it runs the host's iptables)
# routes Service addresses ($SERVICE_CIDR, reached through the bridge's address) to pods; CoreDNS (an add-on pod,
# scripts/cluster/addons.py) answers for their names at $CLUSTER_DNS. The `kubernetes` Service's
# endpoint is $NODE_IP:$PORT, where lb-standin relays the node's pods (and no one else) to the API server on
# loopback. The LoadBalancer stand-in forwards 127.0.10.x to the pods' addresses itself (ipMode Proxy: kube-proxy
# leaves those addresses alone). NetworkPolicies are enforced on this node by kube-router's firewall (iptables and
# ipset; a host process too), for pod-to-pod traffic on the bridge and for pods' traffic to the node itself.
#
# Host changes, all undone by node_down (the `restore` file records the state before the first change):
# sysctls the kubelet raises (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory) and bridge-nf-call-iptables
# (kube-proxy's rules must see bridged pod-to-pod traffic), the /kubepods cgroups, /var/lib/kubelet/device-plugins
# (a path fixed in the kubelet), /var/log/containers, /var/lib/cni, the bridge and its route to $SERVICE_CIDR,
# kube-proxy's and kube-router's KUBE-* chains (iptables and ip6tables), kube-proxy's nfacct counters, kube-router's
# ipsets, and the mounts under the node's
# directories.

NODE_NAME=model-serving-node
NODE_LABEL=model-serving.dev/node=local # the local stack's nodeSelector; the taint keeps other stacks' pods off
NODE_BRIDGE=msnode0
NODE_IP=10.89.0.1
NODE_SUBNET=10.89.0.0/24
NODE_DIR="$DIR/node"
NODE_RUN="/run/model-serving-$PORT" # containerd's socket and state: a short path (unix sockets cap at 108 bytes)
NODE_SOCK="$NODE_RUN/containerd.sock"
KUBELET_PORT=$((PORT + 6)) KUBELET_HEALTHZ_PORT=$((PORT + 7)) METRICS_PORT=$((PORT + 8))
PROXY_HEALTHZ_PORT=$((PORT + 9)) PROXY_METRICS_PORT=$((PORT + 10))
NODE_GPUS=2 # what the node advertises of the e2e pool's GPU resource (node_gpus)
CLUSTER_DNS=10.96.0.10 # the kube-dns Service's address (addons.py), in every pod's resolv.conf
# shellcheck disable=SC2034  # read by scripts/local-cluster, which sources this file
NODE_COMPONENTS=(containerd kubelet kube-proxy kube-router metrics-server)
NODE_SYSCTLS=(kernel/panic kernel/panic_on_oops vm/overcommit_memory net/bridge/bridge-nf-call-iptables)
# What kube-proxy leaves in the host's netfilter after `kube-proxy --cleanup`: the KUBE-FIREWALL chain it shares
# with the kubelet (filter, jumped to from INPUT and OUTPUT) and the nfacct counters of its metrics.
PROXY_NFACCT=(ct_state_invalid_dropped_pkts localhost_nps_accepted_pkts)
NODE_HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni)
NODE_HOST_RUN_DIRS=(/run/containerd /run/netns) # shim sockets, runc state, netns mounts: removed when left empty
PAUSE_IMAGE=model-serving.local/pause:local
APP_IMAGE=model-serving/server:local # the local stack's image.ref values; .cluster/images.json pins them by digest
LLAMACPP_IMAGE=model-serving/llamacpp:local
PRESTAGE_IMAGE=model-serving/prestage:local # app/prestage: what the tests' pre-staged models download with
MODEL_IMAGES=("$APP_IMAGE" "$LLAMACPP_IMAGE" "$PRESTAGE_IMAGE")
IMAGE_LOCK="$DIR/images.json"

node_enabled() { [[ ${CLUSTER_REAL_NODE:-1} == 1 ]]; }

node_need_tools() {
	local t missing=()
	[[ $(id -u) == 0 ]] || die "the real node runs a kubelet and containerd as root; run as root," \
		"or CLUSTER_REAL_NODE=0 for a control plane with fake nodes only"
	for t in kubelet kube-proxy kube-router metrics-server crictl pause; do
		[[ -x "$BIN/$t" ]] || die "$BIN/$t is missing: run scripts/install-k8s (make cluster-up does)"
	done
	command -v containerd >/dev/null && command -v ctr >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	command -v ip >/dev/null || missing+=(iproute2)
	[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || missing+=(containernetworking-plugins)
	command -v iptables-save >/dev/null && command -v ip6tables-save >/dev/null || missing+=(iptables)
	command -v nfacct >/dev/null || missing+=(nfacct)
	command -v ipset >/dev/null || missing+=(ipset)
	((${#missing[@]} == 0)) && return 0
	say "installing ${missing[*]} (Debian's packages) for the real node"
	# The packages' init scripts must not start a system containerd: the node runs its own.
	local added_policy=0 rc=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		added_policy=1
	fi
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null; } || rc=$?
	((added_policy)) && rm -f /usr/sbin/policy-rc.d
	((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"
}

ctr_() { ctr --address "$NODE_SOCK" --namespace k8s.io "$@"; }
crictl_() { "$BIN/crictl" --runtime-endpoint "unix://$NODE_SOCK" --timeout 30s "$@"; }

# ---------------------------------------------------------------------------------------------------
# host state

node_record_host() {
	[[ -f "$NODE_DIR/restore" ]] && return 0 # a crashed run's record holds the original values: keep it
	local s p
	for p in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -e $p ]] && die "$p exists: another kubelet runs on this machine; stop it or use CLUSTER_REAL_NODE=0"
	done
	[[ -z $(netfilter_leftovers) ]] || die "the host's netfilter has kube-proxy's or kube-router's chains already (another" \
		"Kubernetes node runs on this machine): $(netfilter_leftovers | tr '\n' ' '); stop it or use CLUSTER_REAL_NODE=0"
	[[ -d /proc/sys/net/bridge ]] || die "bridged traffic does not reach iptables (no /proc/sys/net/bridge: the" \
		"kernel lacks br_netfilter); kube-proxy's Service rules need it"
	mkdir -p "$NODE_DIR"
	{
		for s in "${NODE_SYSCTLS[@]}"; do printf 'sysctl %s %s\n' "$s" "$(<"/proc/sys/$s")"; done
		for p in "${NODE_HOST_PATHS[@]}"; do [[ -e $p ]] || printf 'created %s\n' "$p"; done
		for p in "${NODE_HOST_RUN_DIRS[@]}"; do [[ -e $p ]] || printf 'created-dir %s\n' "$p"; done
	} >"$NODE_DIR/restore.tmp"
	mv "$NODE_DIR/restore.tmp" "$NODE_DIR/restore"
}

node_restore_host() {
	[[ -f "$NODE_DIR/restore" ]] || return 0
	local kind what value
	while read -r kind what value; do
		case $kind in
		sysctl) echo "$value" >"/proc/sys/$what" ;;
		created) [[ -e $what ]] && rm -rf --one-file-system "$what" ;;
		created-dir) [[ -d $what ]] && find "$what" -depth -type d -empty -delete ;;
		esac
	done <"$NODE_DIR/restore"
	rm -f "$NODE_DIR/restore"
}

# unmount_under DIR: every mount point below DIR, deepest first.
unmount_under() {
	local mnt
	awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	done
}

# The kubelet's /kubepods cgroups (cgroupfs driver), in every hierarchy, deepest first: empty once pods are gone.
remove_kubepods_cgroups() {
	local top
	for top in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $top ]] && find "$top" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	return 0
}

# ---------------------------------------------------------------------------------------------------
# certificates, configuration

node_pki() {
	[[ -f "$PKI/kubelet-$NODE_IP.crt" && -f "$PKI/kube-proxy.crt" && -f "$PKI/kube-router.crt" ]] && return 0
	(
		cd "$PKI"
		cert node "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
		cert kube-proxy "/CN=system:kube-proxy" clientAuth # bound to system:node-proxier by default
		cert kube-router "/CN=system:kube-router" clientAuth # bound by kube-router-rbac.yaml (node_config)
		cert "kubelet-$NODE_IP" "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
	)
}

node_config() {
	mkdir -p "$NODE_DIR/cni" "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs" "$NODE_DIR/containerd" "$NODE_RUN"
	kubeconfig "$NODE_DIR/kubelet.kubeconfig" node
	kubeconfig "$NODE_DIR/kube-proxy.kubeconfig" kube-proxy
	kubeconfig "$NODE_DIR/kube-router.kubeconfig" kube-router
	kubeconfig "$DIR/metrics-server.kubeconfig" metrics-server
	cat >"$NODE_DIR/containerd.toml" <<-EOF
		version = 2
		root = "$NODE_DIR/containerd"
		state = "$NODE_RUN/containerd"
		disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
		  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
		  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
		[grpc]
		  address = "$NODE_SOCK"
		[ttrpc]
		  address = "$NODE_SOCK.ttrpc"
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$NODE_DIR/containerd-opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$PAUSE_IMAGE"
		  # Root here lacks CAP_SYS_RESOURCE: without this, runc fails every container on oom_score_adj.
		  restrict_oom_score_adj = true
		  stream_server_address = "127.0.0.1"
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "$NODE_DIR/cni"
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        SystemdCgroup = false
		    # The GPU pool's RuntimeClass handler: plain runc here (no GPU to expose), so GPU pods run as on a node
		    # whose nvidia runtime is installed.
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
		        SystemdCgroup = false
	EOF
	# No default route, no masquerade: pods reach this machine's bridge address, each other and Services (through
	# the bridge's address, where kube-proxy's rules catch them), nothing else. Hairpin: a pod reaches itself
	# through its Service.
	cat >"$NODE_DIR/cni/10-model-serving.conflist" <<-EOF
		{
		  "cniVersion": "1.0.0",
		  "name": "model-serving",
		  "plugins": [
		    {"type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": true,
		     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$NODE_SUBNET", "gateway": "$NODE_IP"}]],
		              "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}], "dataDir": "$NODE_DIR/ipam"}},
		    {"type": "loopback"}
		  ]
		}
	EOF
	cat >"$NODE_DIR/kubelet.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		address: $NODE_IP
		port: $KUBELET_PORT
		readOnlyPort: 0
		healthzBindAddress: 127.0.0.1
		healthzPort: $KUBELET_HEALTHZ_PORT
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: true}
		  x509: {clientCAFile: $PKI/ca.crt}
		authorization: {mode: Webhook}
		tlsCertFile: $PKI/kubelet-$NODE_IP.crt
		tlsPrivateKeyFile: $PKI/kubelet-$NODE_IP.key
		containerRuntimeEndpoint: unix://$NODE_SOCK
		# This machine: cgroup v1, no systemd as PID 1; containerd uses cgroupfs too (SystemdCgroup = false).
		cgroupDriver: cgroupfs
		failCgroupV1: false
		failSwapOn: false
		makeIPTablesUtilChains: false
		podLogsDir: $NODE_DIR/pod-logs
		registerWithTaints:
		- {key: ${NODE_LABEL%%=*}, value: ${NODE_LABEL#*=}, effect: NoSchedule}
		maxPods: 32
		clusterDNS: [$CLUSTER_DNS]
		clusterDomain: cluster.local
		# The imported images cannot be pulled again: never garbage-collect them, never evict for disk.
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
		nodeStatusReportFrequency: 10s
		serializeImagePulls: false
	EOF
	# kube-router's firewall reads the node, its pods, namespaces and NetworkPolicies (and watches Services and
	# endpoints, as its informers start for every mode).
	cat >"$NODE_DIR/kube-router-rbac.yaml" <<-EOF
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRole
		metadata: {name: "system:kube-router"}
		rules:
		- apiGroups: [""]
		  resources: [namespaces, pods, services, nodes, endpoints]
		  verbs: [get, list, watch]
		- apiGroups: [discovery.k8s.io]
		  resources: [endpointslices]
		  verbs: [get, list, watch]
		- apiGroups: [networking.k8s.io]
		  resources: [networkpolicies]
		  verbs: [get, list, watch]
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRoleBinding
		metadata: {name: "system:kube-router"}
		roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kube-router"}
		subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-router"}]
	EOF
	cat >"$NODE_DIR/metrics-apiservice.yaml" <<-EOF
		apiVersion: v1
		kind: Service
		metadata: {name: metrics-server, namespace: kube-system}
		spec:
		  type: ExternalName
		  externalName: localhost
		  ports: [{name: https, port: $METRICS_PORT}]
		---
		apiVersion: apiregistration.k8s.io/v1
		kind: APIService
		metadata: {name: v1beta1.metrics.k8s.io}
		spec:
		  group: metrics.k8s.io
		  version: v1beta1
		  service: {name: metrics-server, namespace: kube-system, port: $METRICS_PORT}
		  caBundle: $(base64 -w0 <"$PKI/ca.crt")
		  groupPriorityMinimum: 100
		  versionPriority: 100
	EOF
}

# ---------------------------------------------------------------------------------------------------
# images

# Build the local stack's images (the embeddings server's, llama.cpp's) and a pause image with a private Docker
# daemon, import them into the node's containerd (skipped when an image did not change) and write the lock that pins
# the stack's images by digest.
node_images() {
	local cache=${IMAGE_TEST_CACHE:-$(cache_root)/images} data_root=${IMAGE_TEST_DOCKER_DATA_ROOT:-$(cache_root)/docker}
	(
		set -Eeuo pipefail
		export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
		DOCKER_LIB_NAME=real-node
		# shellcheck source=../lib-docker.sh disable=SC2153  # ROOT: set by scripts/local-cluster
		source "$ROOT/scripts/lib-docker.sh"
		# shellcheck source=../lib-app-image.sh
		source "$ROOT/scripts/lib-app-image.sh"
		# shellcheck source=../lib-llamacpp-image.sh
		source "$ROOT/scripts/lib-llamacpp-image.sh"
		mkdir -p "$cache"
		exec 8>"$cache/.lock" # scripts/image-test shares the daemon's data root and the caches
		flock -w 1800 8 || die "timed out waiting for $cache/.lock"
		trap docker_lib_stop_daemon EXIT
		docker_lib_ensure_tools
		docker_lib_start_daemon "$data_root"
		app_image "$cache" "$APP_IMAGE" "$LOGS/app-image-build.log"
		llamacpp_image "$cache" "$LLAMACPP_IMAGE" "$LOGS/llamacpp-image-build.log"
		prestage_image "$cache" "$PRESTAGE_IMAGE" "$LOGS/prestage-image-build.log"
		local image
		for image in "${MODEL_IMAGES[@]}"; do import_image "$image" "docker.io/$image"; done
		if ! ctr_ images ls -q | grep -qx "$PAUSE_IMAGE"; then
			local rootfs
			rootfs=$(mktemp -d)
			cp "$BIN/pause" "$rootfs/pause"
			tar -C "$rootfs" --owner=0 --group=0 --mtime=@0 -cf "$rootfs.tar" pause
			"$DOCKER" import --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' "$rootfs.tar" \
				"$PAUSE_IMAGE" >/dev/null
			rm -rf "$rootfs" "$rootfs.tar"
			"$DOCKER" save "$PAUSE_IMAGE" | ctr_ images import - >/dev/null
		fi
		local ref binary
		while read -r ref binary; do addon_image "$ref" "$binary"; done < <("$PY" "$ROOT/scripts/cluster/addons.py" images)
	)
	local image name digest entries=()
	for image in "${MODEL_IMAGES[@]}" "$("$PY" "$ROOT/scripts/cluster/addons.py" stand-in-image)"; do
		name=$image
		[[ ${image%%/*} == *.* ]] || name=docker.io/$image # no registry host: Docker's name (the model images)
		digest=$(ctr_ images ls "name==$name" | awk 'NR == 2 { print $3 }')
		[[ $digest == sha256:* ]] || die "the image $image is not in the node's containerd"
		# The kubelet asks for repository@digest: give the image that name too.
		ctr_ images tag --force "$name" "${name%:*}@$digest" >/dev/null
		entries+=("\"$image\": \"${name%:*}@$digest\"")
		say "image $image imported as ${name%:*}@$digest"
	done
	local IFS=,
	printf '{%s}\n' "${entries[*]}" >"$IMAGE_LOCK.tmp"
	mv "$IMAGE_LOCK.tmp" "$IMAGE_LOCK"
	say "the local stack's images (and the vLLM stand-in's) are pinned by digest in .cluster/images.json"
}

# addon_image REF BINARY: an image of .tools/bin/BINARY alone (at /bin/BINARY, its entrypoint, run as nobody) in the
# node's containerd as REF, unless it holds that very build already. Called inside node_images' subshell.
# shellcheck disable=SC2031
addon_image() {
	local ref=$1 binary=$2 exe key marker rootfs
	exe=$(readlink -f "$BIN/$binary") || die "$BIN/$binary is missing: run scripts/install-k8s"
	key="$exe $(stat -c '%s %Y' "$exe")"
	marker=$NODE_DIR/images/addon_$binary
	if [[ -f $marker && $(<"$marker") == "$key" ]] && ctr_ images ls -q | grep -qxF "$ref"; then
		return 0
	fi
	docker_lib_log "importing $binary into the node's containerd as $ref"
	rootfs=$(mktemp -d)
	mkdir "$rootfs/bin"
	cp "$exe" "$rootfs/bin/$binary"
	tar -C "$rootfs" --owner=0 --group=0 --mtime=@0 -cf "$rootfs.tar" bin
	"$DOCKER" import --change "ENTRYPOINT [\"/bin/$binary\"]" --change "USER 65534:65534" "$rootfs.tar" "$ref" >/dev/null
	rm -rf "$rootfs" "$rootfs.tar"
	"$DOCKER" save "$ref" | ctr_ images import - >/dev/null
	"$DOCKER" image rm "$ref" >/dev/null # containerd keeps it; Docker's data root need not
	mkdir -p "$NODE_DIR/images"
	echo "$key" >"$marker"
}

# import_image DOCKER_TAG CONTAINERD_NAME: docker save | ctr import, unless containerd has that very image (its
# config digest is Docker's image ID). Called inside node_images' subshell, where lib-docker.sh set DOCKER.
# shellcheck disable=SC2031
import_image() {
	local id have marker=$NODE_DIR/images/${2//[\/:]/_}
	id=$("$DOCKER" image inspect -f '{{.Id}}' "$1")
	have=$(ctr_ images ls "name==$2" 2>/dev/null | awk 'NR == 2 { print $1 }')
	if [[ -n $have && -f $marker && $(<"$marker") == "$id" ]]; then
		docker_lib_log "$1 is already in the node's containerd"
		return 0
	fi
	docker_lib_log "importing $1 into the node's containerd"
	"$DOCKER" save "$1" | ctr_ images import - >/dev/null
	mkdir -p "$NODE_DIR/images"
	echo "$id" >"$marker"
}

# ---------------------------------------------------------------------------------------------------
# up / down / status

node_up() {
	node_need_tools
	local start=$SECONDS
	node_record_host
	node_pki
	node_config
	# The bridge first: its address is the node IP the kubelet registers with.
	if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
		ip link add "$NODE_BRIDGE" type bridge
		ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
	fi
	ip link set "$NODE_BRIDGE" up
	# Host processes (the API server proxying to an aggregated API, the tests) reach Service addresses from the
	# bridge's, as pods do; the route goes with the bridge.
	ip route replace "$SERVICE_CIDR" dev "$NODE_BRIDGE" src "$NODE_IP"
	echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
	say "starting containerd (socket $NODE_SOCK)"
	start containerd --config "$NODE_DIR/containerd.toml"
	wait_for containerd 30 ctr_ version
	node_images
	say "starting the kubelet of $NODE_NAME ($NODE_IP:$KUBELET_PORT) and metrics-server (127.0.0.1:$METRICS_PORT)"
	start kubelet --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$NODE_DIR/kubelet.kubeconfig" \
		--root-dir "$NODE_DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
		--node-labels "$NODE_LABEL" --v 1
	# --iptables-localhost-nodeports=false: or it sets net.ipv4.conf.all.route_localnet=1; conntrack 0s: or it
	# rewrites the host's conntrack sysctls; NodePorts only on the bridge's address; oom-score-adj: root here may
	# not lower it.
	start kube-proxy --kubeconfig "$NODE_DIR/kube-proxy.kubeconfig" --hostname-override "$NODE_NAME" \
		--proxy-mode iptables --bind-address "$NODE_IP" --cluster-cidr "$NODE_SUBNET" \
		--nodeport-addresses "$NODE_IP/32" --iptables-localhost-nodeports=false \
		--conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0s --conntrack-tcp-timeout-close-wait 0s \
		--oom-score-adj 0 --healthz-bind-address "127.0.0.1:$PROXY_HEALTHZ_PORT" \
		--metrics-bind-address "127.0.0.1:$PROXY_METRICS_PORT" --v 1
	start metrics-server --secure-port "$METRICS_PORT" --bind-address 127.0.0.1 \
		--tls-cert-file "$PKI/metrics-server-serving.crt" --tls-private-key-file "$PKI/metrics-server-serving.key" \
		--kubeconfig "$DIR/metrics-server.kubeconfig" --authentication-kubeconfig "$DIR/metrics-server.kubeconfig" \
		--authorization-kubeconfig "$DIR/metrics-server.kubeconfig" \
		--kubelet-client-certificate "$PKI/metrics-server.crt" --kubelet-client-key "$PKI/metrics-server.key" \
		--kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
		--kubelet-use-node-status-port --node-selector "$NODE_LABEL" --metric-resolution 15s --profiling=false
	kubectl apply --server-side -f "$NODE_DIR/metrics-apiservice.yaml" >/dev/null
	wait_for "node $NODE_NAME" 120 kubectl wait --for condition=Ready "node/$NODE_NAME" --timeout 5s
	node_gpus
	# NetworkPolicies: kube-router's firewall alone (iptables and ipset; its BGP router and service proxy off), once
	# the node is registered (it reads its address there), before any pod runs (the add-ons come after). No health
	# or metrics port: both would listen on every address, pods' reach included; its chains are its readiness.
	kubectl apply --server-side -f "$NODE_DIR/kube-router-rbac.yaml" >/dev/null
	start kube-router --kubeconfig "$NODE_DIR/kube-router.kubeconfig" --hostname-override "$NODE_NAME" \
		--run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
		--service-cluster-ip-range "$SERVICE_CIDR" --health-port 0 --metrics-port 0 --v 1
	wait_for kube-proxy 60 curl -fsS "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
	wait_for kube-router 60 iptables -w -n -L KUBE-ROUTER-FORWARD
	wait_for "metrics-server" 120 kubectl wait --for condition=Available apiservice/v1beta1.metrics.k8s.io --timeout 5s
	say "real node $NODE_NAME ready in $((SECONDS - start))s"
}

# node_gpus: the real node holds $NODE_GPUS GPUs of the e2e stack's pool for the scheduler (its labels, and its GPU
# resource patched into the node's status as an extended resource); the kubelet keeps a capacity no device plugin
# claims. Pods that choose the node (its taint) and ask for GPUs are admitted against them and run, without a GPU.
node_gpus() {
	local labels patch
	{
		read -r labels
		read -r patch
	} < <("$PY" "$ROOT/scripts/cluster/nodes.py" --stack e2e --real-node-gpus "$NODE_GPUS")
	# shellcheck disable=SC2086  # labels: key=value words
	kubectl label node "$NODE_NAME" $labels --overwrite >/dev/null
	kubectl patch node "$NODE_NAME" --subresource status --type merge -p "$patch" >/dev/null
}

node_down() {
	local quiet=${1:-} c i
	node_enabled || [[ -f "$PIDS/containerd.pid" || -f "$NODE_DIR/restore" ]] || return 0
	for c in metrics-server kube-router kube-proxy kubelet; do
		[[ -f "$PIDS/$c.pid" ]] || continue
		[[ $quiet == quiet ]] || say "stopping $c"
		stop "$c"
	done
	if alive containerd; then
		# Through the CRI, so that each pod's network is torn down (veth, address) before its sandbox goes.
		[[ $quiet == quiet ]] || say "removing the real node's pods"
		crictl_ rmp --force --all >/dev/null 2>&1 || true
		for ((i = 0; i < 50; i++)); do
			[[ -z $(crictl_ pods -q 2>/dev/null) ]] && break
			sleep 0.2
		done
		[[ $quiet == quiet ]] || say "stopping containerd"
	fi
	[[ -f "$PIDS/containerd.pid" ]] && stop containerd
	unmount_under "$NODE_DIR"
	unmount_under "$NODE_RUN"
	remove_kubepods_cgroups
	ip link del "$NODE_BRIDGE" 2>/dev/null || true
	netfilter_cleanup
	rm -rf "$NODE_RUN" "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs" "$NODE_DIR/ipam" "$NODE_DIR/volumes"
	node_restore_host
	node_leftovers
}

# node_leftovers: fail, naming them, if mounts, cgroups, the bridge or host paths of the node remain.
node_leftovers() {
	local left=() p
	while read -r p; do left+=("mount $p"); done < <(awk -v a="$NODE_DIR/" -v b="$NODE_RUN/" \
		'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/mounts)
	for p in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do [[ -e $p ]] && left+=("cgroup $p"); done
	ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && left+=("bridge $NODE_BRIDGE")
	while read -r p; do left+=("netfilter $p"); done < <(netfilter_leftovers)
	[[ -e "$NODE_DIR/restore" ]] && left+=("unrestored host settings ($NODE_DIR/restore)")
	((${#left[@]} == 0)) && return 0
	printf 'local-cluster: the real node left: %s\n' "${left[@]}" >&2
	return 1
}

# netfilter_cleanup: kube-proxy's own cleanup, then what it leaves (KUBE-FIREWALL and its jumps, in both families;
# its nfacct counters) and kube-router's chains (KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-*: the same KUBE- prefix)
# and ipsets. Only ever run when the host had none of these before `up` (node_record_host checks).
netfilter_cleanup() {
	[[ -x "$BIN/kube-proxy" ]] && command -v iptables-save >/dev/null || return 0
	[[ -n $(netfilter_leftovers) ]] || return 0
	"$BIN/kube-proxy" --cleanup --v 0 >>"$LOGS/kube-proxy.log" 2>&1 || true
	local family table rule chain name
	for family in iptables ip6tables; do
		# Jumps from the built-in chains first, then the chains themselves (flushed, then deleted).
		while read -r table rule; do
			eval "$family -w -t $table -D ${rule#-A }" || true
		done < <("$family-save" 2>/dev/null | awk '/^\*/ { table = substr($0, 2) }
			/^-A / && $2 !~ /^KUBE-/ && / -j KUBE-/ { print table, $0 }')
		while read -r table chain; do
			"$family" -w -t "$table" -F "$chain" || true
		done < <(kube_chains "$family")
		while read -r table chain; do
			"$family" -w -t "$table" -X "$chain" || true
		done < <(kube_chains "$family")
	done
	for name in "${PROXY_NFACCT[@]}"; do
		nfacct get "$name" >/dev/null 2>&1 && nfacct delete "$name" >/dev/null
	done
	# kube-router's sets, once no rule refers to them.
	while read -r name; do ipset destroy "$name" 2>/dev/null || true; done < <(router_ipsets)
	return 0
}

# router_ipsets: the ipsets kube-router's firewall makes (its policies' sources and destinations, and the temporary
# sets of a sync it was stopped in), one name a line.
router_ipsets() {
	command -v ipset >/dev/null || return 0
	ipset list -n 2>/dev/null | grep -E '^(inet6:)?(KUBE-|TMP-)' || true
}

# kube_chains FAMILY: "table chain" for each KUBE-* chain of FAMILY (iptables or ip6tables).
kube_chains() {
	"$1-save" 2>/dev/null | awk '/^\*/ { table = substr($0, 2) } /^:KUBE-/ { print table, substr($1, 2) }'
}

# netfilter_leftovers: one line for each kube-proxy or kube-router chain, counter or set in the host's netfilter. The legacy tables are
# read only where they exist (listing one with iptables-legacy would create it).
netfilter_leftovers() {
	local family name
	command -v iptables-save >/dev/null || return 0
	for family in iptables ip6tables; do
		kube_chains "$family" | sed "s/^/$family /"
	done
	if [[ -s /proc/net/ip_tables_names ]] && command -v iptables-legacy-save >/dev/null; then
		iptables-legacy-save 2>/dev/null | awk '/^\*/ { table = substr($0, 2) } /^:KUBE-/ { print "iptables-legacy", table, substr($1, 2) }'
	fi
	if command -v nfacct >/dev/null; then
		for name in "${PROXY_NFACCT[@]}"; do
			nfacct get "$name" >/dev/null 2>&1 && echo "nfacct $name"
		done
	fi
	router_ipsets | sed 's/^/ipset /'
	return 0
}

# ---------------------------------------------------------------------------------------------------
# add-ons: CoreDNS, Prometheus (operator, server, kube-state-metrics), KEDA, the LeaderWorkerSet controller and
# local-path-provisioner (scripts/cluster/addons.py)

node_addons() {
	local start=$SECONDS ns
	"$PY" "$ROOT/scripts/cluster/addons.py" | kubectl apply --server-side --force-conflicts -f - >/dev/null
	# DNS first: KEDA's adapter dials its operator by name, and the operator's rotator patches the APIService.
	wait_for CoreDNS 120 kubectl -n kube-system wait --for condition=Available deployment/coredns --timeout 5s
	ns=$("$PY" "$ROOT/scripts/cluster/addons.py" prometheus-service)
	ns=${ns%%/*}
	wait_for "prometheus-operator and kube-state-metrics" 120 kubectl -n "$ns" wait --for condition=Available \
		deployment/prometheus-operator deployment/kube-state-metrics --timeout 5s
	wait_for "KEDA" 180 kubectl -n keda wait --for condition=Available deployment/keda-operator \
		deployment/keda-metrics-apiserver --timeout 5s
	wait_for "Prometheus" 180 kubectl -n "$ns" wait --for condition=Available prometheus/local --timeout 5s
	wait_for "KEDA's external metrics API" 120 kubectl wait --for condition=Available \
		apiservice/v1beta1.external.metrics.k8s.io --timeout 5s
	wait_for "local-path-provisioner" 120 kubectl -n local-path-storage wait --for condition=Available \
		deployment/local-path-provisioner --timeout 5s
	# Ready once the API server admits a LeaderWorkerSet through both webhooks (their caBundle is the rotator's).
	wait_for "the LeaderWorkerSet controller and its webhooks" 180 lws_admits
	say "add-ons ready in $((SECONDS - start))s; Prometheus at $(addons_prometheus_url)"
}

# lws_admits: a LeaderWorkerSet passes the controller's webhooks (a server-side dry run, nothing is created).
lws_admits() {
	kubectl create --dry-run=server -f - <<-EOF
		{"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
		 "metadata": {"name": "admission-check", "namespace": "default"},
		 "spec": {"leaderWorkerTemplate": {"size": 2, "workerTemplate": {"spec": {"containers": [
		   {"name": "c", "image": "$PAUSE_IMAGE"}]}}}}}
	EOF
}

# addons_prometheus_url: http://ADDRESS:PORT of the Prometheus LoadBalancer Service (empty until it has one).
addons_prometheus_url() {
	local svc ip
	svc=$("$PY" "$ROOT/scripts/cluster/addons.py" prometheus-service) || return 0
	ip=$(kubectl -n "${svc%%/*}" get service "${svc#*/}" -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null)
	[[ -n $ip ]] && echo "http://$ip:9090"
	return 0
}
