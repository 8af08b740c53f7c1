# shellcheck shell=bash
# Sourced by the tool installers and the local cluster: where built tools live, and progress lines.
#
# Builds are slow (the Pulumi CLI and provider, Kubernetes, etcd, kwok: about 35 minutes cold on 2 cores) and
# the same for every clone of the project, so they live in one per-user cache outside the clone,
# ${MODEL_SERVING_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/model-serving}, and each clone's .tools is a link to
# its tools/ folder. Every artifact there is keyed by version (stamps, versioned folders), so clones pinned to
# different versions share the cache safely. A clone whose .tools is a real folder (older checkouts) keeps it.

# cache_root: the per-user cache every clone shares (tools/, and images/ and docker/ of the image builds).
cache_root() {
	local home="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}" # HOME may be unset under CI runners
	echo "${MODEL_SERVING_CACHE:-${XDG_CACHE_HOME:-$home/.cache}/model-serving}"
}

# tools_dir ROOT: make ROOT/.tools point into the cache if it does not exist yet; print its path.
tools_dir() {
	local root=$1 cache
	cache="$(cache_root)"
	if [[ ! -e "$root/.tools" && ! -L "$root/.tools" ]]; then
		mkdir -p "$cache/tools"
		ln -s "$cache/tools" "$root/.tools"
	fi
	mkdir -p "$root/.tools/bin"
	# The resolved path: Go caches and stamps then look the same from every clone.
	(cd "$root/.tools" && pwd -P)
}

# elapsed SECONDS: "1m05s".
elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# step TEXT...: announce the next step of a long operation, numbered out of STEPS (the caller sets it) with the time
# since the script started: "==> [2/7 0m41s] etcd v3.7.3".
STEP=0
step() {
	STEP=$((STEP + 1))
	printf '==> [%d/%s %s] %s\n' "$STEP" "${STEPS:-?}" "$(elapsed "$SECONDS")" "$*"
}
