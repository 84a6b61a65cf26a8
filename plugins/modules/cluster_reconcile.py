#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cluster_reconcile
short_description: Second step of a sync run - reconcile one attached cluster to the plan
version_added: 0.2.0
description:
  - The second of the three modules of C(playbooks/sync.yml), run once per attached cluster (the module's
    connection options), in parallel over Ansible forks and in C(serial) batches.
  - Carries out O(plan) (from M(gitops.federation.sync_plan)) on the cluster O(cluster), in one process with one
    client (one discovery), with the apply engine of M(gitops.federation.cluster_sync).
  - First validates the bundle of every source placed on the cluster (the engine's validation; nothing is
    written). Then, for each project whose federated secrets this run propagates, it propagates them as
    M(gitops.federation.federated_secret_sync) does, reading them from the management cluster (O(management)),
    unless every source of the project placed here was refused by that validation, in which case nothing is
    written for the project. Then it reconciles each source placed here (apply, prune, wait) and removes the
    ones placed elsewhere from this cluster, as M(gitops.federation.cluster_sync) with O(gitops.federation.cluster_sync#module:state=absent).
  - Each source is validated and applied with the policy the plan carries for it (the operator's, from the
    inventory). A tenant source holds objects of its project namespace only; a platform source also the
    cluster-scoped kinds and other namespaces its policy allows, and its CRDs are pruned or removed only when the
    policy allows it (else left in place, reported C(orphaned)). A source with a ServiceAccount is applied (and
    pruned, removed) as it, with C(Impersonate-User) on every request, so the connection's credentials need the
    C(impersonate) verb on it.
  - Failures of one source or one project's secrets do not stop the others; the module fails at the end,
    naming every failure, and returns the cluster's report either way.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
  - gitops.federation.cache_dir
  - gitops.federation.management
attributes:
  check_mode:
    support: full
    description: Server-side dry-runs; nothing is written.
  diff_mode:
    support: full
    description: Before and after of every changed object, per source, with Secret values redacted.
options:
  plan:
    description:
      - The RV(gitops.federation.sync_plan#module:plan) returned by M(gitops.federation.sync_plan).
      - Exactly one of O(plan) and O(run) is required.
    type: dict
  run:
    description:
      - The apply job of the AWX workflow form of the sync - the RV(gitops.federation.sync_plan#module:run)
        reference the plan job published (extra variable C(gitops_sync_run)), instead of O(plan).
      - The plan and the bundles of the sources placed on this cluster are read from the management cluster
        (O(management)) into a private temporary directory, removed when the module ends; this cluster's report is
        stored there (Secret C(gitops-run-<id>-result-<cluster digest>) in each project namespace) for
        M(gitops.federation.sync_record), except in check mode. Nothing is rendered and no Lease is taken or
        released; the plan's Leases are renewed under the plan job's holder while the cluster is reconciled, as in
        C(sync.yml), and the cluster is not touched if another run took one of them meanwhile.
      - Fails when the run was planned in check mode, against another management cluster, or its objects are gone
        (recorded already).
    type: dict
  cluster:
    description: The name of this cluster in the inventory (its placement name).
    type: str
    required: true
  cluster_labels:
    description: The labels of this cluster, for the placement of federated secrets.
    type: dict
    default: {}
  create_namespace:
    description: Create a project (target) namespace that does not exist yet on the cluster.
    type: bool
    default: true
  force_conflicts:
    description:
      - Take ownership of fields other field managers own (git is the source of truth), for every source; a
        source's own C(force) setting applies as well.
    type: bool
    default: true
  wave:
    description:
      - Reconcile only the sources whose rollout ring on this cluster has this index (C(spec.rollout.rings); a
        source without rings is in ring 0); the federated secrets and the removal of sources placed elsewhere go
        with the cluster's first wave. C(playbooks/sync.yml) runs the waves in order, every cluster of a wave in
        parallel.
      - A ringed source waits until its objects are healthy, then, when something changed or its revision was
        not yet recorded healthy here, stays under watch for its ring's C(bake) time (health is re-checked every
        few seconds). A source that stays healthy is recorded healthy on the cluster (annotation
        C(gitops.federation/last-healthy) of its inventory ConfigMap); one whose health fails is synced back
        to the revision last recorded healthy here, when the plan rendered it.
      - Without it, every source of the plan placed here (no bake, no rollback).
    type: int
  halted:
    description:
      - Sources (by key V(<namespace>/<source>)) whose rollout stopped in an earlier wave, with the reason (filter
        C(gitops.federation.rollout_halts)); their rings are not started on this cluster and are reported
        V(Halted).
    type: dict
    default: {}
seealso:
  - module: gitops.federation.sync_plan
  - module: gitops.federation.sync_record
  - module: gitops.federation.cluster_sync
"""

EXAMPLES = r"""
- name: Reconcile this cluster
  gitops.federation.cluster_reconcile:
    plan: "{{ hostvars[groups['management'][0]].gitops_sync.plan }}"
    cluster: "{{ inventory_hostname }}"
    cluster_labels: "{{ cluster_labels | default({}) }}"
    management: "{{ hostvars[groups['management'][0]] | gitops.federation.cluster_connection }}"
    wave: 0
    halted: "{{ hostvars | gitops.federation.rollout_halts(groups['attached']) }}"
  register: gitops_reconcile
  ignore_errors: true

- name: Apply job of the AWX workflow - the plan, bundles and result on the management cluster
  gitops.federation.cluster_reconcile:
    run: "{{ gitops_sync_run }}"
    cluster: "{{ inventory_hostname }}"
    cluster_labels: "{{ cluster_labels | default({}) }}"
    management: "{{ gitops_management }}"
  ignore_errors: true
"""

RETURN = r"""
report:
  description:
    - This cluster's results for M(gitops.federation.sync_record) - C(sources) (per source key its status
      V(Applied), V(Deleted), V(Suspended), V(Failed) or V(Unreachable), counts and revision) and C(secrets)
      (per project, per federated secret).
    - C(rollout), for sources with rollout rings, per source key - C(ring), C(state) (V(Healthy), V(Failed),
      V(RolledBack) or V(Halted)), the C(revision) the cluster runs now, C(healthy_revision), C(message),
      C(started) and C(finished).
  returned: always
  type: dict
details:
  description:
    - Per source key (and per C(secrets <namespace>)) what the engine did - counts and summary, or the error;
      C(diff) in diff mode, and for sources C(changes) - the objects written (or, in check mode, to be written)
      with their C(action) and, when configured, C(fields) - the fields we own that differ (C(path), C(before),
      C(after), C(managers) - the other field managers that own the path in the live object; Secret values
      redacted).
  returned: always
  type: dict
stored:
  description: With O(run), the result Secrets written for the record job (V(<namespace>/<name>)).
  returned: when O(run) is given
  type: list
  elements: str
api_requests:
  description: Requests made to this cluster, by verb, plus C(writes) (dry runs apart).
  returned: always
  type: dict
"""

from ansible_collections.gitops.federation.plugins.module_utils.k8s.lazy_kubernetes import install as light_kubernetes

light_kubernetes()  # before the imports below load the kubernetes library: only the parts the client uses
from ansible_collections.gitops.federation.plugins.module_utils.k8s.auth_options import MANAGEMENT_ARG_SPEC
from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main, request_counts
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_handoff import reconcile_run
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_steps import (
    failed_report, reconcile)


class _LazyClient:
    """The management client, created on first use (a cluster with no secrets to propagate never needs it)."""

    def __init__(self, module):
        self._module = module
        self._client = None

    def __getattr__(self, name):
        if self._client is None:
            self._client = self._module.management_client()
        return getattr(self._client, name)


def argspec():
    return dict(
        plan=dict(type="dict"),
        run=dict(type="dict"),
        cache_dir=dict(type="path"),
        cluster=dict(type="str", required=True),
        cluster_labels=dict(type="dict", default={}),
        create_namespace=dict(type="bool", default=True),
        force_conflicts=dict(type="bool", default=True),
        management=dict(type="dict", required=True, options=MANAGEMENT_ARG_SPEC),
        wave=dict(type="int"),
        halted=dict(type="dict", default={}),
    )


def run_module(module):
    params = module.params
    client = None
    options = dict(cluster_labels=params["cluster_labels"], create_namespace=params["create_namespace"],
                   force_conflicts=params["force_conflicts"], check_mode=module.check_mode, diff=module._diff)
    if params["run"] is not None:
        # The apply job of the workflow form: a failure to reach the management cluster fails the module (there
        # is nowhere to store a result; the record job reports the cluster as not reconciled). Sources with
        # rollout rings are not in a stored run (sync_plan refuses them there): one call does all the work.
        management = module.management_client()
        try:
            client = module.client(params["cluster"])
        except FederationError as err:
            client, options["connection_error"] = None, err
        outcome = reconcile_run(client, management, params["run"], params["cluster"], **options)
    else:
        try:
            client = module.client(params["cluster"])
            outcome = reconcile(client, _LazyClient(module), params["plan"], params["cluster"],
                                wave=params["wave"], halted=params["halted"], **options)
        except FederationError as err:
            # Nothing could be done on this cluster: every source and secret of its work is reported failed.
            outcome = failed_report(params["plan"], params["cluster"], err, params["wave"])
    result = dict(changed=outcome["changed"], report=outcome["report"], details=outcome["details"],
                  api_requests=request_counts(client) if client is not None else {})
    if "stored" in outcome:
        result["stored"] = outcome["stored"]
    if outcome["failed"]:
        lines = []
        for failure in outcome["failed"]:
            item = failure["item"]
            subject = failure.get("subject") or (
                item["key"] if isinstance(item, dict) else "federated secrets of %s" % item)
            lines.append("%s: %s" % (subject, failure.get("msg")))
        module.fail_json(msg="; ".join(lines), **result)
    module.exit_json(**result)


def main():
    module_main(argspec(), run_module, mutually_exclusive=[("plan", "run")], required_one_of=[("plan", "run")])


if __name__ == "__main__":
    main()
