# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three steps of one sync run, each done in one module process (see docs/performance.md for why).

1. ``prepare`` (module ``sync_plan``, management cluster): read the projects' sources and federated secrets,
   take the leases, read the git credentials (kept in this process), fetch and render each source once,
   write the bundles, and return the plan (no secret in it).
2. ``reconcile`` (module ``cluster_reconcile``, once per attached cluster): validate every source placed on
   the cluster, propagate the projects' federated secrets, reconcile the sources (apply, or remove those
   placed elsewhere) with the one apply engine; return the cluster's report.
3. ``record`` (module ``sync_record``, management cluster): status and events of every source and federated
   secret from the clusters' reports, then the leases released.

Decisions (what is ready, what a cluster does, what failed) are the pure functions of ``sync_run``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import os
import shutil
import tempfile

from ansible_collections.gitops.federation.plugins.module_utils import render_cache, sync_run
from ansible_collections.gitops.federation.plugins.module_utils.client import ApiError, connect
from ansible_collections.gitops.federation.plugins.module_utils.engine import Engine, SyncOptions
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federated_secrets import (
    propagate_secrets, secret_status_results, secret_view)
from ansible_collections.gitops.federation.plugins.module_utils.federation import (
    FEDERATED_GIT_REPOSITORY, FEDERATED_KUSTOMIZATION, FEDERATED_SECRET, FederationStore)
from ansible_collections.gitops.federation.plugins.module_utils.gitops_sources import source_view
from ansible_collections.gitops.federation.plugins.module_utils.health import parse_health_checks
from ansible_collections.gitops.federation.plugins.module_utils.lease import LeaseKeeper, SyncLease
from ansible_collections.gitops.federation.plugins.module_utils.overrides import apply_object_overrides
from ansible_collections.gitops.federation.plugins.module_utils.plan import plan as plan_bundle
from ansible_collections.gitops.federation.plugins.module_utils.secret_data import git_credentials
from ansible_collections.gitops.federation.plugins.module_utils.sync_record import record_sync


# -- bundles ----------------------------------------------------------------------------------------------------


def management_id(server):
    """A short stable name for a management cluster (its API server URL), for paths."""
    return hashlib.sha256((server or "").rstrip("/").encode("utf-8")).hexdigest()[:16]


def bundle_path(cache_dir, server, namespace, source, render_id):
    """Where a source's render is kept: per management cluster, so runs against other management
    clusters (other inventories) never share, nor take each other's files for their own."""
    return os.path.join(cache_dir, "bundles", management_id(server), namespace, source, "render-%s.yaml" % render_id)


# -- step 1: prepare --------------------------------------------------------------------------------------------


class _Failure(dict):
    """A loop-result-shaped failure (``failed``, ``msg``), as sync_run expects."""

    def __init__(self, item, msg):
        super(_Failure, self).__init__(item=item, failed=True, msg=msg)


class _SecretReader(object):
    """Each Secret of a project namespace read once."""

    def __init__(self, store, namespace):
        self.store, self.namespace, self.live = store, namespace, {}

    def __call__(self, name):
        if name not in self.live:
            self.live[name] = self.store.get("Secret", self.namespace, name)
        return self.live[name]


def read_projects(store, projects, clusters, source_name=None):
    """(sources, secrets, credentials) of the projects; credentials {(namespace, secret): data or error}."""
    sources, secrets, credentials = [], [], {}
    for namespace in projects:
        kustomizations = store.list(FEDERATED_KUSTOMIZATION, namespace)
        if source_name:
            kustomizations = [k for k in kustomizations if k["metadata"]["name"] == source_name]
        repositories = dict((r["metadata"]["name"], r) for r in store.list(FEDERATED_GIT_REPOSITORY, namespace))
        secret = _SecretReader(store, namespace)

        for kustomization in kustomizations:
            spec = ((kustomization.get("spec") or {}).get("template") or {}).get("spec") or {}
            ref = (spec.get("sourceRef") or {}).get("name") or kustomization["metadata"]["name"]
            view = source_view(kustomization, repositories.get(ref), clusters)
            for render in view["renders"]:
                name = render.get("secret")
                if name and (namespace, name) not in credentials:
                    live = secret(name)
                    where = "Secret %s/%s" % (namespace, name)
                    try:
                        credentials[(namespace, name)] = (
                            git_credentials(live, where) if live is not None else
                            FederationError("%s (the credentials of source %s) does not exist" % (where, view["name"])))
                    except FederationError as err:
                        credentials[(namespace, name)] = err
            sources.append(view)
        secrets.extend(secret_view(fs, secret(fs["metadata"]["name"]), clusters)
                       for fs in store.list(FEDERATED_SECRET, namespace))
    return sources, secrets, credentials


def take_leases(client, sources, projects, holder, duration, wait_timeout, check_mode):
    """Loop-result-shaped outcomes of the source leases and of the projects' secrets leases."""
    leases, secret_leases = [], []
    for source in sources:
        if source["suspended"] or source.get("terminating") or source["errors"]:
            continue
        try:
            SyncLease(client, source["namespace"], source["name"], holder, duration).acquire(wait_timeout, check_mode)
            leases.append(dict(item=source, changed=False))
        except FederationError as err:
            leases.append(_Failure(source, err.msg))
    for namespace in projects:
        try:
            SyncLease(client, namespace, None, holder, duration).acquire(wait_timeout, check_mode)
            secret_leases.append(dict(item=namespace, changed=False))
        except FederationError as err:
            secret_leases.append(_Failure(namespace, err.msg))
    return leases, secret_leases


def render_sources(jobs, credentials, bundle_dir, server, git_options, check_mode):
    """Fetch and render each job (loop-result-shaped outcomes with revision and bundle)."""
    # Imported here: only this step fetches and renders (the other steps do not pay for these imports).
    from ansible_collections.gitops.federation.plugins.module_utils.git_fetch import GitCredentials, GitSource
    from ansible_collections.gitops.federation.plugins.module_utils.render import bundle_changed, digest, write_bundle

    results, warnings, rendered = [], [], {}
    for job in jobs:
        render = job["render"]
        try:
            data = credentials.get((job["namespace"], render.get("secret"))) if render.get("secret") else {}
            if isinstance(data, FederationError):
                raise data
            timeout = render.get("timeout") or 120
            if timeout <= 0:
                raise FederationError("timeout must be a positive number of seconds")
            dest = bundle_path(bundle_dir, server, job["namespace"], job["source"], render["id"])
            # Identical render inputs (two sources of one repository and path) are fetched and rendered once.
            same = (render.get("url"), repr(render.get("ref")), render.get("path"), repr(render.get("substitute")),
                    render.get("ignore"), render.get("secret"), job["namespace"])
            if same in rendered:
                checkout_revision, text, key = rendered[same]
            else:
                source = GitSource(render.get("url"), GitCredentials.from_secret_data(data or {}),
                                   cache_dir=git_options.get("cache_dir"), timeout=timeout,
                                   allow_local_urls=bool(git_options.get("allow_local_urls")))
                checkout_revision, text, key = _render_once(source, render, dest, git_options, check_mode, warnings)
                rendered[same] = (checkout_revision, text, key)
            if check_mode:
                changed = bundle_changed(text, dest)
                # The bundle goes to this run's scratch directory (removed by the record step), not the cache.
                dest = os.path.join(git_options["scratch_dir"], job["namespace"], job["source"],
                                    "render-%s.yaml" % render["id"])
                os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
                write_bundle(text, dest)
            else:
                changed = write_bundle(text, dest)
                if key:
                    render_cache.write_stamp(dest, key, checkout_revision, text)
                else:
                    render_cache.forget(dest)
            results.append(dict(item=job, changed=changed, revision=checkout_revision, bundle=dest,
                                digest=digest(text)))
        except FederationError as err:
            results.append(_Failure(job, err.msg))
    return results, warnings


def _render_once(source, render, dest, git_options, check_mode, warnings):
    """(revision, bundle text, stamp key or None): the bundle on disk when it was rendered from the same
    inputs and the ref still points at its commit (render_cache.py), else a checkout and a render."""
    from ansible_collections.gitops.federation.plugins.module_utils.render import dump_bundle, render_directory

    ref = render.get("ref") or None
    key = commit = None
    if not check_mode:
        # One ls-remote: the access proof every run makes, and the commit the ref points at now.
        revision, commit = source.resolve(ref)
        if commit:
            key = render_cache.stamp_key(commit, render, git_options.get("kustomize_path"))
            cached = render_cache.cached_render(dest, key)
            if cached:
                return revision, cached[1], key
    with source.checkout(ref) as checkout:
        result = render_directory(checkout.path, render.get("path") or ".",
                                  substitute=render.get("substitute") or None,
                                  kustomize_path=git_options.get("kustomize_path"), timeout=source.timeout,
                                  ignore=render.get("ignore"))
    if checkout.rebuilt_because:
        warnings.append("the git cache %s was rebuilt because %s" % (checkout.path, checkout.rebuilt_because))
    # The ref may have moved between ls-remote and fetch: stamp only a render of the commit the key names.
    return checkout.revision, dump_bundle(result.objects), key if checkout.commit == commit else None


def prepare(client, projects, clusters, holder, cache_dir, source_name=None, lease_duration=900, lease_wait=0,
            check_mode=False, allow_local_urls=False, kustomize_path=None):
    """Step 1. Returns dict(plan, sources, secrets, renders, warnings, changed)."""
    store = FederationStore(client)
    sources, secrets, credentials = read_projects(store, projects, clusters, source_name)
    if source_name and not sources:
        raise FederationError("GitOps source %s not found in %s (option source)" % (source_name, ", ".join(projects)))
    leases, secret_leases = take_leases(client, sources, projects, holder, lease_duration, lease_wait, check_mode)
    scratch = tempfile.mkdtemp(prefix="gitops-federation-check-") if check_mode else None
    renders, warnings = render_sources(
        sync_run.render_jobs(sources, leases), credentials, cache_dir, client.server,
        dict(cache_dir=os.path.join(cache_dir, "git"), allow_local_urls=allow_local_urls,
             kustomize_path=kustomize_path, scratch_dir=scratch), check_mode)
    credentials.clear()
    plan = sync_run.sync_plan(sources, leases, renders, projects, secret_leases)
    plan["holder"] = holder
    plan["lease_duration"] = lease_duration
    plan["scratch_dir"] = scratch
    plan["secrets"] = [dict(namespace=s["namespace"], name=s["name"], placed=s["placed"]) for s in secrets]
    rendered = [dict(key=r["item"]["key"], url=r["item"]["render"].get("url"), path=r["item"]["render"].get("path"),
                     render=r["item"]["render"]["id"], revision=r.get("revision"), changed=bool(r.get("changed")),
                     error=r.get("msg") if r.get("failed") else None) for r in renders]
    unknown = sorted(set(n for item in sources + secrets for n in item["unknown_clusters"]))
    for item in sources + secrets:
        if item["unknown_clusters"]:
            warnings.append("%s %s/%s names clusters that are not in the inventory: %s"
                            % ("source" if item in sources else "federated secret", item["namespace"], item["name"],
                               ", ".join(item["unknown_clusters"])))
    return dict(plan=plan, renders=rendered, warnings=warnings, unknown_clusters=unknown,
                changed=any(r["changed"] for r in rendered))


# -- step 2: reconcile one attached cluster ---------------------------------------------------------------------


def _validate_source(client, work):
    """The engine's own validation of one source's bundle (no request but discovery); raise if refused."""
    from ansible_collections.gitops.federation.plugins.module_utils.objects import load_bundle

    objects = load_bundle(work["bundle"])
    if work.get("overrides"):
        objects = apply_object_overrides(objects, work["overrides"])
    plan_bundle(objects, client.discovery(), work["namespace"], work["owner"], False, "reject")
    return objects


def _error_result(item, err, extra=None):
    result = dict(item=item, failed=True, msg=err.msg)
    result.update(err.details)
    result.update(extra or {})
    return result


def reconcile(client, management_client, plan, cluster, cluster_labels=None, create_namespace=True,
              force_conflicts=True, check_mode=False, diff=False):
    """Step 2 on one attached cluster. Returns dict(report, sources, secrets, changed, failed)."""
    work = sync_run.cluster_work(plan, cluster)
    source_results, secret_results, details = [], [], {}
    objects_of, refused = {}, {}

    # Validate every source placed here before anything is written for its project (issue 17.18).
    for item in work:
        if item["state"] != "present" or item["suspended"]:
            continue
        try:
            objects_of[item["key"]] = _validate_source(client, item)
        except ApiError:
            continue  # the cluster did not answer (discovery): the sync reports it, as unreachable or forbidden
        except FederationError as err:
            refused[item["key"]] = err

    keeper = _NoKeeper()
    try:
        keeper = _lease_keeper(management_client, plan, work, check_mode)
        with keeper:
            _write_cluster(client, management_client, plan, work, cluster, cluster_labels, create_namespace,
                           force_conflicts, check_mode, diff, objects_of, refused, source_results, secret_results,
                           details)
    except FederationError as err:
        if source_results or secret_results:
            raise
        # The run's leases could not be kept (taken by another run, management cluster unreachable) before
        # anything was done here: every piece of this cluster's work is reported failed with the reason.
        return failed_report(plan, cluster, err)
    report = sync_run.cluster_results(source_results, secret_results, cluster)
    failed = [r for r in source_results + secret_results if r.get("failed")]
    lost = list(getattr(keeper, "lost", None) or [])
    if lost:
        report["lease_lost"] = "; ".join(lost)
        failed.append(dict(item="leases", subject="leases", failed=True, msg=report["lease_lost"] + "; another run may have synced "
                           "meanwhile: rerun once it is done"))
    return dict(report=report, details=details, changed=any(r.get("changed") for r in source_results + secret_results),
                failed=failed)


class _NoKeeper(object):
    lost = ()

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        return False


def _lease_keeper(management_client, plan, work, check_mode):
    """Keep this run's leases of the sources and secrets this cluster works on renewed while it works."""
    if check_mode or not plan.get("holder"):
        return _NoKeeper()
    duration = plan.get("lease_duration") or 900
    leases = [SyncLease(management_client, w["key"].split("/", 1)[0], w["key"].split("/", 1)[1], plan["holder"],
                        duration) for w in work if not w["suspended"]]
    leases += [SyncLease(management_client, namespace, None, plan["holder"], duration)
               for namespace in plan.get("secret_projects") or []]
    return LeaseKeeper(leases) if leases else _NoKeeper()


def _write_cluster(client, management_client, plan, work, cluster, cluster_labels, create_namespace, force_conflicts,
                   check_mode, diff, objects_of, refused, source_results, secret_results, details):
    """Secrets, then sources (see reconcile); results appended to source_results and secret_results."""
    for namespace in plan.get("secret_projects") or []:
        present = [w for w in work if w["state"] == "present" and not w["suspended"]
                   and w["key"].split("/", 1)[0] == namespace]
        if present and all(w["key"] in refused for w in present):
            secret_results.append(_error_result(namespace, FederationError(
                "not propagated to this cluster: every source of project %s placed here was refused (%s), so "
                "nothing was written for the project" % (namespace, ", ".join(w["key"] for w in present)))))
            continue
        secret_results.append(_propagate_secrets(client, management_client, namespace, cluster, cluster_labels,
                                                 create_namespace, check_mode, diff, details))

    secrets_written = dict((r["item"], bool(r.get("changed"))) for r in secret_results if not r.get("failed"))
    for item in work:
        if item["suspended"]:
            source_results.append(dict(item=item, skipped=True))
            continue
        if item["key"] in refused:
            source_results.append(_error_result(item, refused[item["key"]]))
            continue
        if item["state"] == "present" and item["key"] not in objects_of:
            try:
                objects_of[item["key"]] = _validate_source(client, item)
            except FederationError as err:
                source_results.append(_error_result(item, err))
                continue
        source_results.append(_sync_source(client, item, objects_of.get(item["key"]), create_namespace,
                                           force_conflicts, check_mode, diff, secrets_written, details))


def failed_report(plan, cluster, err):
    """The report of a cluster the module could not work on at all (e.g. its connection settings do not load):
    every source and project's secrets of this cluster's work fail with the error."""
    work = [w for w in sync_run.cluster_work(plan, cluster) if not w["suspended"]]
    failed = [_error_result(w, err) for w in work] + [_error_result(ns, err) for ns in plan.get("secret_projects") or []]
    report = sync_run.cluster_results(failed[:len(work)], failed[len(work):], cluster)
    return dict(report=report, details={}, changed=False, failed=failed)


def _propagate_secrets(client, management_client, namespace, cluster, cluster_labels, create_namespace, check_mode,
                       diff, details):
    try:
        result, placed = propagate_secrets(client, management_client, namespace, cluster, cluster_labels,
                                           create_namespace=create_namespace, check_mode=check_mode)
    except FederationError as err:
        details["secrets " + namespace] = dict(failed=True, msg=err.msg)
        return _error_result(namespace, err, dict(status=err.details.get("status")))
    details["secrets " + namespace] = dict(changed=result.changed, secrets=placed, counts=result.change_set.counts(),
                                           summary=result.change_set.summary())
    if diff:
        details["secrets " + namespace]["diff"] = result.change_set.diffs()
    return dict(item=namespace, changed=result.changed,
                status_results=secret_status_results(result.change_set.entries(), cluster))


def _sync_source(client, item, objects, create_namespace, force_conflicts, check_mode, diff, secrets_written,
                 details):
    options = SyncOptions(
        owner=item["owner"], namespace=item["namespace"], prune=item.get("prune", True), wait=item.get("wait", False),
        wait_timeout=item.get("wait_timeout") or 300, revision=item.get("revision"),
        force_conflicts=force_conflicts or bool(item.get("force_conflicts")),
        health_checks=parse_health_checks(item.get("health_checks") or None),
        create_namespace=create_namespace and item["state"] == "present", check_mode=check_mode)
    engine = Engine(client, options)
    try:
        result = engine.teardown() if item["state"] == "absent" else engine.sync(copy.deepcopy(objects))
    except FederationError as err:
        msg = err.msg
        if "nothing was applied" in msg and secrets_written.get(item["key"].split("/", 1)[0]):
            msg += (" (nothing of this source; the project's federated secrets were propagated to this cluster "
                    "before the sources)")
        details[item["key"]] = dict(failed=True, msg=msg, change_set=err.details.get("change_set"))
        return _error_result(item, FederationError(msg, **err.details))
    finally:
        engine.close()
    details[item["key"]] = dict(changed=result.changed, state=item["state"], revision=item.get("revision"),
                                counts=result.change_set.counts(), summary=result.change_set.summary())
    if diff:
        details[item["key"]]["diff"] = result.change_set.diffs()
    return dict(item=item, changed=result.changed, counts=result.change_set.counts(), health=result.health)


# -- step 3: record -------------------------------------------------------------------------------------------


def record(client, plan, reports, hosts, check_mode=False, trigger=None):
    """Step 3. Returns dict(changed, recorded, failures, released)."""
    recorded, changed = [], False
    cause = trigger_phrase(trigger)
    for entry in plan.get("sources") or []:
        if entry.get("terminating") or not entry.get("record"):
            continue
        results = sync_run.collect_results(reports, hosts, entry["key"]) if entry.get("ready") else []
        outcome = record_sync(client, FEDERATED_KUSTOMIZATION, entry["namespace"], entry["name"], results,
                              placed=entry.get("placed"), revision=entry.get("revision") or None,
                              suspended=entry.get("suspended", False),
                              observed_generation=entry.get("generation") or None,
                              source_error=entry.get("error") or None, check_mode=check_mode, cause=cause)
        changed = changed or outcome.changed
        recorded.append(dict(kind=FEDERATED_KUSTOMIZATION, key=entry["key"], changed=outcome.changed,
                             events=outcome.events))
    secret_projects = plan.get("secret_projects") or []
    for secret in plan.get("secrets") or []:
        if secret["namespace"] not in secret_projects:
            continue
        results = sync_run.collect_secret_results(reports, hosts, secret["namespace"], secret["name"], secret["placed"])
        outcome = record_sync(client, FEDERATED_SECRET, secret["namespace"], secret["name"], results,
                              placed=secret["placed"], check_mode=check_mode)
        changed = changed or outcome.changed
        recorded.append(dict(kind=FEDERATED_SECRET, key="%s/%s" % (secret["namespace"], secret["name"]),
                             changed=outcome.changed, events=outcome.events))
    released = release(client, plan, check_mode)
    if plan.get("scratch_dir"):
        shutil.rmtree(plan["scratch_dir"], ignore_errors=True)
    return dict(changed=changed, recorded=recorded, released=released,
                failures=sync_run.failures(plan, reports, hosts))


def trigger_phrase(trigger):
    """'push of refs/heads/main at 1a2b3c4 (gitea delivery 42)': what started a run, for its Events; None without."""
    if not trigger:
        return None
    kind = str(trigger.get("kind") or "trigger")
    phrase = kind
    if trigger.get("ref"):
        phrase += " of %s" % trigger["ref"]
    if trigger.get("commit"):
        phrase += " at %s" % str(trigger["commit"])[:12]
    extra = " ".join(str(trigger[k]) for k in ("scm",) if trigger.get(k))
    if trigger.get("delivery"):
        extra = (extra + " delivery %s" % trigger["delivery"]).strip()
    return "%s (%s)" % (phrase, extra) if extra else phrase


def release(client, plan, check_mode=False):
    """Give up this run's leases (those of sources it synced and of the projects whose secrets it propagated)."""
    holder, released = plan["holder"], []
    subjects = [(e["namespace"], e["name"]) for e in plan.get("sources") or []
                if not e.get("suspended") and not e.get("terminating")]
    subjects += [(namespace, None) for namespace in plan.get("secret_projects") or []]
    for namespace, source in subjects:
        try:
            if SyncLease(client, namespace, source, holder).release(check_mode=check_mode):
                released.append("%s/%s" % (namespace, source or "federated-secrets"))
        except ApiError as err:
            if not err.not_found:
                raise
    return released


# One way to build a client: client.connect (modules: ClusterModule.client()). This name stays for branches
# written against it.
sync_client = connect
