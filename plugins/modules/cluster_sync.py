#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cluster_sync
short_description: Reconcile a bundle of manifests into one cluster's project namespace, idempotently
version_added: 0.1.0
description:
  - The apply engine of the collection. Every federated secret and every GitOps source reaches a cluster
    through it.
  - Validates every object before writing anything (apiVersion, kind and name present, no duplicates, kind
    served by the cluster or defined by a CustomResourceDefinition in the same bundle, namespace, scope),
    then asks the API server for a dry run of each new or drifted object, so an invalid object among valid
    ones writes nothing.
  - Applies with server-side apply under the field manager C(gitops-federation), in tiers (CRDs and
    Namespaces first, waited on until Established), and writes only the objects whose live state differs.
    A sync with nothing to change makes no write request and returns RV(ignore:changed=false).
  - Labels and annotates every object with its O(owner) and records an inventory (object references and
    O(revision)) in a ConfigMap in O(namespace) on the cluster.
  - Prunes objects that left the bundle, only when they are in the inventory and still carry the owner
    label and annotation. Objects it did not create are never touched.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
  - gitops.federation.health_checks
  - gitops.federation.management.optional
attributes:
  check_mode:
    support: full
    description: Reads live state and dry-runs changes on the server; nothing is written.
  diff_mode:
    support: full
    description: Before and after of every changed object; Secret values are redacted.
options:
  owner:
    description:
      - Identity of the set of objects this call manages, for example C(gitops/<namespace>/<source>).
      - Objects are labelled C(gitops.federation/owner) (a readable form or a digest of the id) and annotated
        with the exact id; prune and teardown check both.
      - An object that already carries another owner's annotation is refused (two owners must not declare the
        same object); objects without an owner are adopted.
    type: str
    required: true
  namespace:
    description:
      - The project namespace. Namespaced objects without a namespace are placed here; the inventory is
        stored here.
      - The owner's inventory is found in whichever namespace it is (one LIST across namespaces, or a GET here when
        the credentials may not list across namespaces). When it is elsewhere (the target namespace changed), it
        is moved here and the objects it lists in the old namespace are pruned; a teardown finds it wherever it is.
    type: str
    required: true
  manifests:
    description:
      - The objects to apply, as a list of dictionaries. Objects of a C(List) kind are expanded into their items.
      - Mutually exclusive with O(src).
    type: list
    elements: raw
  src:
    description:
      - Path (on the controller) of a rendered bundle, one multi-document YAML file, as written by
        M(gitops.federation.git_render). It is parsed exactly as C(kubectl apply -f) parses a file.
      - Mutually exclusive with O(manifests).
    type: path
  state:
    description:
      - V(present) reconciles the bundle. V(absent) deletes every object in the owner's inventory (that still
        carries the owner label), then the inventory itself; CustomResourceDefinitions are left in place unless
        O(platform.prune_crds=true).
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - Delete objects that are in the inventory but no longer in the bundle. When V(false) they are left in
        place and forgotten (reported as C(orphaned)).
      - Objects annotated C(gitops.federation/prune=disabled) are never pruned.
    type: bool
    default: true
  allow_empty:
    description:
      - Accept an empty bundle when the inventory is not empty, which prunes everything. Refused by default,
        because an empty render is more often a broken source than an intent.
    type: bool
    default: false
  foreign_namespace:
    description:
      - What to do with a namespaced object whose C(metadata.namespace) is not O(namespace).
      - V(reject) fails the whole sync, naming the objects; V(rewrite) moves them into O(namespace).
    type: str
    choices: [reject, rewrite]
    default: reject
  allow_cluster_scoped:
    description:
      - Allow cluster-scoped objects (Namespaces, CRDs, ClusterRoles, ...). Refused by default, since a project
        owns a namespace, not the cluster. O(platform) says which kinds instead, when given.
    type: bool
    default: false
  platform:
    description:
      - A source's platform policy (as in C(gitops_projects), see C(docs/resources.md)). When given it replaces
        O(allow_cluster_scoped) and lets namespaced objects keep a namespace it allows.
      - CustomResourceDefinitions are pruned and torn down only with O(platform.prune_crds=true); otherwise they
        are left in place and reported C(orphaned), since deleting a CRD deletes every custom resource of it.
    type: dict
    suboptions:
      cluster_scoped_kinds:
        description: Cluster-scoped kinds allowed (V(Kind) or V(Kind.group)), or V(all).
        type: raw
      namespaces:
        description: Namespaces besides O(namespace) the objects may be in, or V(all).
        type: raw
      prune_crds:
        description: Whether CustomResourceDefinitions may be pruned or torn down.
        type: bool
        default: false
  service_account:
    description:
      - Apply (and prune, tear down) as this ServiceAccount of the cluster (header C(Impersonate-User
        system:serviceaccount:<namespace>:<name>) on every request), so its RBAC bounds what is done. The
        connection's credentials need the C(impersonate) verb on it. A request its RBAC forbids fails the run
        before anything is written, naming the object and the ServiceAccount.
    type: str
  service_account_namespace:
    description: Namespace of O(service_account); O(namespace) when unset.
    type: str
  create_namespace:
    description:
      - Create O(namespace) when it does not exist. The namespace is not part of the inventory, so prune and
        teardown never delete it.
    type: bool
    default: false
  force_conflicts:
    description:
      - Take ownership of fields another field manager owns. Without it such conflicts fail the sync with a
        message naming the fields and the other manager.
    type: bool
    default: false
  wait:
    description:
      - Wait until every object is ready (kstatus rules; Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
        Pods, PersistentVolumeClaims, Services, CRDs, and any object with C(Ready), C(Reconciling) or C(Stalled)
        conditions), or O(wait_timeout) passes.
      - Fails early, naming the object and the reason, when an object reports failure (a Deployment past its
        C(progressDeadlineSeconds), a failed Job, a crash-looping Pod, a C(Stalled) condition).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for readiness when O(wait=true).
    type: int
    default: 300
  revision:
    description:
      - The source revision being applied (for example C(main@sha1:<commit>)); recorded in the inventory.
    type: str
  overrides:
    description:
      - Per-cluster overrides with a target, applied to the bundle's objects before anything else (what
        M(gitops.federation.gitops_source_info) returns as C(sources[].clusters[<cluster>].overrides)).
      - Each operation patches the objects its C(target) selects (C(kind), C(name), optionally C(group) and
        C(namespace)) with C(op) V(add), V(replace) or V(remove) at the RFC 6901 C(path). A target that selects
        no object, or a path that does not exist, fails the sync before anything is written.
    type: list
    elements: dict
  lease:
    description:
      - Keep the sync Lease of a GitOps source (see M(gitops.federation.sync_lease)) held while this task works.
        It must still be held by O(lease.holder) when the task starts (else nothing is done), and a background
        thread renews it every O(lease.duration)/3 seconds on the management cluster (O(management)) until
        the task ends, so long health waits never let it expire.
      - If another run takes it meanwhile the task fails after its work, naming the new holder (the change
        set is returned); it never carries on silently. Not used in check mode.
    type: dict
    suboptions:
      namespace:
        description: The project namespace holding the Lease on the management cluster.
        type: str
        required: true
      source:
        description: The GitOps source the Lease guards (Lease C(gitops-sync-<source>)).
        type: str
        required: true
      holder:
        description: This run's identity, as given to M(gitops.federation.sync_lease).
        type: str
        required: true
      duration:
        description: Seconds after the last renewal at which the Lease expires, as given to M(gitops.federation.sync_lease).
        type: int
        default: 900
notes:
  - Requests scale with the number of kinds, not objects, when nothing changed; the result's RV(api_requests)
    shows them by verb.
  - The cluster must serve aggregated discovery (Kubernetes 1.26+) for the fast path; older servers fall back
    to per-group discovery.
seealso:
  - module: gitops.federation.git_render
"""

EXAMPLES = r"""
- name: Apply a rendered bundle to one cluster
  gitops.federation.cluster_sync:
    kubeconfig: /etc/clusters/attached-1.kubeconfig
    owner: gitops/team-a/podinfo
    namespace: team-a
    src: /var/cache/gitops/team-a/podinfo/bundle.yaml
    revision: main@sha1:4b76adcc78cc5a231fa5d8e7cf2f764df10c7568
    wait: true
    wait_timeout: 120

- name: Apply inline manifests without pruning
  gitops.federation.cluster_sync:
    context: attached-2
    owner: gitops/team-a/settings
    namespace: team-a
    prune: false
    manifests:
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: settings
        data:
          level: debug

- name: Wait for a custom resource using a JMESPath readiness rule
  gitops.federation.cluster_sync:
    owner: gitops/team-a/db
    namespace: team-a
    src: bundle.yaml
    wait: true
    health_checks:
      - kind: Database
        current: "status.phase == 'Running'"
        failed: "status.phase == 'Error'"

- name: Remove everything this owner applied
  gitops.federation.cluster_sync:
    owner: gitops/team-a/podinfo
    namespace: team-a
    state: absent
"""

RETURN = r"""
change_set:
  description: One entry per object, sorted by action, saying what was done (or would be, in check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - subject: Deployment.apps/team-a/podinfo
      apiVersion: apps/v1
      kind: Deployment
      namespace: team-a
      name: podinfo
      action: configured
counts:
  description:
    - Number of objects per action (created, configured, recreated, unchanged, pruned, deleted, skipped, orphaned,
      failed). C(recreated) objects were deleted and created again because an immutable field changed and they
      are annotated C(gitops.federation/force=enabled).
  returned: always
  type: dict
  sample: {created: 0, configured: 1, recreated: 0, unchanged: 7, pruned: 0, deleted: 0, skipped: 0, orphaned: 0,
           failed: 0}
msg:
  description: With O(state=absent), what the teardown did, and where the owner's inventory was found (or that none was).
  returned: when O(state=absent)
  type: str
  sample: deleted 3 objects of gitops/team-a/podinfo (inventory team-a-eu/gitops-inventory-gitops.team-a.podinfo-1a2b3c4d)
summary:
  description: The counts as one line.
  returned: always
  type: str
  sample: configured 1, unchanged 7
inventory:
  description: Where the owner's inventory is stored and what it holds after this run.
  returned: always
  type: dict
  sample: {name: gitops-inventory-gitops.team-a.podinfo-1a2b3c4d, namespace: team-a, revision: main@sha1:4b76adc, objects: 8}
health:
  description: Readiness of each object when O(wait=true).
  returned: always
  type: list
  elements: dict
  sample: [{subject: Deployment.apps/team-a/podinfo, status: Current, message: 2/2 replicas ready}]
lease_renewals:
  description: How many times the Lease of O(lease) was renewed while the task worked.
  returned: when O(lease) is given
  type: int
  sample: 2
api_requests:
  description: API requests made, by verb (dry runs counted apart), and C(writes), the number of write requests.
  returned: always
  type: dict
  sample: {GET: 5, writes: 0}
"""

import copy

from ansible_collections.gitops.federation.plugins.module_utils.k8s.auth_options import MANAGEMENT_ARG_SPEC
from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main, sync_return
from ansible_collections.gitops.federation.plugins.module_utils.apply.engine import Engine
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.health import HEALTH_CHECK_OPTIONS, parse_health_checks
from ansible_collections.gitops.federation.plugins.module_utils.federation.lease import LeaseKeeper, SyncLease
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import load_bundle
from ansible_collections.gitops.federation.plugins.module_utils.federation.overrides import apply_object_overrides
from ansible_collections.gitops.federation.plugins.module_utils.apply.source_policy import SourcePolicy


def argspec():
    return dict(
        owner=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        manifests=dict(type="list", elements="raw"),
        src=dict(type="path"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        prune=dict(type="bool", default=True),
        allow_empty=dict(type="bool", default=False),
        foreign_namespace=dict(type="str", choices=["reject", "rewrite"], default="reject"),
        allow_cluster_scoped=dict(type="bool", default=False),
        platform=dict(type="dict", options=dict(
            cluster_scoped_kinds=dict(type="raw"),
            namespaces=dict(type="raw"),
            prune_crds=dict(type="bool", default=False),
        )),
        service_account=dict(type="str"),
        service_account_namespace=dict(type="str"),
        create_namespace=dict(type="bool", default=False),
        force_conflicts=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=300),
        health_checks=dict(type="list", elements="dict", options=HEALTH_CHECK_OPTIONS),
        revision=dict(type="str"),
        overrides=dict(type="list", elements="dict"),
        lease=dict(type="dict", options=dict(
            namespace=dict(type="str", required=True),
            source=dict(type="str", required=True),
            holder=dict(type="str", required=True),
            duration=dict(type="int", default=900),
        )),
        management=dict(type="dict", options=MANAGEMENT_ARG_SPEC),
    )


def lease_keeper(module):
    """A LeaseKeeper for the lease option (a keeper of nothing without it)."""
    params = module.params
    lease = params["lease"]
    if not lease:
        return LeaseKeeper([])
    if not params["management"]:
        raise FederationError("lease needs management: the connection to the management cluster holding the Lease")
    client = module.management_client()
    return LeaseKeeper([SyncLease(client, lease["namespace"], lease["source"], lease["holder"], lease["duration"])])


def source_policy(params):
    """The SourcePolicy of options platform/service_account, or None (allow_cluster_scoped decides)."""
    if params["platform"] is None and not params["service_account"]:
        return None
    platform = params["platform"] or ({"cluster_scoped_kinds": "all"} if params["allow_cluster_scoped"] else {})
    return SourcePolicy.from_inventory(
        dict(platform=platform, service_account=params["service_account"],
             service_account_namespace=params["service_account_namespace"]), params["namespace"], "cluster_sync")


def run_module(module):
    params = module.params
    policy = source_policy(params)
    options = module.sync_options(policy=policy,
                                  owner=params["owner"], namespace=params["namespace"], prune=params["prune"], wait=params["wait"],
                                  wait_timeout=params["wait_timeout"], force_conflicts=params["force_conflicts"],
                                  allow_cluster_scoped=params["allow_cluster_scoped"], allow_empty=params["allow_empty"],
                                  revision=params["revision"], foreign_namespace=params["foreign_namespace"],
                                  health_checks=parse_health_checks(params["health_checks"]), create_namespace=params["create_namespace"])
    client = module.client()
    if policy is not None and policy.impersonated_user:
        client = client.impersonating(policy.impersonated_user)
    engine = Engine(client, options)
    keeper = lease_keeper(module) if not module.check_mode else LeaseKeeper([])
    try:
        with keeper:
            try:
                if params["state"] == "absent":
                    result = engine.teardown()
                else:
                    if params["manifests"] is not None:
                        # The module redacts Secret values in its arguments when it returns (ClusterModule):
                        # the engine works on its own copy.
                        objects = copy.deepcopy(params["manifests"])
                    else:
                        objects = load_bundle(params["src"])
                    if params["overrides"]:
                        objects = apply_object_overrides(objects, params["overrides"])
                    result = engine.sync(objects)
            except FederationError as err:
                if keeper.lost:  # the lease loss is the news: the failure may well follow from it
                    err.msg = "%s; and: %s" % ("; ".join(keeper.lost), err.msg)
                raise
    finally:
        engine.close()
    returned = sync_return(result, client, module)
    try:
        keeper.check()
    except FederationError as err:
        returned.update(err.details)
        module.fail_json(msg=err.msg, **returned)
    if params["lease"]:
        returned["lease_renewals"] = keeper.renewals
    if params["state"] == "absent":
        # Said plainly, so a teardown that found nothing is not reported as one that deleted something.
        counts = returned["counts"]
        if result.found:
            returned["msg"] = "%s %d object%s of %s (inventory %s)" % (
                "would delete" if module.check_mode else "deleted", counts["deleted"],
                "" if counts["deleted"] == 1 else "s", params["owner"], ", ".join(result.found))
        else:
            returned["msg"] = "no inventory of %s on this cluster: nothing to delete" % params["owner"]
    module.exit_json(**returned)


def main():
    # no_log=True keeps the arguments (which may hold Secret manifests) out of the system log; results and
    # diffs are still returned, with Secret values redacted, and the arguments echoed in `invocation` have their
    # Secret values and kubeconfig credentials hidden on every exit, argument errors included (GitopsModule).
    module_main(argspec(), run_module, no_log=True, mutually_exclusive=[("manifests", "src")],
                required_if=[("state", "present", ("manifests", "src"), True)])


if __name__ == "__main__":
    main()
