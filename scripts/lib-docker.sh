# shellcheck shell=bash
# Helpers for scripts that need a Docker daemon and locally made base images,
# on a machine that reaches Debian's mirrors but no image registry.
# Source it; it defines functions only. Callers set `set -Eeuo pipefail`.
#
#   docker_lib_log MSG            progress line on stderr
#   docker_lib_die MSG            error line, exit 1
#   docker_lib_ensure_tools       apt-get install docker.io/debootstrap if missing
#   docker_lib_start_daemon DIR   reuse a running daemon or start a private one
#   docker_lib_stop_daemon        stop the daemon only if docker_lib_start_daemon started it
#   docker_lib_pip_download WHAT DIR PIP_ARGS...   pip download for an offline build
#   docker_lib_debian_base TAG PACKAGES CACHE_DIR
#                                 debootstrap+import a Debian image once (cached)

DOCKER_LIB_STARTED_PID=""
DOCKER_LIB_RUN_DIR=""
DOCKER=${DOCKER:-}
DOCKER_LIB_T0=${DOCKER_LIB_T0:-$SECONDS}

docker_lib_log() { printf '[%s +%4ss] %s\n' "${DOCKER_LIB_NAME:-docker}" "$((SECONDS - DOCKER_LIB_T0))" "$*" >&2; }
docker_lib_die() {
	printf '[%s] ERROR: %s\n' "${DOCKER_LIB_NAME:-docker}" "$*" >&2
	exit 1
}

# The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org.
docker_lib_debian_mirror() {
	if [[ -n ${DEBIAN_MIRROR:-} ]]; then
		echo "$DEBIAN_MIRROR"
		return
	fi
	local uri
	uri=$(
		{
			grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
			grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
				sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}'
		} | grep -E '/debian/?$' | grep -v -- '-security' | head -n1
	)
	echo "${uri:-http://deb.debian.org/debian}"
}

docker_lib_ensure_tools() {
	local missing=()
	command -v dockerd >/dev/null || missing+=(docker.io)
	[[ -x /usr/bin/docker ]] || command -v docker >/dev/null || missing+=(docker.io)
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	if ((${#missing[@]})); then
		[[ $(id -u) == 0 ]] || docker_lib_die "need ${missing[*]} installed (run as root to let this script apt-get them)"
		docker_lib_log "installing ${missing[*]} with apt-get"
		# Keep the package's init script from starting a system daemon: this
		# script starts its own on a private socket.
		local added_policy=0
		if [[ ! -e /usr/sbin/policy-rc.d ]]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod +x /usr/sbin/policy-rc.d
			added_policy=1
		fi
		local rc=0
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null; } || rc=$?
		((added_policy)) && rm -f /usr/sbin/policy-rc.d
		((rc == 0)) || docker_lib_die "apt-get install ${missing[*]} failed (exit $rc)"
	fi
	# The client that matches the daemon Debian installs; any other on PATH as a fallback.
	if [[ -z $DOCKER ]]; then
		if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker); fi
	fi
	export DOCKER
}

# Use the daemon at DOCKER_HOST / the default socket if one answers; otherwise
# start dockerd on a private socket with its data root in $1.
docker_lib_start_daemon() {
	local data_root=$1
	if "$DOCKER" info >/dev/null 2>&1; then
		docker_lib_log "using the running Docker daemon (${DOCKER_HOST:-default socket})"
		return
	fi
	[[ $(id -u) == 0 ]] || docker_lib_die "no Docker daemon answers and starting one needs root"
	DOCKER_LIB_RUN_DIR=$(mktemp -d /tmp/model-serving-docker.XXXXXX)
	mkdir -p "$data_root"
	docker_lib_log "starting dockerd (socket $DOCKER_LIB_RUN_DIR/docker.sock, data root $data_root)"
	# No iptables and no bridge: containers use the host network, traffic stays on loopback.
	dockerd \
		--host "unix://$DOCKER_LIB_RUN_DIR/docker.sock" \
		--data-root "$data_root" \
		--exec-root "$DOCKER_LIB_RUN_DIR/exec" \
		--pidfile "$DOCKER_LIB_RUN_DIR/docker.pid" \
		--iptables=false --ip-masq=false --bridge=none \
		>"$DOCKER_LIB_RUN_DIR/dockerd.log" 2>&1 &
	DOCKER_LIB_STARTED_PID=$!
	export DOCKER_HOST="unix://$DOCKER_LIB_RUN_DIR/docker.sock"
	local i
	for ((i = 0; i < 120; i++)); do
		if "$DOCKER" info >/dev/null 2>&1; then
			docker_lib_log "dockerd is up (pid $DOCKER_LIB_STARTED_PID)"
			return
		fi
		if ! kill -0 "$DOCKER_LIB_STARTED_PID" 2>/dev/null; then
			tail -n 30 "$DOCKER_LIB_RUN_DIR/dockerd.log" >&2 || true
			DOCKER_LIB_STARTED_PID=""
			docker_lib_die "dockerd exited during start-up (log above)"
		fi
		sleep 0.5
	done
	tail -n 30 "$DOCKER_LIB_RUN_DIR/dockerd.log" >&2 || true
	docker_lib_die "dockerd did not answer within 60s (log above)"
}

docker_lib_stop_daemon() {
	local pid=$DOCKER_LIB_STARTED_PID
	[[ -n $pid ]] || return 0
	DOCKER_LIB_STARTED_PID=""
	docker_lib_log "stopping the dockerd this script started (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 60; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		docker_lib_log "dockerd did not stop in 30s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	if [[ -n $DOCKER_LIB_RUN_DIR ]]; then
		# dockerd leaves its default network namespace mounted under the exec root.
		local mnt
		awk -v dir="$DOCKER_LIB_RUN_DIR/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r |
			while read -r mnt; do umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; done
		rm -rf "$DOCKER_LIB_RUN_DIR"
	fi
	DOCKER_LIB_RUN_DIR=""
}

# docker_lib_pip_download WHAT DIR PIP_ARGS...: pip download (no dependencies) into DIR with the project's venv's
# pip (the host's python3 without one), for an offline image build; dies naming WHAT when it fails. ROOT: the caller's.
# shellcheck disable=SC2153
docker_lib_pip_download() {
	local what=$1 dir=$2 py=python3
	shift 2
	[[ -x $ROOT/.venv/bin/python ]] && py=$ROOT/.venv/bin/python
	"$py" -m pip download --quiet --disable-pip-version-check --no-deps -d "$dir" "$@" ||
		docker_lib_die "pip download of $what failed"
}

docker_lib_image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# Make a Debian image with PACKAGES (comma separated) once: reuse the tagged
# image, else import a cached rootfs tarball, else debootstrap one (slimmed
# like Debian's "slim" images: no docs, man pages, locales or apt lists).
docker_lib_debian_base() {
	local tag=$1 packages=$2 cache=$3
	local suite=${DEBIAN_SUITE:-bookworm}
	local key tarball
	key=$(printf '%s|%s|slim-v1' "$suite" "$packages" | sha256sum | cut -c1-12)
	tarball="$cache/rootfs-$suite-$key.tar"
	if docker_lib_image_exists "$tag"; then
		docker_lib_log "base image $tag: cached"
		return
	fi
	if [[ ! -s $tarball ]]; then
		[[ $(id -u) == 0 ]] || docker_lib_die "debootstrap needs root"
		local mirror rootfs
		mirror=$(docker_lib_debian_mirror)
		docker_lib_remove_stale_rootfs "$cache"
		rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
		mkdir -p "$cache/debs"
		docker_lib_log "debootstrap $suite ($packages) from $mirror — a few minutes, once"
		if ! debootstrap --variant=minbase --include="$packages" --cache-dir="$cache/debs" \
			"$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
			tail -n 30 "$rootfs.log" >&2 || true
			tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
			rm -rf "$rootfs"
			docker_lib_die "debootstrap failed (log above)"
		fi
		rm -f "$rootfs.log"
		docker_lib_slim_rootfs "$rootfs"
		tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$rootfs"
	fi
	docker_lib_log "importing $tarball as $tag"
	"$DOCKER" import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'CMD ["/bin/bash"]' \
		"$tarball" "$tag" >/dev/null
}

# Leftovers of an interrupted debootstrap: unmount what it mounted (proc, sys), then remove.
docker_lib_remove_stale_rootfs() {
	local cache=$1 dir mnt
	for dir in "$cache"/rootfs.??????; do
		[[ -d $dir ]] || continue
		awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
			while read -r mnt; do umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; done
		rm -rf --one-file-system "$dir" "$dir.log"
	done
}

docker_lib_slim_rootfs() {
	local root=$1
	# Keep future dpkg runs slim as well (same idea as Debian's official slim images).
	cat >"$root/etc/dpkg/dpkg.cfg.d/01-slim" <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-include /usr/share/locale/locale.alias
		path-exclude /usr/share/lintian/*
	EOF
	find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/*
	find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
	rm -rf "$root"/var/log/* "$root"/tmp/* "$root"/debootstrap
	# The host's resolver settings do not belong in an image.
	: >"$root/etc/resolv.conf"
	printf 'model-serving\n' >"$root/etc/hostname"
}
