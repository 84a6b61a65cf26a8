# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply engine: reconcile one owner's bundle into one cluster, idempotently.

One engine for federated secrets, GitOps sources and teardown. The steps of a sync, in order:

1. plan     validate every object against discovery and the source's policy (which cluster-scoped kinds,
            which namespaces besides the project's); order into tiers (CRDs/Namespaces first)
2. read     live state: one LIST per kind and namespace (owner label selector), a GET only for objects
            not found
3. assess   per object: refused if another owner of ours holds it; unchanged (owned fields already
            match, no request), else a server-side dry-run decides created/configured (recreated when
            an immutable field changed and the object asks for it); conflicts and server rejections
            stop the sync here
4. apply    server-side apply of what changed, tier by tier, concurrently within a tier; CRDs are
            waited on until Established before their custom resources are applied
5. prune    delete what left the bundle, only if it is in our inventory and still carries our owner;
            a kind missing from discovery counts as deleted only when no CRD/APIService defines it;
            a CRD only when the policy allows it (deleting it deletes all its custom resources)
6. record   store the inventory (refs + revision) on the cluster, only when it changed
7. wait     optional kstatus-style health, bounded by wait_timeout

Nothing is written before steps 1-3 pass for every object whose kind and namespace already exist. A
no-op sync makes no write request at all. With a ServiceAccount (the policy's), the client given is an
impersonating one: every request of steps 2-7 is made as it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.gitops.federation.plugins.module_utils.apply import change_set as actions
from ansible_collections.gitops.federation.plugins.module_utils.apply.change_set import ChangeSet
from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError, split_api_version
from ansible_collections.gitops.federation.plugins.module_utils.apply.drift import drift_of
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.health import CURRENT, FAILED, assess
from ansible_collections.gitops.federation.plugins.module_utils.apply.inventory import Inventory
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import (
    FIELD_MANAGER, OWNER_ANNOTATION, ObjectRef, is_owned_by, owner_selector)
from ansible_collections.gitops.federation.plugins.module_utils.apply.plan import plan, tier_of
from ansible_collections.gitops.federation.plugins.module_utils.apply.source_policy import ALL, SourcePolicy

APPLY_CONCURRENCY = 8
CRD_ESTABLISH_TIMEOUT = 60
# A kind whose owner-label LIST misses more objects than this is listed once without the selector (adoption).
LOOKUPS_PER_KIND = 2
PRUNE_DISABLED_ANNOTATION = "gitops.federation/prune"
# Opt-in, per object (as Flux's kustomize.toolkit.fluxcd.io/force): when the API server refuses an apply
# because an immutable field changed, delete the object and create it again.
FORCE_ANNOTATION = "gitops.federation/force"
FORCE_ENABLED = "enabled"
RECREATE_TIMEOUT = 60
CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
API_SERVICE = ("apiregistration.k8s.io/v1", "APIService")


def _list_scopes(planned):
    """(resource, namespace) pairs to LIST: one per kind and namespace the bundle holds ('' cluster-scoped)."""
    scopes = {}
    for p in planned:
        if p.resource is not None:
            key = (p.resource.group, p.resource.version, p.resource.kind, p.ref.namespace)
            scopes.setdefault(key, (p.resource, p.ref.namespace if p.resource.namespaced else ""))
    return list(scopes.values())


class _Refused(FederationError):
    """An object this sync must not write (reported with the other problems, before any write)."""


def is_immutable_rejection(err):
    """True when the API server refused a change because it touches an immutable field."""
    texts = [err.msg or ""] + [c.get("message") or "" for c in err.causes]
    return err.status == 422 and any("immutable" in text for text in texts)


def force_enabled(obj):
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(FORCE_ANNOTATION) == FORCE_ENABLED


class SyncOptions:
    """What the caller asks for; defaults are the safe ones."""

    def __init__(self, owner, namespace, prune=True, wait=False, wait_timeout=300, force_conflicts=False,
                 allow_cluster_scoped=False, allow_empty=False, revision=None, foreign_namespace="reject",
                 health_checks=(), create_namespace=False, check_mode=False, legacy_owners=(), policy=None):
        if not owner:
            raise FederationError("owner is required: it identifies the set of objects this sync manages")
        if not namespace:
            raise FederationError("namespace is required: the project namespace holds the objects and the inventory")
        self.owner = owner
        self.namespace = namespace
        self.prune = prune
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.force_conflicts = force_conflicts
        self.allow_cluster_scoped = allow_cluster_scoped
        self.allow_empty = allow_empty
        self.revision = revision
        self.foreign_namespace = foreign_namespace
        self.health_checks = list(health_checks)
        self.create_namespace = create_namespace
        self.check_mode = check_mode
        # inventory.LegacyOwner ids an earlier release used for these objects: read and adopted once.
        self.legacy_owners = tuple(legacy_owners)
        # A source's policy (source_policy.SourcePolicy): cluster-scoped kinds and other namespaces it may hold,
        # whether its CRDs may be pruned. Without one, allow_cluster_scoped decides (cluster_sync's options).
        self.source_policy = policy
        self.policy = policy or SourcePolicy(kinds=ALL if allow_cluster_scoped else ())

    def owns(self, live, ref):
        """True when a live object carries our owner, or a legacy owner that claims it."""
        return is_owned_by(live, self.owner) or any(
            legacy.claims(ref) and is_owned_by(live, legacy.owner) for legacy in self.legacy_owners)


class SyncResult:
    def __init__(self, change_set, inventory, health=None, namespace_created=False, found=()):
        self.change_set = change_set
        self.inventory = inventory
        self.found = list(found)  # where the owner's inventory was found ('namespace/name'), before this run
        self.health = health or []
        self.namespace_created = namespace_created

    @property
    def changed(self):
        return self.change_set.changed or self.namespace_created


class Engine:
    def __init__(self, client, options):
        self.client = client
        self.options = options
        self.changes = ChangeSet()
        self._pool = ThreadPoolExecutor(max_workers=APPLY_CONCURRENCY)
        self._kind_answers = {}

    def close(self):
        self._pool.shutdown(wait=True)

    # -- public entry points -------------------------------------------------------------------

    def sync(self, objects):
        opts = self.options
        planned = plan(objects, self.client.discovery(), opts.namespace, opts.owner,
                       opts.allow_cluster_scoped, opts.foreign_namespace, opts.source_policy)
        inventory = Inventory.read(self.client, opts.owner, opts.namespace, opts.legacy_owners)
        if not planned and inventory.entries and not opts.allow_empty:
            raise FederationError(
                "the bundle is empty but the inventory %s/%s lists %d objects of %s; refusing to prune them all "
                "(an empty render is more often a broken source than an intent). Set allow_empty: true to delete "
                "them." % (opts.namespace, inventory.name, len(inventory.entries), opts.owner))
        namespace_missing = self._namespace_missing()
        namespace_created = False
        if namespace_missing and not opts.check_mode:
            # Create the namespace first so the API server can validate (dry-run) every object in it
            # before the first one is written: no partial apply on a new namespace.
            namespace_created = self._create_namespace()
            namespace_missing = False
        try:
            live = self._read_live(planned)
            # Objects in a namespace this bundle creates cannot be dry-run before it exists: like custom resources
            # of the bundle's CRDs, they are assessed once the Namespace tier is written (platform sources).
            created = self._namespaces_created(planned, live)
            assessed = self._assess_all(
                [p for p in planned if p.resource is not None and p.ref.namespace not in created], live,
                namespace_missing)
        except FederationError as err:
            if namespace_created:
                raise self._undo_namespace(err)
            raise
        if opts.check_mode:
            return self._preview(planned, assessed, live, inventory, namespace_missing)
        try:
            self._record_pending(inventory, planned)
            self._apply_tiers(planned, assessed, live)
            survivors = self._prune(inventory, set(p.ref for p in planned))
            entries = dict((p.ref, p.api_version) for p in planned)
            entries.update(survivors)
            if not inventory.same_as(entries, opts.revision):
                inventory.write(self.client, entries, opts.revision)
        except FederationError as err:
            err.details.update(self._partial_details())
            raise
        health = self._wait_healthy(planned) if opts.wait else []
        return SyncResult(self.changes, inventory, health, namespace_created)

    def teardown(self):
        """Delete everything in the owner's inventory (only what still carries our owner), then the inventory."""
        opts = self.options
        inventory = Inventory.read(self.client, opts.owner, opts.namespace, opts.legacy_owners, relocate=False)
        if not inventory.exists:
            return SyncResult(self.changes, inventory)
        found = inventory.locations
        try:
            survivors = self._delete_refs(sorted(inventory.entries.items()), actions.DELETED)
            if not opts.check_mode:
                if survivors:
                    inventory.write(self.client, survivors, inventory.revision)
                else:
                    inventory.delete(self.client)
        except FederationError as err:
            err.details.update(self._partial_details())
            raise
        if survivors:
            raise FederationError("teardown of %s incomplete: %d objects could not be deleted (%s); they stay in "
                                  "the inventory and a rerun retries them"
                                  % (opts.owner, len(survivors), ", ".join(str(r) for r in sorted(survivors))),
                                  **self._partial_details())
        return SyncResult(self.changes, inventory, found=found)

    # -- read and assess -----------------------------------------------------------------------

    def _namespace_missing(self):
        namespaces = self.client.discovery().find("v1", "Namespace")
        try:
            return self.client.get(namespaces, self.options.namespace) is None
        except ApiError as err:
            if err.forbidden:  # a namespace-scoped identity cannot read Namespaces; assume it exists
                return False
            raise

    def _undo_namespace(self, err):
        """Validation failed after this sync created the (still empty) namespace: delete it again, and say so."""
        namespaces = self.client.discovery().find("v1", "Namespace")
        try:
            self.client.delete(namespaces, self.options.namespace)
            note = "namespace %s, created by this sync for validation, was deleted again" % self.options.namespace
        except ApiError as delete_err:
            note = ("namespace %s was created by this sync for validation and could not be deleted again (%s); "
                    "it is empty" % (self.options.namespace, delete_err.msg))
        err.msg = "%s (%s)" % (err.msg, note)
        err.args = (err.msg,)
        return err

    def _create_namespace(self):
        if not self.options.create_namespace:
            raise FederationError("namespace %s does not exist on cluster %s; create it or set create_namespace: true"
                                  % (self.options.namespace, self.client.server))
        namespaces = self.client.discovery().find("v1", "Namespace")
        self.client.apply(namespaces, {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": self.options.namespace}}, FIELD_MANAGER)
        return True

    def _namespaces_created(self, planned, live):
        """Namespaces (other than the project's) that this bundle creates: not on the cluster yet."""
        return set(p.ref.name for p in planned if p.ref.kind == "Namespace" and p.ref.group == ""
                   and p.ref not in live and p.ref.name != self.options.namespace)

    def _read_live(self, planned):
        """Live objects by ref: one LIST per kind, then what that LIST did not return.

        The LIST selects our owner label, so objects we have not labelled yet (first adoption, or a
        label removed by hand) are looked up again: one GET each when a kind misses a few, else one
        LIST of the kind without the selector (a first sync: one request per kind, not one per object).
        """
        selector = owner_selector(self.options.owner)

        def list_kind(scope, label_selector=selector):
            resource, namespace = scope
            try:
                return self.client.list(resource, namespace or None, label_selector)
            except ApiError as err:
                subjects = ", ".join(str(p.ref) for p in planned if p.resource is resource
                                     and p.ref.namespace == namespace)
                raise FederationError("cannot read live %s objects for %s, nothing was applied: %s%s"
                                      % (resource.kind, subjects, err.msg, self._forbidden_hint(err)),
                                      status=err.status)

        live = {}
        for items in self._map(list_kind, _list_scopes(planned)):
            for item in items:
                live[ObjectRef.of(item)] = item
        missing = [p for p in planned if p.resource is not None and p.ref not in live]
        by_kind = {}
        for p in missing:
            by_kind.setdefault((p.resource, p.ref.namespace), []).append(p)
        singles = [p for members in by_kind.values() if len(members) <= LOOKUPS_PER_KIND for p in members]
        listed = [scope for scope, members in by_kind.items() if len(members) > LOOKUPS_PER_KIND]
        for p, obj in zip(singles, self._map(lambda p: self.client.get(p.resource, p.ref.name, p.ref.namespace or None),
                                             singles)):
            if obj is not None:
                live[p.ref] = obj
        wanted = set(p.ref for p in missing)
        for items in self._map(lambda scope: list_kind(scope, None), listed):
            for item in items:
                ref = ObjectRef.of(item)
                if ref in wanted:
                    live[ref] = item
        return live

    def _assess_all(self, planned, live, namespace_missing):
        """ref -> (action, after) for every object whose kind is served; raise on conflicts or rejections."""
        problems = []

        def assess_one(p):
            try:
                return p.ref, self._assess(p, live.get(p.ref), namespace_missing)
            except ApiError as err:
                problems.append(self._describe_rejection(p, err))
            except _Refused as err:
                problems.append(err.msg)
            return p.ref, None

        assessed = dict(self._map(assess_one, planned))
        if problems:
            raise FederationError("the API server refused %d object%s, nothing was applied: %s"
                                  % (len(problems), "" if len(problems) == 1 else "s", "; ".join(problems)),
                                  problems=problems)
        return assessed

    def _assess(self, p, live, namespace_missing=False):
        if live is None:
            if namespace_missing and p.ref.namespace:
                return actions.CREATED, p.obj  # nothing to dry-run against until the namespace exists
            return actions.CREATED, self._server_apply(p, dry_run=True)
        if (live.get("metadata") or {}).get("deletionTimestamp"):
            raise FederationError("%s is being deleted on the cluster; rerun once it is gone" % (p.ref,))
        self._refuse_foreign_owner(p, live)
        try:
            after = drift_of(p.obj, live, lambda: self._server_apply(p, dry_run=True))
        except ApiError as err:
            if is_immutable_rejection(err) and force_enabled(p.obj):
                return actions.RECREATED, p.obj
            raise
        return (actions.UNCHANGED, None) if after is None else (actions.CONFIGURED, after)

    def _refuse_foreign_owner(self, p, live):
        """An object another owner of ours applied is theirs: two sources must not fight over it.

        Objects without an owner (created by hand or by another tool) are adopted; objects carrying a
        legacy owner id of ours that claims them are migrated.
        """
        other = ((live.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
        if not other or other == self.options.owner:
            return
        if any(legacy.owner == other and legacy.claims(p.ref) for legacy in self.options.legacy_owners):
            return
        raise _Refused("%s already belongs to %s (annotation %s) and %s declares it too; refusing to take it over. "
                       "An object can have one owner: remove it from one of them (its owner then prunes it), "
                       "or delete the object" % (p.ref, other, OWNER_ANNOTATION, self.options.owner))

    def _server_apply(self, p, dry_run=False):
        return self.client.apply(p.resource, p.obj, FIELD_MANAGER, force=self.options.force_conflicts, dry_run=dry_run)

    def _describe_rejection(self, p, err):
        if err.conflict and err.causes:
            fields = ", ".join("%s (%s)" % (c.get("field", "?"), c.get("message", "")) for c in err.causes)
            return ("%s: field manager conflict on %s; another manager owns these fields. Fix the manifest, "
                    "or set force_conflicts: true to take ownership" % (p.ref, fields))
        if err.forbidden:
            return "%s: forbidden: %s%s" % (p.ref, err.msg, self._forbidden_hint(err))
        if err.status == 404 and p.ref.namespace:
            return "%s: %s (does namespace %s exist on this cluster?)" % (p.ref, err.msg, p.ref.namespace)
        detail = "; ".join("%s: %s" % (c.get("field", ""), c.get("message", "")) for c in err.causes) or err.msg
        if is_immutable_rejection(err):
            return ("%s: the change touches an immutable field (%s); the object cannot be updated in place. "
                    "Annotate it %s: %s to have it deleted and recreated, or delete it on the cluster"
                    % (p.ref, detail, FORCE_ANNOTATION, FORCE_ENABLED))
        return "%s: %s" % (p.ref, detail)

    # -- write ---------------------------------------------------------------------------------

    def _record_pending(self, inventory, planned):
        """Before creating anything new, add it to the inventory, so a crash mid-apply cannot orphan it."""
        new = dict((p.ref, p.api_version) for p in planned if p.ref not in inventory.entries)
        if new:
            entries = dict(inventory.entries)
            entries.update(new)
            inventory.write(self.client, entries, inventory.revision)

    def _apply_tiers(self, planned, assessed, live):
        tiers = sorted(set(p.tier for p in planned))
        for tier in tiers:
            members = [p for p in planned if p.tier == tier]
            pending = [p for p in members if p.resource is None]
            if pending:
                self._resolve_pending(pending)
            later = [p for p in members if p.ref not in assessed]
            if later:
                problems = []
                for p in later:
                    try:
                        assessed[p.ref] = self._assess(p, live.get(p.ref))
                    except ApiError as err:
                        problems.append(self._describe_rejection(p, err))
                    except _Refused as err:
                        problems.append(err.msg)
                if problems:
                    raise FederationError("the API server refused %d object%s of a kind or namespace this bundle "
                                          "creates (the stages before were applied): %s"
                                          % (len(problems), "" if len(problems) == 1 else "s", "; ".join(problems)),
                                          problems=problems)
            failures = []

            def write(p):
                action, preview = assessed[p.ref]
                if action == actions.UNCHANGED:
                    self.changes.add(p.ref, p.api_version, action)
                    return
                try:
                    if action == actions.RECREATED:
                        self._delete_for_recreate(p, live[p.ref])
                    stored = self._server_apply(p)
                except ApiError as err:
                    failures.append(self._describe_rejection(p, err))
                    self.changes.add(p.ref, p.api_version, actions.FAILED, message=err.msg)
                    return
                self.changes.add(p.ref, p.api_version, action, before=live.get(p.ref), after=stored)

            list(self._map(write, members))
            if failures:
                raise FederationError("apply failed for %d object%s (the cluster is partially applied; see "
                                      "change_set): %s" % (len(failures), "" if len(failures) == 1 else "s",
                                                           "; ".join(failures)), problems=failures)
            crds = [p for p in members if p.is_crd]
            if crds:
                self._wait_established(crds)

    def _delete_for_recreate(self, p, live):
        """Delete the live object (this very one: uid precondition) and wait until it is gone."""
        uid = live["metadata"].get("uid")
        self.client.delete(p.resource, p.ref.name, p.ref.namespace or None, uid=uid, propagation="Background")
        deadline = time.monotonic() + RECREATE_TIMEOUT
        while True:
            current = self.client.get(p.resource, p.ref.name, p.ref.namespace or None)
            if current is None or current["metadata"].get("uid") != uid:
                return
            if time.monotonic() > deadline:
                raise FederationError("%s: deleted to be recreated (%s: %s) but still present after %ds (finalizers: "
                                      "%s)" % (p.ref, FORCE_ANNOTATION, FORCE_ENABLED, RECREATE_TIMEOUT,
                                               ", ".join(current["metadata"].get("finalizers") or []) or "none"))
            time.sleep(0.2)

    def _wait_established(self, crds):
        deadline = time.monotonic() + CRD_ESTABLISH_TIMEOUT
        waiting = list(crds)
        while waiting:
            still = []
            for p in waiting:
                live = self.client.get(p.resource, p.ref.name)
                status, message = assess(live or {"kind": "CustomResourceDefinition"})
                if status == FAILED:
                    raise FederationError("%s: %s" % (p.ref, message))
                if status != CURRENT:
                    still.append(p)
            waiting = still
            if waiting:
                if time.monotonic() > deadline:
                    raise FederationError("CRDs not established after %ds: %s"
                                          % (CRD_ESTABLISH_TIMEOUT, ", ".join(str(p.ref) for p in waiting)))
                time.sleep(0.2)

    def _resolve_pending(self, pending):
        """Find the API location of kinds defined by this bundle's CRDs (discovery catches up asynchronously)."""
        deadline = time.monotonic() + CRD_ESTABLISH_TIMEOUT
        while True:
            discovery = self.client.discovery(refresh=True)
            for p in pending:
                p.resource = discovery.find(p.api_version, p.ref.kind)
            missing = [p for p in pending if p.resource is None]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise FederationError("kinds defined by this bundle's CRDs never appeared in discovery: %s"
                                      % ", ".join(sorted(set("%s %s" % (p.api_version, p.ref.kind) for p in missing))))
            time.sleep(0.5)

    # -- prune and teardown --------------------------------------------------------------------

    def _prune(self, inventory, desired):
        stale = sorted((ref, version) for ref, version in inventory.entries.items() if ref not in desired)
        return self._delete_refs(stale, actions.PRUNED)

    def _delete_refs(self, refs, action):
        """Delete refs in reverse apply order; return {ref: apiVersion} of those that failed (kept in inventory)."""
        survivors = {}
        tiers = sorted(set(tier_of(ref.kind) for ref, unused_version in refs), reverse=True)
        for tier in tiers:
            batch = [(ref, version) for ref, version in refs if tier_of(ref.kind) == tier]
            for ref, version, failure in self._map(lambda item: item + (self._delete_one(item[0], item[1], action),),
                                                   batch):
                if failure:
                    survivors[ref] = version
        return survivors

    def _delete_one(self, ref, api_version, action):
        """Delete one object if it is still ours; return an error message on failure, else None."""
        discovery = self.client.discovery()
        resource = discovery.find(api_version, ref.kind) or discovery.preferred(split_api_version(api_version)[0],
                                                                                ref.kind)
        if resource is None:
            why_kept = self._kind_not_definitely_gone(split_api_version(api_version)[0], ref.kind)
            if why_kept is None:
                return None  # definitely gone (no CRD or API service defines the kind any more): so is the object
            message = "%s is not served by the cluster now, and %s; kept in the inventory, retried next time" % (
                api_version, why_kept)
            self.changes.add(ref, api_version, actions.FAILED, message=message)
            return message
        try:
            live = self.client.get(resource, ref.name, ref.namespace or None)
            if live is None:
                return None
            annotations = (live.get("metadata") or {}).get("annotations") or {}
            if not self.options.owns(live, ref):
                self.changes.add(ref, api_version, actions.SKIPPED,
                                 message="no longer carries owner %s; left in place" % self.options.owner)
                return None
            if annotations.get(PRUNE_DISABLED_ANNOTATION) == "disabled":
                self.changes.add(ref, api_version, actions.SKIPPED,
                                 message="annotated %s: disabled; left in place" % PRUNE_DISABLED_ANNOTATION)
                return None
            if action == actions.PRUNED and not self.options.prune:
                self.changes.add(ref, api_version, actions.ORPHANED, message="prune is disabled; left in place")
                return None
            if not self.options.policy.may_prune(ref):
                # Deleting a CRD deletes every custom resource of it on the cluster, whoever made them.
                self.changes.add(ref, api_version, actions.ORPHANED,
                                 message="a CustomResourceDefinition is never deleted unless the source's policy "
                                         "allows it (platform.prune_crds); left in place, no longer managed")
                return None
            if not self.options.check_mode:
                self.client.delete(resource, ref.name, ref.namespace or None, uid=live["metadata"].get("uid"))
            self.changes.add(ref, api_version, action, before=live)
        except ApiError as err:
            self.changes.add(ref, api_version, actions.FAILED, message=err.msg)
            return err.msg
        return None

    def _kind_not_definitely_gone(self, group, kind):
        """None when a kind missing from discovery is definitely gone, else why we cannot be sure.

        Discovery omits a group whose aggregated API server is unavailable, and a CRD's kind while it
        is not (or not yet) served; only the absence of any CRD or aggregated APIService for the
        group+kind is a definite answer. Answers are cached for this run.
        """
        key = (group, kind)
        if key not in self._kind_answers:
            self._kind_answers[key] = self._ask_kind_gone(group, kind)
        return self._kind_answers[key]

    def _ask_kind_gone(self, group, kind):
        discovery = self.client.discovery()
        try:
            services = self.client.list(discovery.find(*API_SERVICE)) if discovery.find(*API_SERVICE) else []
            crds = self.client.list(discovery.find(*CRD)) if discovery.find(*CRD) else []
        except ApiError as err:
            return "whether its kind still exists cannot be told (%s)" % err.msg
        for crd in crds:
            spec = crd.get("spec") or {}
            if spec.get("group") == group and (spec.get("names") or {}).get("kind") == kind:
                return "its CustomResourceDefinition %s still exists" % crd["metadata"]["name"]
        aggregated = [s for s in services if (s.get("spec") or {}).get("group") == group
                      and (s.get("spec") or {}).get("service")]
        if aggregated:
            notes = []
            for service in aggregated:
                available = [c for c in (service.get("status") or {}).get("conditions") or []
                             if c.get("type") == "Available"]
                note = service["metadata"]["name"]
                if available and available[0].get("status") != "True":
                    note += " (unavailable: %s)" % (available[0].get("message") or available[0].get("reason"))
                notes.append(note)
            return "its group %s is served by the aggregated API %s" % (group or "core", ", ".join(notes))
        return None

    # -- check mode ----------------------------------------------------------------------------

    def _preview(self, planned, assessed, live, inventory, namespace_missing):
        """Check mode: report what a sync would do, with no write request at all."""
        if namespace_missing and not self.options.create_namespace:
            raise FederationError("namespace %s does not exist on cluster %s; create it or set create_namespace: true"
                                  % (self.options.namespace, self.client.server))
        for p in planned:
            if p.resource is None or p.ref not in assessed:  # its CRD or Namespace is in this bundle: created with it
                self.changes.add(p.ref, p.api_version, actions.CREATED, after=p.obj)
                continue
            action, after = assessed[p.ref]
            self.changes.add(p.ref, p.api_version, action, before=live.get(p.ref), after=after)
        self._prune(inventory, set(p.ref for p in planned))
        return SyncResult(self.changes, inventory, namespace_created=namespace_missing)

    # -- health --------------------------------------------------------------------------------

    def _wait_healthy(self, planned):
        """Poll (one LIST per kind) until every object is Current; fail early on Failed, or at wait_timeout."""
        deadline = time.monotonic() + self.options.wait_timeout
        selector = owner_selector(self.options.owner)
        scopes = _list_scopes(planned)
        delay = 0.5
        while True:
            live = {}
            for items in self._map(lambda scope: self.client.list(scope[0], scope[1] or None, selector), scopes):
                for item in items:
                    live[ObjectRef.of(item)] = item
            report = []
            for p in planned:
                obj = live.get(p.ref)
                status, message = assess(obj, self.options.health_checks) if obj else ("InProgress", "not found")
                report.append(dict(subject=str(p.ref), status=status, message=message))
            failed = [r for r in report if r["status"] == FAILED]
            waiting = [r for r in report if r["status"] not in (CURRENT, FAILED)]
            if failed or not waiting:
                if failed:
                    raise FederationError("health check failed: %s" % "; ".join(
                        "%s: %s" % (r["subject"], r["message"]) for r in failed), health=report,
                        **self._partial_details())
                return report
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # the last look was at the deadline: the wait did last wait_timeout
                raise FederationError("timed out after %ss waiting for %d object%s to become ready: %s" % (
                    self.options.wait_timeout, len(waiting), "" if len(waiting) == 1 else "s",
                    "; ".join("%s: %s" % (r["subject"], r["message"]) for r in waiting)),
                    health=report, **self._partial_details())
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 5)

    # -- helpers -------------------------------------------------------------------------------

    def _forbidden_hint(self, err):
        if not err.forbidden:
            return ""
        account = self.options.policy.service_account
        if account and getattr(self.client, "impersonate", None):
            return (" (this source is applied as ServiceAccount %s/%s: its RBAC on this cluster does not allow it)"
                    % account)
        return " (the credentials for this cluster lack permission)"

    def _map(self, func, items):
        if len(items) <= 1:
            return [func(item) for item in items]
        return list(self._pool.map(func, items))

    def _partial_details(self):
        return dict(change_set=self.changes.entries(), counts=self.changes.counts(),
                    partial=self.changes.changed)
