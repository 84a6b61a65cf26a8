#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gitops_source
short_description: Create, update, suspend, resume or delete a GitOps source of a project
version_added: 0.1.0
description:
  - A GitOps source is a C(FederatedGitRepository) (where to fetch, C(types.kubefed.io/v1beta1)) and a
    C(FederatedKustomization) (what to render and how to apply it) of the same name in the project namespace of
    the management cluster. The sync renders O(path) of the repository at O(ref) and applies it to the project
    namespace of every attached cluster the source is placed on.
  - Writes only what differs from the live objects (server-side apply, field manager
    C(gitops-federation-config)), so a second run with the same options reports RV(ignore:changed=false).
  - The options describe the whole source; an option left out is removed from the source, except O(suspend),
    which is left as it is when not given, so a playbook never resumes a source an operator suspended with
    C(kubectl patch).
  - O(state=absent) deletes the pair, but only once the sync has removed the source's objects from every cluster
    (the FederatedKustomization's C(status.clusters) is empty), unless O(orphan=true).
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
  - gitops.federation.overrides.targets
  - gitops.federation.health_checks
attributes:
  check_mode:
    support: full
    description: Reads the live objects and dry-runs the changes on the server; nothing is written.
  diff_mode:
    support: full
    description: Before and after of the FederatedGitRepository and the FederatedKustomization.
options:
  name:
    description: Name of the source (of both objects).
    type: str
    required: true
  namespace:
    description: The project namespace on the management cluster.
    type: str
    required: true
  state:
    description: V(present) creates or updates the source, V(absent) deletes it (see O(orphan)).
    type: str
    choices: [present, absent]
    default: present
  orphan:
    description:
      - With O(state=absent), delete the source even though its objects are still on clusters; they are left
        there, unmanaged.
    type: bool
    default: false
  url:
    description:
      - URL of the git repository (https, http, ssh, git or file URL, or scp-like C(git@host:org/repo.git)).
      - Never put credentials in it; name a federated secret in O(secret).
      - Required with O(state=present).
    type: str
  ref:
    description: What to deploy. At most one key; without any, the repository's default branch.
    type: dict
    suboptions:
      branch:
        description: A branch name.
        type: str
      tag:
        description: A tag name.
        type: str
      semver:
        description: A semantic version range; the highest matching tag.
        type: str
      commit:
        description: A commit SHA (7 to 40 hex digits).
        type: str
  path:
    description: Directory of the repository to render (kustomize, or plain YAML read recursively). The root when unset.
    type: str
  secret:
    description:
      - Name of the federated secret (see M(gitops.federation.federated_secret)) holding the git credentials, with
        keys C(username)/C(password), C(bearerToken), or C(identity)/C(known_hosts).
    type: str
  scm:
    description: The SCM hosting the repository (used for webhooks).
    type: str
    choices: [github, gitlab, bitbucket, gitea, generic]
    default: github
  prune:
    description: Delete objects from the clusters when they leave the repository.
    type: bool
    default: true
  wait:
    description: Wait for the applied objects to become ready on each cluster.
    type: bool
    default: false
  force:
    description: Take ownership of fields another field manager owns on the clusters.
    type: bool
    default: false
  timeout:
    description:
      - Timeout of fetching, applying and waiting, as a Go duration such as V(90s), V(5m) or V(1h30m). Five
        minutes when unset.
    type: str
  ignore:
    description: Paths of the repository to ignore, in C(.gitignore) format.
    type: str
  suspend:
    description:
      - V(true) suspends the source (no sync; what is on the clusters stays as it is, hand fixes survive), V(false)
        resumes it. When not given the live value is kept.
    type: bool
  target_namespace:
    description: Namespace the objects are applied to on each cluster. The project namespace when unset.
    type: str
  platform:
    description:
      - Make this a platform source (the operator's decision), written on the FederatedKustomization as
        C(spec.template.spec.platform) for kubectl users to see. Without it the source is a tenant source (objects of
        its project namespace only, no cluster-scoped object).
      - The sync never takes the policy from the object (a tenant who can write the project namespace could widen
        it); it uses the operator's C(gitops_projects) (option C(policies) of M(gitops.federation.sync_plan)), and
        reports a copy that claims more.
    type: dict
    suboptions:
      cluster_scoped_kinds:
        description: Cluster-scoped kinds the source may hold (V(Kind) or V(Kind.group)), or V(all).
        type: raw
      namespaces:
        description: Namespaces besides the project's the source may write to, or V(all).
        type: raw
      prune_crds:
        description:
          - Whether CustomResourceDefinitions the source applied may be pruned or torn down. Never by default,
            since deleting a CRD deletes every custom resource of it on the cluster; kept CRDs are reported
            C(orphaned).
        type: bool
        default: false
  service_account:
    description:
      - Name of a ServiceAccount on the attached clusters the source's objects are applied as (Kubernetes
        impersonation, as Flux's C(serviceAccountName)), so its RBAC bounds what the source can do. Written as
        C(spec.template.spec.serviceAccountName); the sync uses the operator's C(gitops_projects) value.
    type: str
  service_account_namespace:
    description: Namespace of O(service_account) on the attached clusters; the project namespace when unset.
    type: str
  substitute:
    description: Variables for C(${VAR}) substitution in the rendered manifests (C(postBuild.substitute)).
    type: dict
  clusters:
    description: Names of the attached clusters (inventory host names) to deploy to (C(placement.clusters)).
    type: list
    elements: str
  cluster_selector:
    description:
      - Deploy to the clusters whose C(cluster_labels) match (C(placement.clusterSelector)). Either a label selector
        with C(matchLabels) and C(matchExpressions), or a plain dictionary of labels. An empty dictionary selects
        every attached cluster. The source goes to the union of O(clusters) and the selected clusters.
    type: dict
  rollout:
    description:
      - Rollout rings (C(spec.rollout.rings) of the FederatedKustomization), in order. The sync of
        C(playbooks/sync.yml) reconciles ring after ring; each ring's clusters must become healthy (the source
        waits, whatever O(wait) says) and stay healthy for the ring's C(bake) time before the next ring starts.
      - Each placed cluster belongs to the first ring that lists it in C(clusters) or whose C(cluster_selector)
        matches its labels; a ring with neither takes every cluster left and must be the last one. A placed
        cluster in no ring makes the source fail to sync (nothing is written).
      - When a ring fails (an apply, its health wait or its bake), later rings are not synced and each failed
        cluster of the ring is synced back to the last revision that was healthy there; that revision is not
        rolled out again until the commit or the source changes, or a sync runs with
        C(-e gitops_rollout_retry=true).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the ring (unique within the source).
        type: str
        required: true
      clusters:
        description: Attached clusters (inventory host names) of this ring.
        type: list
        elements: str
      cluster_selector:
        description: The clusters whose C(cluster_labels) match (a label selector or a plain label dictionary).
        type: dict
      bake:
        description:
          - How long the ring's workloads must stay healthy after they became healthy (a Go duration such as
            V(10m)); health is re-checked every few seconds and at the end. No bake when omitted.
        type: str
      timeout:
        description: How long to wait for the ring to become healthy; the source's O(timeout) when omitted.
        type: str
notes:
  - O(overrides) without C(target) patch the source's template for that cluster. Paths under C(/spec/url), C(/spec/ref),
    C(/spec/secretRef), C(/spec/ignore) and C(/spec/scm) change the FederatedGitRepository (for example another
    branch), all others the FederatedKustomization (for example V(/spec/path) for another overlay, or
    V(/spec/postBuild/substitute/REPLICAS)).
seealso:
  - module: gitops.federation.federated_secret
  - module: gitops.federation.gitops_source_info
  - module: gitops.federation.gitops_status
"""

EXAMPLES = r"""
- name: A platform source (the operator's policy is also passed to the sync from gitops_projects)
  gitops.federation.gitops_source:
    kubeconfig: /etc/clusters/management.kubeconfig
    namespace: platform
    name: monitoring
    url: https://git.example.com/platform/monitoring.git
    cluster_selector: {}
    platform:
      cluster_scoped_kinds: [CustomResourceDefinition, ClusterRole, ClusterRoleBinding]
      namespaces: [kube-system]
    service_account: gitops-monitoring

- name: Deploy the production overlay of the main branch to every attached cluster
  gitops.federation.gitops_source:
    kubeconfig: /etc/clusters/management.kubeconfig
    namespace: team-a
    name: podinfo
    url: https://github.com/example/podinfo-deploy.git
    ref:
      branch: main
    path: overlays/production
    secret: git-credentials
    cluster_selector: {}
    substitute:
      REPLICAS: "2"
    overrides:
      - cluster_name: attached-2
        cluster_overrides:
          - path: /spec/postBuild/substitute/REPLICAS
            value: "4"
          - path: /spec/replicas
            value: 4
            target:
              kind: Deployment
              name: podinfo

- name: Roll out canary first, then the EU clusters (baked 10 minutes), then the rest
  gitops.federation.gitops_source:
    namespace: team-a
    name: podinfo
    url: https://github.com/example/podinfo-deploy.git
    ref: {branch: main}
    cluster_selector: {}
    rollout:
      - name: canary
        clusters: [attached-1]
      - name: eu
        cluster_selector: {region: eu}
        bake: 10m
      - name: rest

- name: Suspend the source during an incident
  gitops.federation.gitops_source:
    namespace: team-a
    name: podinfo
    url: https://github.com/example/podinfo-deploy.git
    suspend: true

- name: Delete the source once the sync has removed its objects from every cluster
  gitops.federation.gitops_source:
    namespace: team-a
    name: podinfo
    state: absent
"""

RETURN = r"""
federated_git_repository:
  description: The FederatedGitRepository as applied (metadata and spec).
  returned: when O(state=present)
  type: dict
  sample:
    kind: FederatedGitRepository
    metadata: {name: podinfo, namespace: team-a}
    spec:
      template: {spec: {url: "https://github.com/example/podinfo-deploy.git", ref: {branch: main}, scm: github}}
federated_kustomization:
  description: The FederatedKustomization as applied (metadata and spec).
  returned: when O(state=present)
  type: dict
  sample:
    kind: FederatedKustomization
    metadata: {name: podinfo, namespace: team-a}
    spec:
      template: {spec: {sourceRef: {kind: GitRepository, name: podinfo}, path: overlays/production, prune: true}}
      placement: {clusterSelector: {}}
actions:
  description: What happened to each object (created, configured, unchanged, deleted, absent).
  returned: always
  type: dict
  sample: {federated_git_repository: unchanged, federated_kustomization: configured}
suspended:
  description: Whether the source is suspended after this run.
  returned: when O(state=present)
  type: bool
  sample: false
"""

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import (
    CONFIG_FIELD_MANAGER, FEDERATED_GIT_REPOSITORY, FEDERATED_KUSTOMIZATION, FEDERATED_SECRET, spec_view)
from ansible_collections.gitops.federation.plugins.module_utils.federation.gitops_sources import (
    applied_clusters, desired_objects, owned_suspend)
from ansible_collections.gitops.federation.plugins.module_utils.apply.health import HEALTH_CHECK_OPTIONS
from ansible_collections.gitops.federation.plugins.module_utils.federation.overrides import override_options, overrides_from_options
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import placement_from_options
from ansible_collections.gitops.federation.plugins.module_utils.apply.source_policy import SourcePolicy


def argspec():
    return dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        orphan=dict(type="bool", default=False),
        url=dict(type="str"),
        ref=dict(type="dict", options=dict(
            branch=dict(type="str"), tag=dict(type="str"), semver=dict(type="str"), commit=dict(type="str"))),
        path=dict(type="str"),
        secret=dict(type="str", no_log=False),
        scm=dict(type="str", choices=["github", "gitlab", "bitbucket", "gitea", "generic"], default="github"),
        prune=dict(type="bool", default=True),
        wait=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        timeout=dict(type="str"),
        ignore=dict(type="str"),
        suspend=dict(type="bool"),
        target_namespace=dict(type="str"),
        platform=dict(type="dict", options=dict(
            cluster_scoped_kinds=dict(type="raw"),
            namespaces=dict(type="raw"),
            prune_crds=dict(type="bool", default=False),
        )),
        service_account=dict(type="str"),
        service_account_namespace=dict(type="str"),
        health_checks=dict(type="list", elements="dict", options=HEALTH_CHECK_OPTIONS),
        substitute=dict(type="dict"),
        clusters=dict(type="list", elements="str"),
        cluster_selector=dict(type="dict"),
        overrides=dict(type="list", elements="dict", options=override_options(targets=True)),
        rollout=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            clusters=dict(type="list", elements="str"),
            cluster_selector=dict(type="dict"),
            bake=dict(type="str"),
            timeout=dict(type="str"),
        )),
    )


def run_module(module):
    params = module.params
    name, namespace = params["name"], params["namespace"]
    store = module.store()
    live_kustomization = store.get(FEDERATED_KUSTOMIZATION, namespace, name)
    if params["state"] == "absent":
        remaining = applied_clusters(live_kustomization)
        if remaining and not params["orphan"]:
            raise FederationError(
                "GitOps source %s/%s still has objects on %d cluster%s (%s, per the FederatedKustomization's "
                "status.clusters): run the sync to remove them first, or set orphan: true to leave them there "
                "unmanaged" % (namespace, name, len(remaining), "" if len(remaining) == 1 else "s", ", ".join(remaining)),
                clusters=remaining)
        kustomization = store.delete(FEDERATED_KUSTOMIZATION, namespace, name, module.check_mode, live=live_kustomization)
        repository = store.delete(FEDERATED_GIT_REPOSITORY, namespace, name, module.check_mode)
        changes = [repository, kustomization]
        result = dict(actions=dict(federated_git_repository=repository.action,
                                   federated_kustomization=kustomization.action))
        if remaining:
            result["orphaned_clusters"] = remaining
    else:
        live_spec = (((live_kustomization or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        git_repository, kustomization = desired_objects(
            name, namespace, params["url"], ref=params["ref"], path=params["path"], secret=params["secret"],
            scm=params["scm"], timeout=params["timeout"], ignore=params["ignore"], prune=params["prune"],
            wait=params["wait"], force=params["force"], suspend=params["suspend"],
            target_namespace=params["target_namespace"], health_checks=params["health_checks"],
            substitute=params["substitute"],
            placement=placement_from_options(params["clusters"], params["cluster_selector"]),
            overrides=overrides_from_options(params["overrides"]), rollout=params["rollout"],
            live_suspend=owned_suspend(live_kustomization, CONFIG_FIELD_MANAGER))
        policy = SourcePolicy.from_inventory(
            dict(name=name, platform=params["platform"], service_account=params["service_account"],
                 service_account_namespace=params["service_account_namespace"]), namespace,
            "gitops_source %s/%s" % (namespace, name))
        kustomization["spec"]["template"]["spec"].update(policy.to_template())
        if params["secret"] and store.get(FEDERATED_SECRET, namespace, params["secret"]) is None:
            module.warn("GitOps source %s/%s uses secret %s, but FederatedSecret %s/%s does not exist (yet)"
                        % (namespace, name, params["secret"], namespace, params["secret"]))
        repository = store.apply(git_repository, module.check_mode)
        kustomization = store.apply(kustomization, module.check_mode, live=live_kustomization, fetch=False)
        changes = [repository, kustomization]
        suspended = bool(((kustomization.after.get("spec") or {}).get("template") or {}).get("spec", {}).get("suspend"))
        result = dict(
            federated_git_repository=spec_view(repository.after),
            federated_kustomization=spec_view(kustomization.after),
            actions=dict(federated_git_repository=repository.action, federated_kustomization=kustomization.action),
            suspended=suspended,
        )
    return module.config_result(changes, **result)


def main():
    module_main(argspec(), run_module, required_if=[("state", "present", ("url",))])


if __name__ == "__main__":
    main()
