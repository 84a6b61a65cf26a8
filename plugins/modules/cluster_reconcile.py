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
    description: The RV(gitops.federation.sync_plan#module:plan) returned by M(gitops.federation.sync_plan).
    type: dict
    required: true
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
  register: gitops_reconcile
  ignore_errors: true
"""

RETURN = r"""
report:
  description:
    - This cluster's results for M(gitops.federation.sync_record) - C(sources) (per source key its status
      V(Applied), V(Deleted), V(Suspended), V(Failed) or V(Unreachable), counts and revision) and C(secrets)
      (per project, per federated secret).
  returned: always
  type: dict
details:
  description:
    - Per source key (and per C(secrets <namespace>)) what the engine did - counts and summary, or the error;
      C(diff) in diff mode.
  returned: always
  type: dict
api_requests:
  description: Requests made to this cluster, by verb, plus C(writes) (dry runs apart).
  returned: always
  type: dict
"""

from ansible_collections.gitops.federation.plugins.module_utils.lazy_kubernetes import install as light_kubernetes

light_kubernetes()  # before the imports below load the kubernetes library: only the parts the client uses
from ansible_collections.gitops.federation.plugins.module_utils.auth_options import MANAGEMENT_ARG_SPEC
from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main, request_counts
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.sync_steps import (
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
        plan=dict(type="dict", required=True),
        cache_dir=dict(type="path"),
        cluster=dict(type="str", required=True),
        cluster_labels=dict(type="dict", default={}),
        create_namespace=dict(type="bool", default=True),
        force_conflicts=dict(type="bool", default=True),
        management=dict(type="dict", required=True, options=MANAGEMENT_ARG_SPEC),
    )


def run_module(module):
    params = module.params
    client = None
    try:
        client = module.client(params["cluster"])
        outcome = reconcile(client, _LazyClient(module), params["plan"], params["cluster"],
                            cluster_labels=params["cluster_labels"], create_namespace=params["create_namespace"],
                            force_conflicts=params["force_conflicts"], check_mode=module.check_mode,
                            diff=module._diff)
    except FederationError as err:
        # Nothing could be done on this cluster: every source and secret of its work is reported failed.
        outcome = failed_report(params["plan"], params["cluster"], err)
    result = dict(changed=outcome["changed"], report=outcome["report"], details=outcome["details"],
                  api_requests=request_counts(client) if client is not None else {})
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
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()
