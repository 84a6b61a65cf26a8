#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gitops_source_info
short_description: List a project's GitOps sources and federated secrets, resolved against the inventory
version_added: 0.1.0
description:
  - Reads the C(FederatedKustomization)s, C(FederatedGitRepository)s and C(FederatedSecret)s of a project namespace
    on the management cluster (the source of truth, so a suspension made with C(kubectl patch) is seen) and
    resolves each against the attached clusters of the inventory given in O(clusters).
  - For each source it returns the clusters it is placed on, the inventory clusters it is not placed on (where a
    sync removes what it applied before), names that are not inventory clusters, whether it is suspended, its last
    revision and per-cluster status, and what a sync needs, per cluster, after that cluster's overrides - grouped
    in RV(sources[].renders) so that each distinct fetch and render input is rendered once.
  - Problems that make a source impossible to sync (a missing FederatedGitRepository, an override whose path does
    not exist) are returned in RV(sources[].errors) rather than failing, so the other sources still sync.
  - Never returns secret values, except the credentials of each source with O(include_credentials=true), which
    requires C(no_log) on the task.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only.
options:
  namespace:
    description: The project namespace on the management cluster.
    type: str
    required: true
  name:
    description: Return only this source (the federated secrets are still all returned).
    type: str
  clusters:
    description:
      - The attached clusters of the inventory, to resolve placements against.
      - Each element is a cluster name, a dictionary C({name, labels}), or a C([name, labels]) pair, so that
        C(groups['attached'] | zip(groups['attached'] | map('extract', hostvars) | map(attribute='cluster_labels',
        default={}))) can be passed as it is.
    type: list
    elements: raw
    default: []
  include_credentials:
    description:
      - Also return each source's git credentials (from the Secret of its federated secret) in
        RV(sources[].credentials), in the shape M(gitops.federation.git_render) takes as C(secret_data).
      - The module refuses to run without C(no_log) on the task, so that the values are hidden from every output
        while the registered variable stays usable.
    type: bool
    default: false
notes:
  - Unknown cluster names (in placements and overrides, not in O(clusters)) are also reported as warnings.
seealso:
  - module: gitops.federation.gitops_source
  - module: gitops.federation.gitops_status
  - module: gitops.federation.git_render
"""

EXAMPLES = r"""
- name: Read the project's sources, placed against the attached clusters of the inventory
  gitops.federation.gitops_source_info:
    namespace: team-a
    clusters: "{{ groups['attached'] | zip(groups['attached'] | map('extract', hostvars)
                 | map(attribute='cluster_labels', default={})) }}"
  register: project

- name: Sources to render (not suspended, without errors)
  ansible.builtin.debug:
    msg: "{{ project.sources | rejectattr('suspended') | selectattr('errors', 'equalto', []) | map(attribute='name') }}"

- name: Read the credentials for the render step (no_log is required)
  gitops.federation.gitops_source_info:
    namespace: team-a
    name: podinfo
    clusters: "{{ groups['attached'] }}"
    include_credentials: true
  register: podinfo
  no_log: true
"""

RETURN = r"""
sources:
  description: The project's GitOps sources (FederatedKustomization + FederatedGitRepository pairs), by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the source.
      type: str
    namespace:
      description: The project namespace.
      type: str
    owner:
      description: The owner id to sync the source's objects with (M(gitops.federation.cluster_sync) O(ignore:owner)).
      type: str
      sample: gitops/team-a/podinfo
    generation:
      description: C(metadata.generation) of the FederatedKustomization (pass it to gitops_status as observed_generation).
      type: int
    suspended:
      description: Whether the source is suspended (C(spec.template.spec.suspend)).
      type: bool
    url:
      description: Repository URL (template, before overrides).
      type: str
    ref:
      description: The ref (template, before overrides).
      type: dict
    path:
      description: The path (template, before overrides).
      type: str
    secret:
      description: Name of the federated secret with the credentials.
      type: str
    scm:
      description: The SCM type.
      type: str
    placed:
      description: Inventory clusters the source is placed on, in inventory order.
      type: list
      elements: str
    unplaced:
      description:
        - Inventory clusters the source is not placed on. A sync tears the source down there
          (M(gitops.federation.cluster_sync) with C(state=absent) is a no-op where nothing was applied).
      type: list
      elements: str
    unknown_clusters:
      description: Cluster names in the placement or the overrides that are not inventory clusters.
      type: list
      elements: str
    stale_clusters:
      description: Clusters the status lists as holding objects although the source is no longer placed there.
      type: list
      elements: str
    renders:
      description:
        - The distinct fetch and render inputs after per-cluster overrides, each with the clusters that use it.
          Render each once (M(gitops.federation.git_render) O(ignore:url), O(ignore:ref), O(ignore:path),
          O(ignore:substitute), O(ignore:timeout)).
      type: list
      elements: dict
      sample:
        - {id: 0, url: "https://github.com/example/apps.git", ref: {branch: main}, secret: git-credentials,
           path: overlays/prod, substitute: {REPLICAS: "2"}, ignore: null, timeout: 300, clusters: [attached-1]}
    clusters:
      description:
        - Per placed cluster, the cluster_sync settings after overrides - C(namespace), C(prune), C(wait),
          C(wait_timeout), C(force_conflicts), C(health_checks) - plus C(render) (the index in RV(sources[].renders)),
          C(suspended) (per-cluster suspension) and C(overrides) (the operations with a target, to apply to the
          rendered objects of that cluster).
      type: dict
      sample:
        attached-1: {render: 0, namespace: team-a, prune: true, wait: false, wait_timeout: 300,
                     force_conflicts: false, health_checks: [], suspended: false, overrides: []}
    errors:
      description: Why the source cannot be synced; empty when it can.
      type: list
      elements: str
    status:
      description:
        - The recorded status - C(last_applied_revision), C(artifact_revision) (of the FederatedGitRepository),
          C(observed_generation), C(conditions), C(clusters) (per-cluster entries), C(scope) (V(platform) or
          V(tenant), as the last sync applied it) and C(platform) (what the operator's policy allowed).
      type: dict
    credentials:
      description:
        - Sensitive. The decoded credentials of the source's secret (C(username), C(password), C(bearerToken),
          C(caFile), C(identity), C(known_hosts); present keys only), for M(gitops.federation.git_render) O(ignore:secret_data).
          Empty when the source has no secret.
      type: dict
      returned: when O(include_credentials=true)
secrets:
  description: The project's federated secrets - placement, data key names (never values) and status.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: git-credentials, type: Opaque, placed: [attached-1, attached-2], unknown_clusters: [],
       secret_exists: true, data_keys: [password, username]}
secrets_owner:
  description: The owner id under which federated secrets are applied to attached clusters.
  returned: always
  type: str
  sample: gitops/team-a/federated-secrets
unknown_clusters:
  description: All unknown cluster names of the project's sources and secrets.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.federated_secrets import secret_view, secrets_owner
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import (
    FEDERATED_GIT_REPOSITORY, FEDERATED_KUSTOMIZATION, FEDERATED_SECRET)
from ansible_collections.gitops.federation.plugins.module_utils.federation.gitops_sources import source_view
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import parse_inventory_clusters
from ansible_collections.gitops.federation.plugins.module_utils.federation.secret_data import git_credentials


def argspec():
    return dict(
        namespace=dict(type="str", required=True),
        name=dict(type="str"),
        clusters=dict(type="list", elements="raw", default=[]),
        include_credentials=dict(type="bool", default=False),
    )


def run_module(module):
    params = module.params
    namespace = params["namespace"]
    if params["include_credentials"] and not module.no_log:
        raise FederationError("include_credentials: true returns secret values; set no_log: true on the task so that "
                              "they are hidden from every output (the registered variable keeps them)")
    clusters = parse_inventory_clusters(params["clusters"])
    store = module.store()
    kustomizations = store.list(FEDERATED_KUSTOMIZATION, namespace)
    if params["name"]:
        kustomizations = [k for k in kustomizations if k["metadata"]["name"] == params["name"]]
    repositories = dict((r["metadata"]["name"], r) for r in store.list(FEDERATED_GIT_REPOSITORY, namespace))
    secrets_cache = {}

    def secret(name):
        if name not in secrets_cache:
            secrets_cache[name] = store.get("Secret", namespace, name)
        return secrets_cache[name]

    sources = []
    for kustomization in kustomizations:
        source_ref = ((((kustomization.get("spec") or {}).get("template") or {}).get("spec") or {}).get("sourceRef")
                      or {}).get("name") or kustomization["metadata"]["name"]
        view = source_view(kustomization, repositories.get(source_ref), clusters)
        if params["include_credentials"]:
            view["credentials"] = {}
            if view["secret"]:
                live = secret(view["secret"])
                if live is None:
                    view["errors"].append("Secret %s/%s (the credentials of source %s) does not exist"
                                          % (namespace, view["secret"], view["name"]))
                else:
                    view["credentials"] = git_credentials(live, "Secret %s/%s" % (namespace, view["secret"]))
        sources.append(view)
    secrets = [secret_view(fs, secret(fs["metadata"]["name"]), clusters)
               for fs in store.list(FEDERATED_SECRET, namespace)]
    unknown = sorted(set(n for item in sources + secrets for n in item["unknown_clusters"]))
    for item in sources + secrets:
        if item["unknown_clusters"]:
            module.warn("%s %s/%s names clusters that are not in the inventory: %s"
                        % ("source" if item in sources else "federated secret", namespace, item["name"],
                           ", ".join(item["unknown_clusters"])))
    module.exit_json(changed=False, sources=sources, secrets=secrets, secrets_owner=secrets_owner(namespace),
                     unknown_clusters=unknown)


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()
