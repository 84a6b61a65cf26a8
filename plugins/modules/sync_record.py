#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sync_record
short_description: Last step of a sync run, on the management cluster - status, events, leases released
version_added: 0.2.0
description:
  - The last of the three modules of C(playbooks/sync.yml), run once on the management cluster (the module's
    connection options).
  - From the reports of the attached clusters (RV(gitops.federation.cluster_reconcile#module:report)), writes
    the status and Events of every source of O(plan) (as M(gitops.federation.gitops_status)) and of every
    federated secret of the projects whose secrets the run propagated, then releases the run's Leases and
    removes the check-mode scratch directory of M(gitops.federation.sync_plan).
  - A source's status also shows the policy it was applied with (C(status.scope) platform or tenant, and
    C(status.platform)); when its FederatedKustomization claims more than the operator's policy, condition
    C(Policy) is False (reason C(ClaimIgnored)) and a Warning event C(PolicyClaimIgnored) says so.
  - For a source with rollout rings, also writes C(status.rollout) (each ring's clusters, state and the revision
    it runs, each cluster's last healthy revision, a held revision after a rollback, with the Ready condition
    reason V(RolloutHeld) while it holds the revision being synced) and the Events of its rings (V(RingStarted),
    V(RingHealthy), V(RingFailed), V(RolledBack), V(RingHalted)), timed when they happened on the clusters.
  - Terminating sources (teardown records them) and sources whose Lease another run holds (that run records
    them) are not recorded.
  - Does not fail because something did not sync; RV(failures) lists it, for the playbook to fail with after
    recording.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
  - gitops.federation.cache_dir
attributes:
  check_mode:
    support: full
    description: Reports what would be written; writes and releases nothing.
  diff_mode:
    support: none
    description: See M(gitops.federation.gitops_status) for a diff of one object's status.
options:
  plan:
    description:
      - The RV(gitops.federation.sync_plan#module:plan) of this run.
      - Exactly one of O(plan) and O(run) is required.
    type: dict
  run:
    description:
      - The record job of the AWX workflow form of the sync - the RV(gitops.federation.sync_plan#module:run)
        reference the plan job published (extra variable C(gitops_sync_run)), instead of O(plan) and O(reports).
      - The plan and the reports the apply jobs stored (M(gitops.federation.cluster_reconcile) with
        O(gitops.federation.cluster_reconcile#module:run)) are read from the management cluster. A cluster of
        O(hosts) that has work in the plan but no stored report (its apply job failed before reconciling it, was
        cancelled, or its limit left it out) is recorded as V(Failed) and listed in RV(failures) and RV(missing).
      - After recording and releasing the Leases, every object of the run is deleted (not in check mode).
    type: dict
  reports:
    description:
      - The report of each attached cluster that ran, by inventory host name (filter
        C(gitops.federation.sync_reports)). Clusters that did not report are left out of the status.
      - Ignored with O(run).
    type: dict
    default: {}
  hosts:
    description: The attached hosts, in inventory order (the order of the results in status and failures).
    type: list
    elements: str
    default: []
  trigger:
    description:
      - >-
        What started this run, named in the Events of every source it synced, for the audit trail (for example
        a push delivered by the SCM webhook, C({kind: push, ref: refs/heads/main, commit: <sha>, delivery: <id>,
        scm: gitea}), as the C(sync_on_push) role passes it through C(gitops_trigger)).
      - Only C(kind), C(ref), C(commit), C(delivery) and C(scm) are used.
    type: dict
seealso:
  - module: gitops.federation.sync_plan
  - module: gitops.federation.cluster_reconcile
  - module: gitops.federation.gitops_status
"""

EXAMPLES = r"""
- name: Record status and events, release the leases
  gitops.federation.sync_record:
    plan: "{{ gitops_sync.plan }}"
    reports: "{{ hostvars | gitops.federation.sync_reports(groups['attached']) }}"
    hosts: "{{ groups['attached'] }}"
  register: gitops_recorded

- name: Record job of the AWX workflow - plan and reports from the management cluster
  gitops.federation.sync_record:
    run: "{{ gitops_sync_run }}"
    hosts: "{{ groups['attached'] }}"
  register: gitops_recorded
"""

RETURN = r"""
recorded:
  description: Per recorded object its kind, key, whether its status or events changed, and the events emitted.
  returned: always
  type: list
  elements: dict
released:
  description: The Leases released (V(<namespace>/<source>) or V(<namespace>/federated-secrets)).
  returned: always
  type: list
  elements: str
failures:
  description: One line per source, cluster or project that did not sync; empty when everything synced.
  returned: always
  type: list
  elements: str
reported:
  description: With O(run), the clusters whose apply job stored a report.
  returned: when O(run) is given
  type: list
  elements: str
missing:
  description: With O(run), the clusters with work in the plan and no stored report (recorded as V(Failed)).
  returned: when O(run) is given
  type: list
  elements: str
"""

from ansible_collections.gitops.federation.plugins.module_utils.k8s.lazy_kubernetes import install as light_kubernetes

light_kubernetes()  # before the imports below load the kubernetes library: only the parts the client uses
from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_handoff import record_run
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_steps import record


def argspec():
    return dict(
        plan=dict(type="dict"),
        run=dict(type="dict"),
        cache_dir=dict(type="path"),
        reports=dict(type="dict", default={}),
        hosts=dict(type="list", elements="str", default=[]),
        trigger=dict(type="dict"),
    )


def run_module(module):
    params = module.params
    client = module.client("management")
    if params["run"] is not None:
        module.exit_json(**record_run(client, params["run"], params["hosts"], check_mode=module.check_mode,
                                      trigger=params["trigger"]))
    module.exit_json(**record(client, params["plan"], params["reports"], params["hosts"],
                              check_mode=module.check_mode, trigger=params["trigger"]))


def main():
    module_main(argspec(), run_module, mutually_exclusive=[("plan", "run")], required_one_of=[("plan", "run")])


if __name__ == "__main__":
    main()
