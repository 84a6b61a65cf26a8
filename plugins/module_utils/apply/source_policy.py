# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a GitOps source may write on attached clusters: its scope (tenant or platform) and its identity.

A **tenant** source (the default) holds objects of its project namespace only. A **platform** source is
allowed by the operator, per source, in the inventory (``gitops_projects``): which cluster-scoped kinds it
may hold, which namespaces besides the project's it may write to, and whether CRDs it applied may be
pruned (deleting a CRD deletes every custom resource of it, so never by default). A source may also be
applied as a ServiceAccount of the attached cluster (impersonation), so RBAC bounds what it can do.

The sync takes the policy from the operator's inventory only. The federated object carries a copy (written
by the sources role, shown to kubectl users), but a tenant who can write the project namespace can edit it:
a copy that claims more than the operator's policy is ignored and reported (``claim_problems``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

ALL = "*"
_ALL_WORDS = ("all", ALL)
TENANT = "tenant"
PLATFORM = "platform"
CRD_KIND = "CustomResourceDefinition"
CRD_GROUP = "apiextensions.k8s.io"


def _names(value, where, option):
    """ALL, or a sorted tuple of names, from an inventory value: 'all', '*' or a list of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        if value.strip().lower() in _ALL_WORDS:
            return ALL
        raise FederationError("%s: %s must be a list of names or 'all', got %r" % (where, option, value))
    if not isinstance(value, (list, tuple)):
        raise FederationError("%s: %s must be a list of names or 'all', got %r" % (where, option, value))
    names = set()
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise FederationError("%s: %s must hold non-empty strings, got %r" % (where, option, item))
        if item.strip() == ALL:
            return ALL
        names.add(item.strip())
    return tuple(sorted(names))


def _covers(allowed, wanted):
    """True when the allowed names (ALL or a tuple) include every wanted one."""
    if allowed == ALL:
        return True
    if wanted == ALL:
        return False
    return set(wanted) <= set(allowed)


def _phrase(names, empty):
    if names == ALL:
        return "all"
    return ", ".join(names) if names else empty


class SourcePolicy:
    """One source's policy. ``kinds`` and ``namespaces`` are ALL or tuples of names."""

    def __init__(self, kinds=(), namespaces=(), prune_crds=False, service_account=None):
        self.kinds = kinds if kinds == ALL else tuple(sorted(set(kinds)))
        self.namespaces = namespaces if namespaces == ALL else tuple(sorted(set(namespaces)))
        self.prune_crds = bool(prune_crds)
        self.service_account = tuple(service_account) if service_account else None  # (namespace, name)

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_inventory(cls, entry, project, where=None):
        """The operator's policy of a ``gitops_projects`` source entry (options platform, service_account,
        service_account_namespace); a ServiceAccount is in the project namespace unless one is named."""
        entry = entry or {}
        where = where or "gitops_projects source %s/%s" % (project, entry.get("name"))
        platform = entry.get("platform") or {}
        if not isinstance(platform, dict):
            raise FederationError("%s: platform must be a dict (cluster_scoped_kinds, namespaces, prune_crds), got %r"
                                  % (where, platform))
        unknown = sorted(set(platform) - set(("cluster_scoped_kinds", "namespaces", "prune_crds")))
        if unknown:
            raise FederationError("%s: unknown platform option %s (known: cluster_scoped_kinds, namespaces, "
                                  "prune_crds)" % (where, ", ".join(unknown)))
        prune_crds = platform.get("prune_crds", False)
        if not isinstance(prune_crds, bool):
            raise FederationError("%s: platform.prune_crds must be true or false, got %r" % (where, prune_crds))
        account = entry.get("service_account")
        account_namespace = entry.get("service_account_namespace")
        if account_namespace and not account:
            raise FederationError("%s: service_account_namespace is set without service_account" % where)
        if account is not None and (not isinstance(account, str) or not account.strip()):
            raise FederationError("%s: service_account must be a ServiceAccount name, got %r" % (where, account))
        return cls(_names(platform.get("cluster_scoped_kinds"), where, "platform.cluster_scoped_kinds"),
                   _names(platform.get("namespaces"), where, "platform.namespaces"), prune_crds,
                   (account_namespace or project, account.strip()) if account else None)

    @classmethod
    def from_template(cls, template_spec, project):
        """What a FederatedKustomization's template claims (spec.template.spec.platform, serviceAccountName)."""
        platform = (template_spec or {}).get("platform") or {}
        account = (template_spec or {}).get("serviceAccountName")
        where = "FederatedKustomization in %s" % project
        try:
            kinds = _names(platform.get("clusterScopedKinds"), where, "platform.clusterScopedKinds")
            namespaces = _names(platform.get("namespaces"), where, "platform.namespaces")
        except FederationError:
            kinds, namespaces = ALL, ALL  # unreadable: treat as the widest claim (it is ignored anyway)
        return cls(kinds, namespaces, platform.get("pruneCRDs") is True,
                   ((template_spec or {}).get("serviceAccountNamespace") or project, account) if account else None)

    @classmethod
    def from_plan(cls, data):
        """The policy carried in a sync plan (``to_plan``); None or {} is the tenant default."""
        data = data or {}
        account = data.get("service_account")
        return cls(data.get("cluster_scoped_kinds") or (), data.get("namespaces") or (), data.get("prune_crds"),
                   (account["namespace"], account["name"]) if account else None)

    def to_plan(self):
        return dict(cluster_scoped_kinds=self.kinds if self.kinds == ALL else list(self.kinds),
                    namespaces=self.namespaces if self.namespaces == ALL else list(self.namespaces),
                    prune_crds=self.prune_crds, scope=self.scope,
                    service_account=dict(namespace=self.service_account[0], name=self.service_account[1])
                    if self.service_account else None)

    def to_template(self):
        """The copy written on the federated object (spec.template.spec fields), for kubectl users."""
        fields = {}
        if self.is_platform or self.prune_crds:
            fields["platform"] = {"clusterScopedKinds": [ALL] if self.kinds == ALL else list(self.kinds),
                                  "namespaces": [ALL] if self.namespaces == ALL else list(self.namespaces),
                                  "pruneCRDs": self.prune_crds}
        if self.service_account:
            fields["serviceAccountName"] = self.service_account[1]
            fields["serviceAccountNamespace"] = self.service_account[0]
        return fields

    # -- decisions -----------------------------------------------------------------------------

    @property
    def is_platform(self):
        return bool(self.kinds) or bool(self.namespaces)

    @property
    def scope(self):
        return PLATFORM if self.is_platform else TENANT

    def allows_kind(self, kind, group=""):
        """A cluster-scoped kind is allowed when listed as Kind or Kind.group (or all kinds are)."""
        if self.kinds == ALL:
            return True
        return kind in self.kinds or ("%s.%s" % (kind, group) if group else kind) in self.kinds

    def allows_namespace(self, namespace, project_namespace):
        return namespace == project_namespace or self.namespaces == ALL or namespace in self.namespaces

    def may_prune(self, ref):
        """False for a CustomResourceDefinition unless prune_crds: deleting one deletes all its custom resources."""
        return self.prune_crds or not (ref.kind == CRD_KIND and ref.group == CRD_GROUP)

    @property
    def impersonated_user(self):
        if not self.service_account:
            return None
        return "system:serviceaccount:%s:%s" % self.service_account

    def describe(self):
        text = "%s (cluster-scoped kinds: %s; other namespaces: %s; CRDs pruned: %s)" % (
            self.scope, _phrase(self.kinds, "none"), _phrase(self.namespaces, "none"),
            "yes" if self.prune_crds else "never")
        if self.service_account:
            text += "; applied as ServiceAccount %s/%s" % self.service_account
        return text

    def claim_problems(self, claim):
        """How a claimed policy (the federated object's copy) goes beyond this one; [] when it does not."""
        problems = []
        if claim.kinds == ALL and self.kinds != ALL:
            problems.append("cluster-scoped kinds all")
        elif claim.kinds != ALL:
            # "Kind.group" is covered by "Kind" (any group) too; "Kind" only by "Kind" itself.
            extra = [k for k in claim.kinds if not self.allows_kind(*k.split(".", 1))]
            if extra:
                problems.append("cluster-scoped kinds %s" % ", ".join(extra))
        if not _covers(self.namespaces, claim.namespaces):
            extra = "all" if claim.namespaces == ALL else ", ".join(n for n in claim.namespaces
                                                                    if n not in self.namespaces)
            problems.append("namespaces %s" % extra)
        if claim.prune_crds and not self.prune_crds:
            problems.append("pruning CRDs")
        if claim.service_account != self.service_account:
            problems.append("ServiceAccount %s" % ("%s/%s" % claim.service_account if claim.service_account
                                                   else "none (the controller's own credentials)"))
        return problems


def policies_from_projects(projects):
    """{'namespace/name': SourcePolicy} of every source of the operator's gitops_projects."""
    policies = {}
    for project in projects or []:
        namespace = project.get("namespace")
        for entry in project.get("sources") or []:
            key = "%s/%s" % (namespace, entry.get("name"))
            policies[key] = SourcePolicy.from_inventory(entry, namespace)
    return policies


def effective_policy(key, operator_policies, claim):
    """(policy, note): the operator's policy of a source (the tenant default when it declares none), and a
    warning when the federated object claims more than it (the claim is ignored)."""
    policy = (operator_policies or {}).get(key) or SourcePolicy()
    problems = policy.claim_problems(claim) if claim is not None else []
    if not problems:
        return policy, None
    return policy, ("FederatedKustomization %s claims %s beyond the operator's policy; the sync uses the "
                    "operator's policy from the inventory (gitops_projects): %s"
                    % (key, "; ".join(problems), policy.describe()))
