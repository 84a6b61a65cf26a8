#!/usr/bin/env bash
# make demo: 1 management + 2 attached local clusters (real kube-apiservers; the attached ones also run
# kube-controller-manager, kube-scheduler and kwok, so the demo's Deployment really rolls out on a fake
# Node) and a git server holding examples/demo-app; declare the demo project, sync it (waiting until the
# workloads are healthy), and show what a user sees.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
state=${GITOPS_FEDERATION_LOCALENV:-$root/.build/localenv}
py=.venv/bin/python
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections:$root/.venv/lib/python3.11/site-packages"
export PATH="$root/.venv/bin:$($py -c 'from tools.localenv.binaries import bin_dir_path; print(bin_dir_path())'):$PATH"
inventory=$state/inventory.yml
kubectl=$(command -v kubectl)
mgmt="$kubectl --kubeconfig $state/clusters/mgmt/kubeconfig"

step() { printf '\n== %s\n' "$*"; }

step "Starting clusters and the git server (stopping any earlier demo first)"
$py -m tools.localenv --dir "$state" demo-down >/dev/null 2>&1 || true
$py -m tools.localenv --dir "$state" demo-up

step "ansible-playbook gitops.federation.sources: CRDs, the federated secret and the GitOps source"
ansible-playbook playbooks/sources.yml -i "$inventory"

step "ansible-playbook gitops.federation.sync: render once, apply to every attached cluster, wait until healthy, record status"
ansible-playbook playbooks/sync.yml -i "$inventory"

step "A second sync changes nothing"
ansible-playbook playbooks/sync.yml -i "$inventory" | sed -n '/PLAY RECAP/,$p'

step "ansible-playbook gitops.federation.status"
ansible-playbook playbooks/status.yml -i "$inventory" | sed -n '/"msg"/,/\]/p'

step "kubectl get federatedkustomization -n demo demo-app -o yaml (status)"
$mgmt get federatedkustomization -n demo
$mgmt get federatedkustomization -n demo demo-app -o yaml | sed -n '/^status:/,$p'

step "The audit trail: kubectl get events -n demo"
$mgmt get events -n demo --sort-by=.lastTimestamp

step "On the attached clusters: the Deployment is Available, its Pod Running on a kwok Node"
for cluster in attached-1 attached-2; do
  echo "-- $cluster"
  $kubectl --kubeconfig "$state/clusters/$cluster/kubeconfig" get nodes
  $kubectl --kubeconfig "$state/clusters/$cluster/kubeconfig" get deployments -n demo -o wide
  $kubectl --kubeconfig "$state/clusters/$cluster/kubeconfig" get pods,services,configmaps,secrets -n demo
done

cat <<HELP

The demo is running. Try (environment: export ANSIBLE_COLLECTIONS_PATH=$ANSIBLE_COLLECTIONS_PATH PATH=$root/.venv/bin:\$PATH):
  suspend:   ansible-playbook playbooks/suspend.yml  -i $inventory -e source=demo-app
  hand fix:  $kubectl --kubeconfig $state/clusters/attached-1/kubeconfig -n demo scale deployment demo-app --replicas=3
  resume:    ansible-playbook playbooks/resume.yml   -i $inventory -e source=demo-app   (reverts the hand fix)
  teardown:  ansible-playbook playbooks/teardown.yml -i $inventory -e source=demo-app
  status:    ansible-playbook playbooks/status.yml   -i $inventory
Stop everything with: make demo-down
HELP
