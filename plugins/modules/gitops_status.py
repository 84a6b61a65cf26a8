#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gitops_status
short_description: Record one sync's per-cluster results in a federated object's status and Events
version_added: 0.1.0
description:
  - The last step of a sync, on the management cluster. Merges the per-cluster O(results) into the C(status) of a
    C(FederatedKustomization) (a GitOps source) or a C(FederatedSecret), through the status subresource, and emits
    Kubernetes Events on it, so that C(kubectl get federatedkustomization -o yaml) and C(kubectl get events) show
    what revision reached which cluster, when, and what failed where.
  - C(status.clusters) gets one entry per cluster (C(name), C(status), C(revision), C(lastAppliedTime), C(counts),
    C(message), C(healthy)). An C(Applied) result with no write at the entry's revision leaves the entry as it is, so
    C(revision), C(lastAppliedTime) and C(counts) describe the last sync that changed something there. A
    C(Deleted) result removes the entry. Clusters without a result keep their entry.
  - Conditions C(Propagation) (every placed cluster holds the revision, no cluster outside the placement holds
    objects; otherwise False naming the clusters) and C(Ready) (Propagation and every placed cluster healthy), with
    C(lastTransitionTime) changed only when a condition's status flips; C(observedGeneration);
    C(lastAppliedRevision).
  - For a FederatedKustomization with O(revision), the C(status.artifact) of its C(FederatedGitRepository) is
    updated too (or its C(Ready) condition set to False with O(source_error)).
  - Events (reasons C(Applied), C(Pruned), C(Failed), C(Suspended), C(Deleted)) are emitted only for results that
    did something. A repeated identical event increases the C(count) of one Event.
  - The status is written only when it changes in more than its timestamps. A rerun with the same results writes
    nothing and reports RV(ignore:changed=false).
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
attributes:
  check_mode:
    support: full
    description: Computes the status and events without writing them.
  diff_mode:
    support: full
    description: Before and after of the status.
options:
  kind:
    description: Kind of the federated object.
    type: str
    choices: [FederatedKustomization, FederatedSecret]
    default: FederatedKustomization
  name:
    description: Name of the federated object (the source or the federated secret).
    type: str
    required: true
  namespace:
    description: The project namespace on the management cluster.
    type: str
    required: true
  revision:
    description:
      - The revision this sync applied, for example V(main@sha1:4b76adc...); the default revision of every result.
        Ignored for a FederatedSecret.
    type: str
  results:
    description:
      - One result per cluster synced, a dictionary with the keys C(cluster) (the inventory host name, required),
        C(status) (required, one of V(Applied) (reconciled), V(Failed) (apply refused or failed), V(Unreachable),
        V(Suspended) (not synced because suspended) or V(Deleted) (everything removed from the cluster)),
        C(counts) (the change set counts of the sync there, as M(gitops.federation.cluster_sync) returns them),
        C(message) (a short text such as the error of a failed sync, never a secret value), C(revision) (when it
        differs from O(revision)) and C(healthy) (V(false) when the objects were applied but did not become
        ready).
      - Invalid results are refused with their index and cluster named.
    type: list
    elements: dict
    default: []
  placed:
    description:
      - The clusters the object is placed on (RV(gitops.federation.gitops_source_info#module:sources[].placed)).
        Defaults to the clusters of the results that are not V(Deleted) plus the clusters the status already lists.
    type: list
    elements: str
  suspended:
    description:
      - The source is suspended. Without O(results), every placed cluster is recorded as V(Suspended).
    type: bool
    default: false
  observed_generation:
    description:
      - The C(metadata.generation) the sync worked from (RV(gitops.federation.gitops_source_info#module:sources[].generation)).
        Defaults to the object's current generation.
    type: int
  source_error:
    description:
      - Fetching or rendering the source failed with this message (it must not contain credentials). Sets C(Ready)
        False on the FederatedGitRepository and the FederatedKustomization and emits a C(Failed) event.
    type: str
seealso:
  - module: gitops.federation.gitops_source_info
  - module: gitops.federation.cluster_sync
"""

EXAMPLES = r"""
- name: Record a sync of podinfo to two clusters
  gitops.federation.gitops_status:
    namespace: team-a
    name: podinfo
    revision: main@sha1:4b76adcc78cc5a231fa5d8e7cf2f764df10c7568
    placed: [attached-1, attached-2]
    results:
      - cluster: attached-1
        status: Applied
        counts: {created: 2, configured: 1, unchanged: 5}
      - cluster: attached-2
        status: Failed
        message: "the API server refused 1 object: Deployment.apps/team-a/podinfo: spec.replicas: Invalid value"

- name: Record the results gathered from every attached host of the play
  gitops.federation.gitops_status:
    namespace: team-a
    name: "{{ source.name }}"
    revision: "{{ rendered.revision }}"
    placed: "{{ source.placed }}"
    observed_generation: "{{ source.generation }}"
    results: "{{ groups['attached'] | map('extract', hostvars, 'sync_result') | select('defined') }}"
"""

RETURN = r"""
status:
  description: The object's status after this run (as written, or as it would be in check mode).
  returned: always
  type: dict
  sample:
    clusters:
      - {name: attached-1, status: Applied, revision: "main@sha1:4b76adc", lastAppliedTime: "2024-05-01T10:00:00Z",
         counts: {created: 2, configured: 1, unchanged: 5}}
    conditions:
      - {type: Propagation, status: "True", reason: Propagated, lastTransitionTime: "2024-05-01T10:00:00Z",
         lastUpdateTime: "2024-05-01T10:00:00Z", message: "revision main@sha1:4b76adc applied to 1 cluster: attached-1"}
    lastAppliedRevision: "main@sha1:4b76adc"
    observedGeneration: 1
status_written:
  description: Whether the status changed (and was written, outside check mode).
  returned: always
  type: bool
events:
  description: The events emitted (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - {type: Normal, reason: Applied, message: "Applied revision main@sha1:4b76adc to cluster attached-1: created 2, configured 1, unchanged 5"}
source_status:
  description: The FederatedGitRepository's status after this run, when it was computed.
  returned: when O(kind=FederatedKustomization) and O(revision) or O(source_error) is given
  type: dict
"""

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import dump_yaml
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_record import record_sync


def argspec():
    return dict(
        kind=dict(type="str", choices=["FederatedKustomization", "FederatedSecret"], default="FederatedKustomization"),
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        revision=dict(type="str"),
        # Validated by status.normalize_results: a suboption may not be called "message" in an argument spec.
        results=dict(type="list", elements="dict", default=[]),
        placed=dict(type="list", elements="str"),
        suspended=dict(type="bool", default=False),
        observed_generation=dict(type="int"),
        source_error=dict(type="str"),
    )


def run_module(module):
    params = module.params
    record = record_sync(module.client(), params["kind"], params["namespace"], params["name"], params["results"],
                         placed=params["placed"], revision=params["revision"], suspended=params["suspended"],
                         observed_generation=params["observed_generation"], source_error=params["source_error"],
                         check_mode=module.check_mode)
    result = dict(changed=record.changed, status=record.status, status_written=record.status_changed,
                  events=record.events)
    if record.source_status is not None:
        result["source_status"] = record.source_status
    if module._diff and record.status_changed:
        result["diff"] = dict(before_header="%s %s/%s status" % (params["kind"], params["namespace"], params["name"]),
                              after_header="%s %s/%s status" % (params["kind"], params["namespace"], params["name"]),
                              before=dump_yaml(record.previous_status or {}), after=dump_yaml(record.status))
    module.exit_json(**result)


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()
