# shellcheck shell=bash
# Sourced by the installers that build tools from Go modules (install-pulumi, install-k8s).
# Callers define say() and die(), source scripts/lib-tools.sh (elapsed) and set TOOLS.

# go_env: Go state under $TOOLS/go (GOPATH, GOMODCACHE, GOCACHE), so nothing is written to $HOME and one cache
# serves every tool; static binaries.
go_env() {
	command -v go >/dev/null 2>&1 || die "'go' not found on PATH: the tools are built from Go modules; install Go >= $1."
	export GOPATH="$TOOLS/go"
	export GOMODCACHE="$TOOLS/go/pkg/mod"
	export GOCACHE="$TOOLS/go/cache"
	export GOFLAGS="-mod=mod -buildvcs=false"
	export CGO_ENABLED="${CGO_ENABLED:-0}"
	local have need=$1
	have="$(go env GOVERSION)"
	have="${have#go}"
	if [[ "$(printf '%s\n%s\n' "$need" "${have%%[-+ ]*}" | sort -V | head -n1)" != "$need" ]]; then
		die "go $have is too old: Go >= $need is needed."
	fi
}

json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" | head -n1; }
# go_error OUTPUT: the "Error" of `go mod download -json` output (else the output itself).
go_error() {
	local e
	e="$(printf '%s\n' "$1" | json_field Error)"
	printf '%b\n' "${e:-$1}" | sed 's/\\"/"/g'
}
# mod_json MODULE@VERSION: `go mod download -json` output; fails with the go error on stderr.
mod_json() {
	local out
	if ! out="$(go mod download -json "$1" 2>&1)"; then
		printf 'go: %s\n' "$(go_error "$out")" >&2
		return 1
	fi
	printf '%s\n' "$out"
}
mod_dir() { mod_json "$1" | json_field Dir; }
mod_gomod() { mod_json "$1" | json_field GoMod; }

# replaces GO.MOD: its replace directives whose target is a module (not a ../local path), one a line.
replaces() { replace_directives "$1" module; }

# local_replaces GO.MOD: the modules GO.MOD replaces with a local path (staging modules), one a line.
local_replaces() { replace_directives "$1" local; }

replace_directives() {
	awk -v want="$2" '
		/^replace[ \t]*\([ \t]*$/ { block = 1; next }
		block && /^[ \t]*\)/ { block = 0; next }
		block { line = $0 }
		!block && /^replace[ \t]/ { line = $0; sub(/^replace[ \t]+/, "", line) }
		{
			sub(/[ \t]*\/\/.*$/, "", line); gsub(/^[ \t]+|[ \t]+$/, "", line)
			if (line ~ /=>/) {
				split(line, parts, "=>"); target = parts[2]; gsub(/^[ \t]+/, "", target)
				source = parts[1]; gsub(/[ \t].*$/, "", source)
				if (want == "local" && target ~ /^[.\/]/) print source
				if (want == "module" && target !~ /^[.\/]/) print "replace " line
			}
			line = ""
		}' "$1"
}

# quiet CMD...: run CMD without the hundreds of "go: downloading" lines (errors still shown).
quiet() { "$@" 2> >(grep -v '^go: downloading ' >&2 || true); }

# build_go DIR OUTPUT LDFLAGS PACKAGE: go build in DIR, atomically to OUTPUT.
build_go() {
	local dir=$1 out=$2 ldflags=$3 pkg=$4
	rm -f "$out.tmp"
	(cd "$dir" && quiet go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") || return 1
	mv -f "$out.tmp" "$out"
}

# stamp_ok NAME KEY FILE...: $STAMPS/NAME says KEY and every FILE is there (never with FORCE=1).
stamp_ok() {
	local name=$1 key=$2 f
	shift 2
	((${FORCE:-0})) && return 1
	[[ -f "$STAMPS/$name" && "$(<"$STAMPS/$name")" == "$key" ]] || return 1
	for f in "$@"; do [[ -e "$f" ]] || return 1; done
}
stamp_write() { printf '%s\n' "$2" >"$STAMPS/$1"; }
