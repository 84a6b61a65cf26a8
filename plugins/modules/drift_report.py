#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: drift_report
short_description: Report the drift of every source's clusters from its last applied revision; set Drifted
version_added: 0.3.0
description:
  - The last step of C(playbooks/drift.yml), on the management cluster (the module's connection options). Reads
    the plan of M(gitops.federation.sync_plan) (run with O(gitops.federation.sync_plan#module:ref_override=last-applied)
    in check mode) and the results of M(gitops.federation.cluster_reconcile) on every attached cluster (check mode
    with diff), and lists per source and cluster the objects whose live state differs from that revision - V(deleted)
    (by hand), V(modified) (a field we own holds another value) or V(conflict) (another server-side apply manager
    owns it) - with the fields that differ and the field managers (C(metadata.managedFields)) that own them now.
  - Sets the C(Drifted) condition of each source's C(FederatedKustomization) - V(True) (C(DriftDetected)),
    V(False) (C(NoDrift)) or V(Unknown) (C(DriftCheckFailed)) - and emits a Warning Event C(DriftDetected) on a
    drifted source. Suspended sources are not checked (hand changes are what suspending is for).
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
attributes:
  check_mode:
    support: full
    description: No condition or Event is written; the report files are.
  diff_mode:
    support: none
    description: The differing fields are in the report.
options:
  plan:
    description: The RV(gitops.federation.sync_plan#module:plan).
    type: dict
    required: true
  reconciled:
    description: Per attached host, its registered M(gitops.federation.cluster_reconcile) result.
    type: dict
    required: true
  json_path:
    description: Where to write the report as JSON on the controller; not written when omitted.
    type: path
  markdown_path:
    description: Where to write the report as Markdown on the controller; not written when omitted.
    type: path
  cache_dir:
    description: Directory of the discovery cache (as for M(gitops.federation.sync_record)).
    type: path
seealso:
  - module: gitops.federation.sync_plan
  - module: gitops.federation.cluster_reconcile
"""

EXAMPLES = r"""
- name: Report drift and set the Drifted conditions
  gitops.federation.drift_report:
    plan: "{{ gitops_sync.plan }}"
    reconciled: "{{ dict(groups['attached'] | zip(groups['attached'] | map('extract', hostvars)
                    | map(attribute='gitops_reconcile', default={}))) }}"
    json_path: drift.json
  register: gitops_drift
"""

RETURN = r"""
drifted:
  description: Whether any source drifted on any cluster.
  returned: always
  type: bool
report:
  description:
    - C(drifted) and C(sources) - per source C(source), C(revision), C(state)/C(reason)/C(message) (its Drifted
      condition), C(error), and C(clusters) with per cluster C(error) and C(objects) (C(subject), C(drift),
      C(managers), and C(fields) with C(path), C(applied), C(live), C(managers)).
  returned: always
  type: dict
markdown:
  description: The report as Markdown.
  returned: always
  type: str
"""

import json
import shutil

from ansible_collections.gitops.federation.plugins.module_utils.k8s.lazy_kubernetes import install as light_kubernetes

light_kubernetes()  # before the imports below load the kubernetes library: only the parts the client uses
from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import FEDERATED_KUSTOMIZATION
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_record import record_condition
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_report import (
    DRIFTED, drift, drift_markdown, write_report)

CONDITION = "Drifted"


def argspec():
    return dict(
        plan=dict(type="dict", required=True),
        reconciled=dict(type="dict", required=True),
        json_path=dict(type="path"),
        markdown_path=dict(type="path"),
        cache_dir=dict(type="path"),
    )


def run_module(module):
    params = module.params
    report = drift(params["plan"], params["reconciled"])
    markdown = drift_markdown(report)
    scratch = params["plan"].get("scratch_dir")
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    for path, text in ((params["json_path"], json.dumps(report, indent=2, sort_keys=True) + "\n"),
                       (params["markdown_path"], markdown)):
        if path:
            write_report(path, text)
    client = module.client("management")  # the module's connection options, discovery kept in cache_dir
    changed = False
    for source in report["sources"]:
        events = [("Warning", "DriftDetected", source["message"])] if source["state"] == DRIFTED else []
        outcome = record_condition(client, FEDERATED_KUSTOMIZATION, source["namespace"], source["name"], CONDITION,
                                   source["state"], source["reason"], source["message"], events,
                                   check_mode=module.check_mode)
        changed = changed or outcome.status_changed
    return dict(changed=changed, drifted=report["drifted"], report=report, markdown=markdown)


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()
