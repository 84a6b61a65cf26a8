#!/usr/bin/env bash
# Make the test binaries available: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd, kustomize, kwok and gitea.
#
# Lookup order per binary: $KUBEBUILDER_ASSETS/<name> if set and present; else the cache
# ($GITOPS_FEDERATION_CACHE, default ~/.cache/gitops-federation) keyed by the pinned versions;
# else build it from the Go module proxy into that cache. Prints one "name=path" line per binary.
# With names as arguments (e.g. `build.sh gitea`), only those are resolved; without, all of them.
set -euo pipefail
wanted=" $* "
want() { [[ "$wanted" == "  " || "$wanted" == *" $1 "* ]]; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${GITOPS_FEDERATION_CACHE:-$HOME/.cache/gitops-federation}
bindir="$cache/bin/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kustomize-$KUSTOMIZE_VERSION-kwok-$KWOK_VERSION"
mkdir -p "$bindir"

kube_minor=${KUBERNETES_VERSION#v1.}; kube_minor=${kube_minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# /version must report the real release: component-base and client-go read these at link time.
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

# Gitea links SQLite through cgo (mattn/go-sqlite3), so it is built with CGO_ENABLED=1 and gcc, into a
# directory keyed by its own version: bumping it does not rebuild the Kubernetes binaries.
gitea_bindir="$cache/bin/gitea-$GITEA_VERSION"
gitea_ldflags="-s -w -X main.Version=${GITEA_VERSION#v} -X main.Tags=sqlite,sqlite_unlock_notify"

build() { # build <module dir> <package> <output path> [ldflags] [cgo] [tags]
  local module=$1 pkg=$2 out=$3 ldflags=${4:--s -w} cgo=${5:-0} tags=${6:-}
  echo ">> building $(basename "$out") from $pkg (cached in $(dirname "$out"))" >&2
  local started=$SECONDS
  mkdir -p "$(dirname "$out")"
  (cd "$here/$module" && CGO_ENABLED=$cgo go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  echo ">> built $(basename "$out") in $((SECONDS - started))s" >&2
}

resolve() { # resolve <name> <module dir> <package> [ldflags] [cgo] [tags] [output dir]
  local name=$1 dir=${7:-$bindir}
  if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$name" ]]; then
    echo "$name=$KUBEBUILDER_ASSETS/$name"; return
  fi
  [[ -x "$dir/$name" ]] || build "$2" "$3" "$dir/$name" "${4:-}" "${5:-0}" "${6:-}"
  echo "$name=$dir/$name"
}

command -v go >/dev/null || { echo "error: go is required to build the test binaries (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
want etcd && resolve etcd etcd go.etcd.io/etcd/server/v3
want kube-apiserver && resolve kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
want kube-controller-manager && resolve kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
want kube-scheduler && resolve kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
want kubectl && resolve kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
want kustomize && resolve kustomize kustomize sigs.k8s.io/kustomize/kustomize/v5 "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION"
want kwok && resolve kwok kwok sigs.k8s.io/kwok/cmd/kwok
want gitea || exit 0
command -v gcc >/dev/null || { echo "error: gcc is required to build gitea (SQLite through cgo)" >&2; exit 1; }
resolve gitea gitea code.gitea.io/gitea "$gitea_ldflags" 1 "sqlite sqlite_unlock_notify" "$gitea_bindir" >/dev/null
# Without the bindata build tag (its generated files are not in the module), Gitea reads its templates and
# options (locales, licences) from STATIC_ROOT_PATH: keep a copy of the module's beside the binary.
if [[ -z "${KUBEBUILDER_ASSETS:-}" || ! -x "${KUBEBUILDER_ASSETS:-}/gitea" ]]; then
  if [[ ! -d "$gitea_bindir/static/options" ]]; then
    src=$(cd "$here/gitea" && go list -m -f '{{.Dir}}' code.gitea.io/gitea)
    rm -rf "$gitea_bindir/static.tmp" && mkdir -p "$gitea_bindir/static.tmp"
    cp -R "$src/templates" "$src/options" "$gitea_bindir/static.tmp/"
    chmod -R u+w "$gitea_bindir/static.tmp" && mv "$gitea_bindir/static.tmp" "$gitea_bindir/static"
  fi
  echo "gitea=$gitea_bindir/gitea"
else
  echo "gitea=$KUBEBUILDER_ASSETS/gitea"
fi
