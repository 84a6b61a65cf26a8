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
  - gitops.federation.limits
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
  policies:
    description:
      - The operator's policy of each source, from the inventory (filter C(gitops.federation.source_policies) of
        C(gitops_projects)), as V([{namespace, name, platform, service_account, service_account_namespace}]) with
        the options of a C(gitops_projects) source entry (see the C(sources) role and C(docs/resources.md)).
      - A source not listed, or listed without C(platform), is a tenant source (objects of its project namespace
        only, no cluster-scoped object). The policy copy on the FederatedKustomization (which a tenant with write
        access to the project namespace can edit) is never used; when it claims more than this, the plan says so
        (C(policy_note) of the source, a warning, and condition C(Policy) and a Warning event on the object).
      - An invalid policy fails the module before anything is leased or written, naming the source and option.
    type: list
    elements: dict
    default: []
  publish:
    description:
      - Also store the plan and its bundles on the management cluster, for the apply and record jobs of the AWX
        workflow form of the sync (C(playbooks/sync_workflow_plan.yml); see C(docs/awx.md)), and return the run's
        reference RV(run), which the plan job publishes as a C(set_stats) artifact.
      - They are Secrets labelled C(gitops.federation/run=<run id>) in each project namespace (a bundle may hold
        Secret manifests) - C(gitops-run-<id>-plan) with the project's part of the plan and
        C(gitops-run-<id>-bundle-<n>-<chunk>) with each bundle, gzip-compressed, in chunks under 1 MiB.
        M(gitops.federation.sync_record) deletes them after recording.
      - Objects of earlier runs of these projects that never reached their record job are deleted first, once
        their holder holds no Lease in the project and they are older than its lease duration.
      - In check mode nothing is stored; RV(run) says so and the apply and record modules refuse it.
      - Sources with rollout rings are not stored in a run (their rings must run one after the other, which
        C(playbooks/sync.yml) does); the plan records them as failed, saying so.
    type: bool
    default: false
  ref_override:
    description:
      - Render another git ref than the sources' own (C(playbooks/preview.yml), C(playbooks/drift.yml)); only the
        ref changes, path, substitutions, overrides and placement stay the source's.
      - A ref for every source in scope - a branch name, V(tag:<tag>), V(commit:<sha>), V(branch:<name>), a full
        commit SHA, V(refs/heads/<name>), V(refs/tags/<tag>), a revision such as V(main@sha1:<sha>), or a
        mapping with one of C(branch), C(tag), C(semver), C(commit).
      - Or a mapping of source (V(name) or V(namespace/name)) to such a ref, for those sources only; a name that
        is not in scope fails the module.
      - Or V(last-applied) - each source's C(status.lastAppliedRevision) (a source never applied gets an error).
    type: raw
  leases:
    description:
      - Take the sources' Leases. V(false) for runs that write nothing to any cluster (preview, drift report) - no
        Lease is read or taken, so a sync running meanwhile does not hide a source.
    type: bool
    default: true
  sync_windows:
    description:
      - Allow and deny windows (the inventory's C(gitops_sync_windows)), each V({name, kind, schedule, duration,
        timezone, projects, sources, clusters, cluster_labels}); see C(docs/playbooks.md). Clusters a window
        closes are taken out of the source's work (C(plan.sources[].window) says which and why).
    type: list
    elements: raw
    default: []
  force:
    description: Sync although a sync window is closed; the record step's Events say so.
    type: bool
    default: false
  retry_held:
    description:
      - Roll out again a revision that a source with rollout rings rolled back (C(status.rollout.held) of its
        FederatedKustomization). Without it such a revision is held, the source is not synced and the run reports
        it, until the upstream commit or the source changes.
    type: bool
    default: false
notes:
  - For a source with rollout rings (C(spec.rollout.rings)), each placed cluster's ring is in its plan entry, and
    for each cluster whose last healthy revision (C(status.rollout.lastHealthy)) is not the one being rolled out,
    that revision is rendered too (as C(rollback)), so the cluster can be synced back to it if its ring fails.
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
      (key, owner, placed, ready, error, revision, C(policy) the operator's policy it is applied with (scope,
      cluster_scoped_kinds, namespaces, prune_crds, service_account), C(policy_note), and per cluster its settings
      and bundle path; C(ref_override) when another ref was rendered; C(window) with the clusters sync windows
      closed or C(force) opened);
      C(secret_projects) the projects whose federated secrets this run propagates; C(secret_errors) the
      projects whose secrets Lease another run holds; C(holder); C(secrets) the federated secrets and where
      they are placed; C(waves) the number of rollout waves (the most rings of any source, 1 without rings).
    - A source with rings lists them in C(rings) (name, index, clusters, bake); a held source has C(held) (why
      it is not rolled out) and is not ready.
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
run:
  description:
    - The reference to this run for the apply and record jobs (O(gitops.federation.cluster_reconcile#module:run),
      O(gitops.federation.sync_record#module:run)) - C(id) (derived from O(holder), it names the stored objects),
      C(holder), C(projects), C(management) (a digest of the management API server URL) and C(stored) (false in
      check mode). No secret value; a few hundred bytes whatever the number of clusters.
  returned: when O(publish=true)
  type: dict
stored:
  description: The Secrets written for the run (V(<namespace>/<name>)).
  returned: when O(publish=true)
  type: list
  elements: str
collected:
  description: Earlier runs whose left-over objects were deleted (V(<namespace>/<run id>)).
  returned: when O(publish=true)
  type: list
  elements: str
"""

from ansible_collections.gitops.federation.plugins.module_utils.k8s.lazy_kubernetes import install as light_kubernetes

light_kubernetes()  # before the imports below load the kubernetes library: only the parts the client uses
from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import parse_inventory_clusters
from ansible_collections.gitops.federation.plugins.module_utils.apply.source_policy import SourcePolicy
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_handoff import publish
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_steps import prepare
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_windows import parse_windows
from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import LIMITS_ARG_SPEC


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
        policies=dict(type="list", elements="dict", default=[]),
        publish=dict(type="bool", default=False),
        ref_override=dict(type="raw"),
        leases=dict(type="bool", default=True),
        sync_windows=dict(type="list", elements="raw", default=[]),
        force=dict(type="bool", default=False),
        retry_held=dict(type="bool", default=False),
        **LIMITS_ARG_SPEC
    )


def run_module(module):
    params = module.params
    windows = parse_windows(params["sync_windows"])  # refused before any request
    if not params["projects"]:
        raise FederationError("no project to sync (option projects); define gitops_projects in the inventory or "
                              "pass -e project=<namespace>")
    policies = {}
    for entry in params["policies"]:
        if not entry.get("namespace") or not entry.get("name"):
            raise FederationError("policies: every entry needs namespace and name, got %r" % sorted(entry))
        key = "%s/%s" % (entry["namespace"], entry["name"])
        policies[key] = SourcePolicy.from_inventory(entry, entry["namespace"], "gitops_projects source %s" % key)
    client = module.client("management")
    try:
        result = prepare(client, params["projects"],
                         parse_inventory_clusters(params["clusters"]), params["holder"], params["cache_dir"],
                         source_name=params["source"], lease_duration=params["lease_duration"],
                         lease_wait=params["lease_wait"], check_mode=module.check_mode,
                         allow_local_urls=params["allow_local_urls"], kustomize_path=params["kustomize_path"],
                         policies=policies, limits=params["limits"], ref_override=params["ref_override"] or None,
                         leases_wanted=params["leases"], windows=windows, force=params["force"],
                         retry_held=params["retry_held"])
    except ApiError as err:
        # Every request of this step goes to the management cluster: say so, and that nothing else was touched.
        raise management_error(client, err)
    for warning in result.pop("warnings"):
        module.warn(warning)
    if params["publish"]:
        handoff = publish(client, result["plan"], check_mode=module.check_mode)
        result.update(run=handoff["run"], stored=handoff["stored"], collected=handoff["collected"],
                      changed=result["changed"] or handoff["changed"])
    module.exit_json(**result)


def management_error(client, err):
    """A management-cluster request failure as the error of the whole sync, naming the server and the cause."""
    unreachable = "cannot reach the API server %s: " % client.server
    if err.status == 0:
        what = "cannot reach it: " + (err.msg[len(unreachable):] if err.msg.startswith(unreachable) else err.msg)
    else:
        what = "%s (HTTP %s %s on %s %s)" % (err.msg, err.status, err.reason, err.method, err.path)
    return FederationError(
        "management cluster (API server %s): %s. The sync stopped before touching any attached cluster; check the "
        "management host's connection variables (kubeconfig, context, host, ca_cert, validate_certs)"
        % (client.server, what), status=err.status, server=client.server)


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()
