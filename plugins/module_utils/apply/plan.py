# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate a bundle against the cluster and order it into apply stages, before anything is written.

Every problem in the bundle is collected and reported at once, each naming its object; an invalid
bundle never reaches the cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import split_api_version
from ansible_collections.gitops.federation.plugins.module_utils.apply.drift import normalize
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.manifest_yaml import expand_lists
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import ObjectRef, stamp_owner
from ansible_collections.gitops.federation.plugins.module_utils.apply.source_policy import ALL, SourcePolicy

CRD_GROUP = "apiextensions.k8s.io"

# Apply order after the CRD/Namespace stage: what others refer to goes first (tiers run in order,
# objects within a tier concurrently). Kinds not listed go last.
_TIERS = (
    ("Namespace", "CustomResourceDefinition"),
    ("ServiceAccount", "Secret", "ConfigMap", "ResourceQuota", "LimitRange", "PriorityClass", "StorageClass",
     "PersistentVolume", "PersistentVolumeClaim", "ClusterRole", "Role", "NetworkPolicy", "PodDisruptionBudget"),
    ("ClusterRoleBinding", "RoleBinding", "Service"),
)
FOREIGN_NAMESPACE_POLICIES = ("reject", "rewrite")


class PlannedObject:
    """A validated desired object, stamped with our ownership, with its kind's API location."""

    __slots__ = ("ref", "obj", "resource", "tier", "index")

    def __init__(self, ref, obj, resource, tier, index):
        self.ref = ref
        self.obj = obj
        self.resource = resource  # None until a CRD from this bundle makes the kind served
        self.tier = tier
        self.index = index

    @property
    def api_version(self):
        return self.obj["apiVersion"]

    @property
    def is_crd(self):
        return self.ref.kind == "CustomResourceDefinition" and self.ref.group == CRD_GROUP


def _allowed(names):
    return " besides %s" % ", ".join(names) if names and names != ALL else ""


def tier_of(kind):
    for index, kinds in enumerate(_TIERS):
        if kind in kinds:
            return index
    return len(_TIERS)


def _describe(index, obj):
    if not isinstance(obj, dict):
        return "object #%d" % (index + 1)
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return "object #%d (%s %s)" % (index + 1, obj.get("kind") or "<no kind>", metadata.get("name") or "<no name>")


def _bundle_crds(objects):
    """(group, kind) -> CRD summary for CustomResourceDefinitions in the bundle itself."""
    defined = {}
    for obj in objects:
        if isinstance(obj, dict) and obj.get("kind") == "CustomResourceDefinition" and \
                str(obj.get("apiVersion", "")).startswith(CRD_GROUP + "/"):
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            if spec.get("group") and names.get("kind"):
                defined[(spec["group"], names["kind"])] = dict(
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    versions=[v.get("name") for v in spec.get("versions") or [] if v.get("served", True)],
                    plural=names.get("plural"))
    return defined


def plan(objects, discovery, namespace, owner, allow_cluster_scoped=False, foreign_namespace="reject", policy=None):
    """Validate objects and return PlannedObjects in apply order. Raises FederationError listing every problem.

    ``policy`` (a source_policy.SourcePolicy) says which cluster-scoped kinds and which namespaces besides
    ``namespace`` the bundle may hold; without one, ``allow_cluster_scoped`` allows every cluster-scoped kind
    and no other namespace.
    """
    if policy is None:
        policy = SourcePolicy(kinds=ALL if allow_cluster_scoped else ())
        kinds_hint, namespaces_hint = "set allow_cluster_scoped: true", "set foreign_namespace: rewrite to move it"
    else:
        kinds_hint = "an operator allows kinds with platform.cluster_scoped_kinds of the source in gitops_projects"
        namespaces_hint = "an operator allows namespaces with platform.namespaces of the source in gitops_projects"
    objects = expand_lists(objects)
    defined = _bundle_crds(objects)
    problems, planned, seen = [], [], {}
    for index, obj in enumerate(objects):
        what = _describe(index, obj)
        if not isinstance(obj, dict):
            problems.append("%s: not a mapping" % what)
            continue
        metadata = obj.get("metadata")
        missing = [f for f, ok in (("apiVersion", obj.get("apiVersion")), ("kind", obj.get("kind")),
                                   ("metadata.name", isinstance(metadata, dict) and metadata.get("name"))) if not ok]
        if missing:
            problems.append("%s: missing %s" % (what, ", ".join(missing)))
            continue
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        group, version = split_api_version(api_version)
        resource = discovery.find(api_version, kind)
        crd = defined.get((group, kind))
        if resource is None and crd is None:
            served = discovery.served_versions(group, kind)
            if served:
                problems.append("%s: %s is not served by the cluster (served versions of %s: %s)"
                                % (what, api_version, kind, ", ".join(served)))
            else:
                problems.append("%s: unknown kind %s %s: not served by the cluster and not defined by a "
                                "CustomResourceDefinition in this bundle" % (what, api_version, kind))
            continue
        if resource is None and version not in crd["versions"]:
            problems.append("%s: version %s of %s is not served by its CustomResourceDefinition (served: %s)"
                            % (what, version, kind, ", ".join(crd["versions"])))
            continue
        namespaced = resource.namespaced if resource is not None else crd["namespaced"]
        obj = dict(obj)
        metadata = dict(metadata)
        obj["metadata"] = metadata
        if namespaced:
            declared = metadata.get("namespace")
            if declared and declared != namespace and policy.allows_namespace(declared, namespace):
                namespace_of_object = declared
            elif declared and declared != namespace:
                if foreign_namespace == "rewrite":
                    metadata["namespace"] = namespace
                else:
                    problems.append("%s: namespace %r is not the project namespace %r and the source's policy "
                                    "allows no other namespace%s (%s, or fix the manifest)"
                                    % (what, declared, namespace, _allowed(policy.namespaces), namespaces_hint))
                    continue
                namespace_of_object = namespace
            else:
                namespace_of_object = namespace
            metadata["namespace"] = namespace_of_object
        else:
            if not policy.allows_kind(kind, group):
                problems.append("%s: %s is cluster-scoped and the source's policy allows no cluster-scoped %s%s "
                                "(%s)" % (what, kind, kind, _allowed(policy.kinds), kinds_hint))
                continue
            metadata.pop("namespace", None)
        ref = ObjectRef.of(obj)
        if ref in seen:
            problems.append("%s: duplicate of object #%d (%s)" % (what, seen[ref] + 1, ref))
            continue
        seen[ref] = index
        # resource stays None for kinds a CRD of this bundle defines: the engine resolves it once established.
        planned.append(PlannedObject(ref, stamp_owner(normalize(obj), owner), resource, tier_of(kind), index))
    if problems:
        raise FederationError("invalid bundle, nothing was applied (%d problem%s): %s"
                              % (len(problems), "" if len(problems) == 1 else "s", "; ".join(problems)),
                              problems=problems)
    planned.sort(key=lambda p: (p.tier, p.index))
    return planned
