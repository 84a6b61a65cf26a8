#!/usr/bin/env bash
# Make the test binaries available: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd, kustomize and kwok.
#
# Lookup order per binary: $KUBEBUILDER_ASSETS/<name> if set and present; else the cache
# ($GITOPS_FEDERATION_CACHE, default ~/.cache/gitops-federation) keyed by the pinned versions;
# else build it from the Go module proxy into that cache. Prints one "name=path" line per binary.
set -euo pipefail

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

build() { # build <module dir> <package> <output name> [ldflags]
  local module=$1 pkg=$2 name=$3 ldflags=${4:--s -w}
  echo ">> building $name from $pkg (cached in $bindir)" >&2
  local started=$SECONDS
  (cd "$here/$module" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bindir/$name.tmp" "$pkg")
  mv "$bindir/$name.tmp" "$bindir/$name"
  echo ">> built $name in $((SECONDS - started))s" >&2
}

resolve() { # resolve <name> <module dir> <package> [ldflags]
  local name=$1
  if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$name" ]]; then
    echo "$name=$KUBEBUILDER_ASSETS/$name"; return
  fi
  [[ -x "$bindir/$name" ]] || build "$2" "$3" "$name" "${4:-}"
  echo "$name=$bindir/$name"
}

command -v go >/dev/null || { echo "error: go is required to build the test binaries (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
resolve etcd etcd go.etcd.io/etcd/server/v3
resolve kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
resolve kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
resolve kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
resolve kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
resolve kustomize kustomize sigs.k8s.io/kustomize/kustomize/v5 "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION"
resolve kwok kwok sigs.k8s.io/kwok/cmd/kwok
