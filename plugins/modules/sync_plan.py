#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sync_plan
short_description: First step of a sync run, on the management cluster - read, lease, fetch, render, plan
version_added: 0.2.0
description:
  - The first of the three modules of C(playbooks/sync.yml), run once on the management cluster (the module's
    connection options). In one process it reads the C(FederatedKustomization)s, C(FederatedGitRepository)s and
    C(FederatedSecret)s of O(projects), resolves their placement on O(clusters), takes each active source's sync
    Lease and each project's federated-secrets Lease (as M(gitops.federation.sync_lease)), reads the git
    credentials of the sources from their Secrets, fetches and renders each distinct render input once (as
    M(gitops.federation.git_render)), and writes the bundles under O(cache_dir).
  - Returns the plan that M(gitops.federation.cluster_reconcile) carries out on each attached cluster and
    M(gitops.federation.sync_record) records. Credentials stay inside the module process; the plan holds no
    secret value.
  - A source is ready only if its lease is held and every one of its renders succeeded, so a broken or partial
    render never reaches a cluster. Problems of one source are reported in its plan entry, not as a failure.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
attributes:
  check_mode:
    support: full
    description: Takes no Lease (reports whether each could be taken); bundles are written to a private scratch
      directory that M(gitops.federation.sync_record) removes, never to the cache.
  diff_mode:
    support: none
    description: Nothing managed is changed here.
options:
  projects:
    description: The project namespaces (on the management cluster) to sync.
    type: list
    elements: str
    required: true
  source:
    description: Sync only the source of this name (in each of O(projects)); fails when no project has it.
    type: str
  clusters:
    description:
      - The attached clusters of the inventory, as V([{name, labels}]) (filter
        C(gitops.federation.inventory_clusters)), for placement.
    type: list
    elements: raw
    default: []
  holder:
    description: Identity of this run, written into the Leases (the record step releases them under it).
    type: str
    required: true
  lease_duration:
    description: Seconds the Leases live without renewal.
    type: int
    default: 900
  lease_wait:
    description: Seconds to wait for a Lease another run holds before reporting the source as not synced.
    type: int
    default: 0
  cache_dir:
    description:
      - Directory of the git clone cache (C(<cache_dir>/git)) and of the bundles
        (C(<cache_dir>/bundles/<management cluster id>/<namespace>/<source>/)), where the id is derived from the
        management API server's URL, so runs against other management clusters never share bundles; discovery
        of the management cluster is kept in C(<cache_dir>/discovery) (see M(gitops.federation.cluster_reconcile)).
    type: path
    required: true
  allow_local_urls:
    description:
      - Accept C(file://) git URLs and local paths (tests and demos); see M(gitops.federation.git_render).
    type: bool
    default: false
  kustomize_path:
    description: Path of the kustomize binary; by default it is looked up on C(PATH).
    type: path
notes:
  - Sources that are suspended, terminating or have errors of their own get no Lease and no render; they are
    still in the plan, so the record step writes their status.
seealso:
  - module: gitops.federation.cluster_reconcile
  - module: gitops.federation.sync_record
"""

EXAMPLES = r"""
- name: Plan the sync of every attached cluster
  gitops.federation.sync_plan:
    kubeconfig: /etc/gitops/management.kubeconfig
    projects: [team-a]
    clusters: "{{ hostvars | gitops.federation.inventory_clusters(groups['attached']) }}"
    holder: "{{ gitops_sync_holder }}"
    cache_dir: ~/.cache/gitops-federation
  register: gitops_sync
"""

RETURN = r"""
plan:
  description:
    - What each attached cluster does and what the record step writes. C(sources) holds one entry per source
      (key, owner, placed, ready, error, revision, and per cluster its settings and bundle path);
      C(secret_projects) the projects whose federated secrets this run propagates; C(secret_errors) the
      projects whose secrets Lease another run holds; C(holder); C(secrets) the federated secrets and where
      they are placed.
  returned: always
  type: dict
renders:
  description: One entry per render done (source key, url, path, revision, changed, error).
  returned: always
  type: list
  elements: dict
unknown_clusters:
  description: Cluster names the sources or secrets place on that are not in O(clusters).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.gitops.federation.plugins.module_utils.lazy_kubernetes import install as light_kubernetes

light_kubernetes()  # before the imports below load the kubernetes library: only the parts the client uses
from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.placement import parse_inventory_clusters
from ansible_collections.gitops.federation.plugins.module_utils.sync_steps import prepare


def argspec():
    return dict(
        projects=dict(type="list", elements="str", required=True),
        source=dict(type="str"),
        clusters=dict(type="list", elements="raw", default=[]),
        holder=dict(type="str", required=True),
        lease_duration=dict(type="int", default=900),
        lease_wait=dict(type="int", default=0),
        cache_dir=dict(type="path", required=True),
        allow_local_urls=dict(type="bool", default=False),
        kustomize_path=dict(type="path"),
    )


def run_module(module):
    params = module.params
    if not params["projects"]:
        raise FederationError("no project to sync (option projects); define gitops_projects in the inventory or "
                              "pass -e project=<namespace>")
    client = module.client("management")
    result = prepare(client, params["projects"],
                     parse_inventory_clusters(params["clusters"]), params["holder"], params["cache_dir"],
                     source_name=params["source"], lease_duration=params["lease_duration"],
                     lease_wait=params["lease_wait"], check_mode=module.check_mode,
                     allow_local_urls=params["allow_local_urls"], kustomize_path=params["kustomize_path"])
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()
