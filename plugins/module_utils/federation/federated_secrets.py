# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Federated secrets: the FederatedSecret + Secret pair on the management cluster, and propagation.

A FederatedSecret holds only the template metadata (labels, annotations), the type, the placement and
the overrides. The values live in the Secret of the same name in the same namespace of the management
cluster. Propagation builds, for one attached cluster, a Secret manifest per FederatedSecret placed on
it (the management Secret's data + the template metadata + that cluster's overrides); the apply engine
applies them under one owner per project, so a Secret whose FederatedSecret is gone or no longer
placed on the cluster is pruned there.

The empty-set guard (``check_empty_propagation``): when nothing is to be propagated to a cluster that
still holds propagated Secrets, they are pruned only if the management cluster *confirmed* the empty
set: the project namespace exists there (or FederatedSecrets were listed in it) and its FederatedSecrets
were listed, so the user deleted the last one or placed them elsewhere. A namespace that does not exist
(or cannot be read) on the management cluster is what a wrong kubeconfig, context or project name looks
like, so the propagation is refused and nothing is deleted, unless the caller allows an empty set.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.engine import Engine, SyncOptions
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import (
    API_VERSION, FEDERATED_SECRET, FEDERATED_SECRET_LABEL, FederationStore, managed_labels)
from ansible_collections.gitops.federation.plugins.module_utils.apply.inventory import Inventory, LegacyOwner
from ansible_collections.gitops.federation.plugins.module_utils.federation.overrides import (
    apply_template_overrides, normalize_overrides, override_cluster_names)
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import InventoryCluster, resolve_placement
from ansible_collections.gitops.federation.plugins.module_utils.federation.secret_data import data_keys

# Owner ids are disjoint by subject kind: a source is gitops/<namespace>/<source> (exactly three segments
# under "gitops/"), a project's federated secrets gitops-secrets/<namespace>. Releases before this one used
# gitops/<namespace>/federated-secrets for the secrets, which a source named federated-secrets shared.
SECRETS_OWNER = "gitops-secrets/%s"
LEGACY_SECRETS_OWNER = "gitops/%s/federated-secrets"
_VALUE_PATHS = ("/data", "/stringData")
_FIXED_PATHS = ("/apiVersion", "/kind", "/metadata/name", "/metadata/namespace")


def secrets_owner(namespace):
    """The owner id under which a project's federated secrets are applied to attached clusters."""
    return SECRETS_OWNER % namespace


def secrets_legacy_owners(namespace):
    """The owner id earlier releases used for the project's secrets; its Secrets are migrated once."""
    return [LegacyOwner(LEGACY_SECRETS_OWNER % namespace, claims=lambda ref: ref.group == "" and ref.kind == "Secret")]


def check_secret_overrides(overrides, where):
    """Overrides of a FederatedSecret never carry values and never change the Secret's identity."""
    for entry in overrides:
        for index, op in enumerate(entry["clusterOverrides"]):
            context = "%s[clusterName=%s].clusterOverrides[%d] (%s %s)" % (
                where, entry["clusterName"], index, op["op"], op["path"])
            if op.get("target") is not None:
                raise FederationError("%s: target is not supported on a FederatedSecret; its overrides patch the "
                                      "propagated Secret itself" % context)
            path = op["path"]
            if op["op"] != "remove" and any(path == p or path.startswith(p + "/") for p in _VALUE_PATHS):
                raise FederationError("%s: overrides never carry secret values (they would be stored in the custom "
                                      "resource); keys under /data can only be removed" % context)
            if any(path == p or path.startswith(p + "/") for p in _FIXED_PATHS):
                raise FederationError("%s: the name, namespace and kind of a propagated Secret cannot be overridden"
                                      % context)


def desired_federated_secret(name, namespace, secret_type=None, labels=None, annotations=None, placement=None,
                             overrides=None):
    where = "FederatedSecret %s/%s overrides" % (namespace, name)
    normalized = normalize_overrides(overrides, where)
    check_secret_overrides(normalized, where)
    template = {}
    metadata = dict((k, v) for k, v in (("labels", labels), ("annotations", annotations)) if v)
    if metadata:
        template["metadata"] = metadata
    if secret_type:
        template["type"] = secret_type
    spec = {"template": template, "placement": placement or {}}
    if normalized:
        spec["overrides"] = normalized
    return {"apiVersion": API_VERSION, "kind": FEDERATED_SECRET,
            "metadata": {"name": name, "namespace": namespace, "labels": managed_labels()}, "spec": spec}


def desired_secret(name, namespace, secret_type, data):
    """The management cluster's Secret holding a FederatedSecret's values."""
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": managed_labels({FEDERATED_SECRET_LABEL: name})},
            "type": secret_type, "data": data}


def propagated_secret(federated_secret, secret, cluster):
    """The Secret manifest for one attached cluster (no namespace: the engine places it in the project)."""
    metadata = federated_secret["metadata"]
    name, namespace = metadata["name"], metadata.get("namespace")
    spec = federated_secret.get("spec") or {}
    template = spec.get("template") or {}
    template_metadata = template.get("metadata") or {}
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
           "type": template.get("type") or secret.get("type") or "Opaque",
           "data": copy.deepcopy(secret.get("data") or {})}
    for key in ("labels", "annotations"):
        if template_metadata.get(key):
            obj["metadata"][key] = dict(template_metadata[key])
    where = "FederatedSecret %s/%s overrides" % (namespace, name)
    overrides = normalize_overrides(spec.get("overrides"), where)
    check_secret_overrides(overrides, where)
    return apply_template_overrides(obj, overrides, cluster, where)


def secret_manifests_for_cluster(cluster, federated_secrets, secrets):
    """The Secret manifests of every FederatedSecret placed on one attached cluster.

    cluster is a placement.InventoryCluster; secrets maps a name to the management cluster's Secret
    (missing when it does not exist, which is an error: propagating nothing would prune the copies).
    Returns (manifests, names of the FederatedSecrets placed here).
    """
    manifests, placed = [], []
    for federated_secret in federated_secrets:
        metadata = federated_secret["metadata"]
        placement = resolve_placement((federated_secret.get("spec") or {}).get("placement"), [cluster],
                                      "FederatedSecret %s/%s placement" % (metadata.get("namespace"), metadata["name"]))
        if cluster.name not in placement:
            continue
        secret = secrets.get(metadata["name"])
        if secret is None:
            identity = "%s/%s" % (metadata.get("namespace"), metadata["name"])
            raise FederationError("FederatedSecret %s: its Secret %s does not exist on the management cluster, so no "
                                  "secret was propagated to cluster %s (create it, for example with "
                                  "gitops.federation.federated_secret)" % (identity, identity, cluster.name))
        manifests.append(propagated_secret(federated_secret, secret, cluster.name))
        placed.append(metadata["name"])
    return manifests, placed


class ProjectSecrets:
    """A project's FederatedSecrets and their Secrets, as read from the management cluster.

    ``confirmed`` says whether the management cluster showed the project exists (its namespace could be
    read, or FederatedSecrets were found in it); ``missing`` explains why not.
    """

    def __init__(self, namespace, federated_secrets, secrets, confirmed, missing=None, server=None):
        self.namespace = namespace
        self.federated_secrets = federated_secrets
        self.secrets = secrets
        self.confirmed = confirmed
        self.missing = missing
        self.server = server


def read_project_secrets(store, namespace):
    """Read a project's FederatedSecrets and Secrets from the management cluster (a FederationStore)."""
    federated_secrets = store.list(FEDERATED_SECRET, namespace)
    secrets = {}
    for federated_secret in federated_secrets:
        name = federated_secret["metadata"]["name"]
        live = store.get("Secret", namespace, name)
        if live is not None:
            secrets[name] = live
    confirmed, missing = bool(federated_secrets), None
    if not confirmed:
        namespaces = store.client.discovery().find("v1", "Namespace")
        try:
            confirmed = store.client.get(namespaces, namespace) is not None
            if not confirmed:
                missing = "has no namespace %s" % namespace
        except ApiError as err:
            missing = "does not let these credentials read namespace %s (%s)" % (namespace, err.msg)
    return ProjectSecrets(namespace, federated_secrets, secrets, confirmed, missing, store.client.server)


def check_empty_propagation(project, cluster, manifests, propagated_count, allow_empty=False):
    """Refuse to prune every propagated Secret of a cluster on an unconfirmed empty set (see the module doc).

    propagated_count is the number of objects in the project's federated-secrets inventory on the cluster.
    Returns the engine's allow_empty: True when an empty set may prune (confirmed, or allowed).
    """
    if manifests or not propagated_count or allow_empty or project.confirmed:
        return True
    raise FederationError(
        "refusing to prune the %d propagated Secret%s of project %s from cluster %s: the management cluster %s %s, "
        "so no FederatedSecret was found (a wrong management kubeconfig, context or project name?). Nothing was "
        "deleted. If the project's federated secrets are really gone, set allow_empty: true."
        % (propagated_count, "" if propagated_count == 1 else "s", project.namespace, cluster,
           project.server or "", project.missing or "did not confirm the project"),
        project=project.namespace, propagated=propagated_count)


def propagate_secrets(client, management_client, namespace, cluster, cluster_labels=None, create_namespace=False,
                      check_mode=False, allow_empty=False, state="present"):
    """Propagate a project's federated secrets to one cluster (state absent: remove them) with the apply engine,
    under the project's secrets owner. Returns (SyncResult, the names of the Secrets placed on the cluster).

    The one way federated_secret_sync and the sync's cluster step (sync_steps) do it: the Secrets are read from
    the management cluster here, and an empty set the management cluster did not confirm never prunes
    (check_empty_propagation).
    """
    owner, legacy_owners = secrets_owner(namespace), secrets_legacy_owners(namespace)
    manifests, placed, may_prune_all = [], [], True
    if state == "present":
        project = read_project_secrets(FederationStore(management_client), namespace)
        labels = dict((str(k), str(v)) for k, v in (cluster_labels or {}).items())
        manifests, placed = secret_manifests_for_cluster(InventoryCluster(cluster, labels), project.federated_secrets,
                                                         project.secrets)
        project.secrets.clear()  # the values now live only in the manifests, until the engine is done with them
        propagated = len(Inventory.read(client, owner, namespace, legacy_owners).entries) if not manifests else 0
        may_prune_all = check_empty_propagation(project, cluster, manifests, propagated, allow_empty)
    engine = Engine(client, SyncOptions(owner=owner, namespace=namespace, prune=True, allow_empty=may_prune_all,
                                        create_namespace=create_namespace, check_mode=check_mode,
                                        legacy_owners=legacy_owners))
    try:
        result = engine.sync(manifests) if state == "present" else engine.teardown()
    finally:
        engine.close()
    return result, placed


def secret_view(federated_secret, secret, clusters):
    """What gitops_source_info reports about a FederatedSecret: never a value, only key names."""
    metadata = federated_secret["metadata"]
    spec = federated_secret.get("spec") or {}
    status = federated_secret.get("status") or {}
    placement = resolve_placement(spec.get("placement"), clusters)
    inventory = set(c.name for c in clusters)
    unknown = sorted(set(placement.unknown) | set(n for n in override_cluster_names(spec.get("overrides"))
                                                  if n not in inventory))
    template = spec.get("template") or {}
    return dict(
        name=metadata["name"], namespace=metadata.get("namespace"), generation=metadata.get("generation"),
        type=template.get("type") or (secret or {}).get("type"),
        labels=(template.get("metadata") or {}).get("labels") or {},
        annotations=(template.get("metadata") or {}).get("annotations") or {},
        placement=spec.get("placement") or {}, overrides=spec.get("overrides") or [],
        placed=placement.placed, unknown_clusters=unknown,
        secret_exists=secret is not None, data_keys=data_keys(secret),
        status=dict(clusters=status.get("clusters") or [], conditions=status.get("conditions") or [],
                    observed_generation=status.get("observedGeneration")),
    )


def secret_status_results(change_set_entries, cluster):
    """Per Secret name, this cluster's result for gitops_status (kind FederatedSecret), from a change set."""
    results = {}
    for entry in change_set_entries:
        if entry.get("kind") != "Secret":
            continue
        action = entry.get("action")
        if action in ("pruned", "deleted"):
            result = dict(cluster=cluster, status="Deleted", counts={action: 1})
        elif action in ("skipped", "orphaned"):
            result = dict(cluster=cluster, status="Deleted", counts={action: 1}, message=entry.get("message"))
        elif action == "failed":
            result = dict(cluster=cluster, status="Failed", counts={action: 1}, message=entry.get("message"))
        else:
            result = dict(cluster=cluster, status="Applied", counts={action: 1})
        results[entry["name"]] = dict((k, v) for k, v in result.items() if v is not None)
    return results
