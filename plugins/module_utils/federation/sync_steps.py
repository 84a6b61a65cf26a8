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
import datetime
import hashlib
import os
import shutil
import tempfile
import time

from ansible_collections.gitops.federation.plugins.module_utils.federation import rollout, sync_run
from ansible_collections.gitops.federation.plugins.module_utils.source import render_cache
from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError, connect
from ansible_collections.gitops.federation.plugins.module_utils.apply.engine import Engine, SyncOptions
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.federated_secrets import (
    propagate_secrets, secret_status_results, secret_view)
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import (
    FEDERATED_GIT_REPOSITORY, FEDERATED_KUSTOMIZATION, FEDERATED_SECRET, FederationStore)
from ansible_collections.gitops.federation.plugins.module_utils.federation.gitops_sources import source_view
from ansible_collections.gitops.federation.plugins.module_utils.apply.health import parse_health_checks
from ansible_collections.gitops.federation.plugins.module_utils.federation.lease import LeaseKeeper, SyncLease
from ansible_collections.gitops.federation.plugins.module_utils.federation.overrides import apply_object_overrides
from ansible_collections.gitops.federation.plugins.module_utils.apply.plan import plan as plan_bundle
from ansible_collections.gitops.federation.plugins.module_utils.federation.secret_data import git_credentials
from ansible_collections.gitops.federation.plugins.module_utils.apply.source_policy import SourcePolicy, effective_policy
from ansible_collections.gitops.federation.plugins.module_utils.source.source_refs import override_refs
from ansible_collections.gitops.federation.plugins.module_utils.federation.status import READY, set_condition, utc_now
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_record import record_condition, record_sync
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_windows import (
    apply_windows, closed_secrets, window_condition)


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


def read_projects(store, projects, clusters, source_name=None, policies=None):
    """(sources, secrets, credentials) of the projects; credentials {(namespace, secret): data or error}.

    Each source's ``policy`` is the operator's (``policies``: {key: SourcePolicy} from the inventory), whatever
    its FederatedKustomization claims; ``policy_note`` says so when the claim goes beyond it.
    """
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
            policy, view["policy_note"] = effective_policy(
                "%s/%s" % (namespace, view["name"]), policies, SourcePolicy.from_template(spec, namespace))
            view["policy"] = policy.to_plan()
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


def take_leases(client, sources, projects, holder, duration, wait_timeout, check_mode, leases_wanted=True):
    """Loop-result-shaped outcomes of the source leases and of the projects' secrets leases.

    Without ``leases_wanted`` (a preview or drift report: nothing is written) no Lease is read or taken and
    every source counts as held, so a running sync does not hide what a ref would change.
    """
    leases, secret_leases = [], []
    for source in sources:
        if source["suspended"] or source.get("terminating") or source["errors"] or source.get("window_closed"):
            continue
        if not leases_wanted:
            leases.append(dict(item=source, changed=False))
            continue
        try:
            SyncLease(client, source["namespace"], source["name"], holder, duration).acquire(wait_timeout, check_mode)
            leases.append(dict(item=source, changed=False))
        except FederationError as err:
            leases.append(_Failure(source, err.msg))
    for namespace in projects:
        if not leases_wanted:
            secret_leases.append(dict(item=namespace, changed=False))
            continue
        try:
            SyncLease(client, namespace, None, holder, duration).acquire(wait_timeout, check_mode)
            secret_leases.append(dict(item=namespace, changed=False))
        except FederationError as err:
            secret_leases.append(_Failure(namespace, err.msg))
    return leases, secret_leases


def render_sources(jobs, credentials, bundle_dir, server, git_options, check_mode):
    """Fetch and render each job (loop-result-shaped outcomes with revision and bundle)."""
    # Imported here: only this step fetches and renders (the other steps do not pay for these imports).
    from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import GitCredentials, GitSource
    from ansible_collections.gitops.federation.plugins.module_utils.source.render import bundle_changed, digest, write_bundle

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
                                   allow_local_urls=bool(git_options.get("allow_local_urls")),
                                   limits=git_options.get("limits"))
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
    from ansible_collections.gitops.federation.plugins.module_utils.source.render import dump_bundle, render_directory

    ref = render.get("ref") or None
    key = commit = None
    if not check_mode:
        # One ls-remote: the access proof every run makes, and the commit the ref points at now.
        revision, commit = source.resolve(ref)
        if commit:
            # Limits are inputs too: a render cached under higher limits is checked again under lower ones.
            key = render_cache.stamp_key(commit, dict(render, limits=git_options.get("limits")),
                                         git_options.get("kustomize_path"))
            cached = render_cache.cached_render(dest, key)
            if cached:
                return revision, cached[1], key
    with source.checkout(ref) as checkout:
        result = render_directory(checkout.path, render.get("path") or ".",
                                  substitute=render.get("substitute") or None,
                                  kustomize_path=git_options.get("kustomize_path"), timeout=source.timeout,
                                  ignore=render.get("ignore"), limits=git_options.get("limits"))
    if checkout.rebuilt_because:
        warnings.append("the git cache %s was rebuilt because %s" % (checkout.path, checkout.rebuilt_because))
    # The ref may have moved between ls-remote and fetch: stamp only a render of the commit the key names.
    return checkout.revision, dump_bundle(result.objects), key if checkout.commit == commit else None


def prepare(client, projects, clusters, holder, cache_dir, source_name=None, lease_duration=900, lease_wait=0,
            check_mode=False, allow_local_urls=False, kustomize_path=None, policies=None, limits=None,
            ref_override=None, leases_wanted=True, windows=None, force=False, now=None, retry_held=False):
    """Step 1. Returns dict(plan, sources, secrets, renders, warnings, changed).

    ``policies`` is {key: SourcePolicy}, the operator's (source_policy.policies_from_projects). ``ref_override``
    renders another ref than the sources' own (see ``source_refs.override_refs``), ``windows``
    (sync_windows.SyncWindow) take closed clusters out of the work unless ``force``. ``retry_held`` rolls out a
    revision that rollout rings rolled back.
    """
    store = FederationStore(client)
    sources, secrets, credentials = read_projects(store, projects, clusters, source_name, policies)
    if source_name and not sources:
        raise FederationError("GitOps source %s not found in %s (option source)" % (source_name, ", ".join(projects)))
    if ref_override:
        override_refs(sources, ref_override)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if windows:
        apply_windows(sources, windows, clusters, now, force)
    leases, secret_leases = take_leases(client, sources, projects, holder, lease_duration, lease_wait, check_mode,
                                        leases_wanted)
    scratch = tempfile.mkdtemp(prefix="gitops-federation-check-") if check_mode else None
    git_options = dict(cache_dir=os.path.join(cache_dir, "git"), allow_local_urls=allow_local_urls,
                       kustomize_path=kustomize_path, scratch_dir=scratch, limits=limits)
    renders, warnings = render_sources(
        sync_run.render_jobs(sources, leases), credentials, cache_dir, client.server, git_options, check_mode)
    plan = sync_run.sync_plan(sources, leases, renders, projects, secret_leases)
    rollback_renders, more = plan_rollouts(plan, sources, credentials, cache_dir, client.server, git_options,
                                           check_mode, retry_held)
    credentials.clear()
    renders += rollback_renders
    warnings += more
    plan["waves"] = sync_run.waves(plan)
    plan["holder"] = holder
    plan["secrets_closed"] = closed_secrets(windows, projects, clusters, now, force)
    plan["lease_duration"] = lease_duration
    plan["scratch_dir"] = scratch
    plan["secrets"] = [dict(namespace=s["namespace"], name=s["name"], placed=s["placed"]) for s in secrets]
    rendered = [dict(key=r["item"]["key"], url=r["item"]["render"].get("url"), path=r["item"]["render"].get("path"),
                     render=r["item"]["render"]["id"], revision=r.get("revision"), changed=bool(r.get("changed")),
                     error=r.get("msg") if r.get("failed") else None) for r in renders]
    unknown = sorted(set(n for item in sources + secrets for n in item["unknown_clusters"]))
    warnings.extend(s["policy_note"] for s in sources if s.get("policy_note"))
    for item in sources + secrets:
        if item["unknown_clusters"]:
            warnings.append("%s %s/%s names clusters that are not in the inventory: %s"
                            % ("source" if item in sources else "federated secret", item["namespace"], item["name"],
                               ", ".join(item["unknown_clusters"])))
    return dict(plan=plan, renders=rendered, warnings=warnings, unknown_clusters=unknown,
                changed=any(r["changed"] for r in rendered))


def plan_rollouts(plan, sources, credentials, bundle_dir, server, git_options, check_mode, retry_held=False):
    """Rollout rings: hold a revision that was rolled back, and render each cluster's rollback bundle.

    For every ready source with rings, a revision held in its status (rolled back before, same source
    generation) is not rolled out unless retry_held. Otherwise each cluster whose last healthy revision
    (status.rollout.lastHealthy) is not the one being rolled out gets that revision rendered now, with the
    cluster's render inputs, so it can be synced back to it (only this step holds the git credentials).
    Returns (render results, warnings).
    """
    views = dict((sync_run.source_key(s), s) for s in sources)
    jobs, by_job = [], {}
    for entry in plan.get("sources") or []:
        if not entry.get("ready") or not entry.get("rings"):
            continue
        view = views[entry["key"]]
        status = view.get("rollout_status") or {}
        held = rollout.hold_of(status, entry["revision"], entry.get("generation"), retry_held)
        if held:
            entry.update(ready=False, held=rollout.held_message(held), held_status=held)
            continue
        last_healthy = status.get("lastHealthy") or {}
        for cluster, settings in entry["clusters"].items():
            healthy = last_healthy.get(cluster)
            commit = rollout.commit_of(healthy)
            if not commit or healthy == settings["revision"]:
                continue
            render = next(r for r in view["renders"] if r["id"] == settings["render"])
            job_id = "rollback-%s-%s" % (render["id"], commit[:12])
            if (entry["key"], job_id) not in by_job:
                by_job[(entry["key"], job_id)] = None
                jobs.append(dict(key=entry["key"], namespace=entry["namespace"], source=entry["name"],
                                 render=dict(render, id=job_id, ref={"commit": commit})))
            settings["rollback"] = dict(revision=healthy, job=job_id)
    if not jobs:
        return [], []
    results, warnings = render_sources(jobs, credentials, bundle_dir, server, git_options, check_mode)
    for result in results:
        by_job[(result["item"]["key"], result["item"]["render"]["id"])] = result
    for entry in plan.get("sources") or []:
        for settings in (entry.get("clusters") or {}).values():
            if settings.get("rollback"):
                result = by_job[(entry["key"], settings["rollback"].pop("job"))]
                if result.get("failed"):
                    settings["rollback"]["error"] = result.get("msg")
                else:
                    settings["rollback"]["bundle"] = result["bundle"]
    return results, warnings


# -- step 2: reconcile one attached cluster ---------------------------------------------------------------------


def _validate_source(client, work):
    """The engine's own validation of one source's bundle (no request but discovery); raise if refused."""
    from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import load_bundle

    objects = load_bundle(work["bundle"])
    if work.get("overrides"):
        objects = apply_object_overrides(objects, work["overrides"])
    plan_bundle(objects, client.discovery(), work["namespace"], work["owner"], False, "reject",
                SourcePolicy.from_plan(work.get("policy")))
    return objects


def _error_result(item, err, extra=None):
    result = dict(item=item, failed=True, msg=err.msg)
    result.update(err.details)
    result.update(extra or {})
    return result


def reconcile(client, management_client, plan, cluster, cluster_labels=None, create_namespace=True,
              force_conflicts=True, check_mode=False, diff=False, wave=None, halted=None):
    """Step 2 on one attached cluster. Returns dict(report, sources, secrets, changed, failed).

    With a wave (rollout rings), only the sources whose ring on this cluster is that wave; the federated
    secrets and removals go with the cluster's first wave; sources in halted ({key: why}) are left alone.
    """
    work = sync_run.cluster_work(plan, cluster, wave)
    rings = {}
    if wave is not None and wave != sync_run.cluster_waves(plan, cluster)[0]:
        plan = dict(plan, secret_projects=[])
    for item in [w for w in work if w["key"] in (halted or {}) and w.get("ring_name") is not None]:
        rings[item["key"]] = dict(cluster=cluster, ring=item["ring_name"], state=rollout.HALTED,
                                  message="not started: %s" % halted[item["key"]])
        work.remove(item)
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
            started = utc_now()
            _write_cluster(client, management_client, plan, work, cluster, cluster_labels, create_namespace,
                           force_conflicts, check_mode, diff, objects_of, refused, source_results, secret_results,
                           details)
            _finish_rings(client, cluster, source_results, objects_of, force_conflicts, check_mode, started, rings,
                          details)
    except FederationError as err:
        if source_results or secret_results:
            raise
        # The run's leases could not be kept (taken by another run, management cluster unreachable) before
        # anything was done here: every piece of this cluster's work is reported failed with the reason.
        return failed_report(plan, cluster, err, wave)
    report = sync_run.cluster_results(source_results, secret_results, cluster)
    if rings:
        report["rollout"] = rings
    failed = [r for r in source_results + secret_results if r.get("failed")]
    lost = list(getattr(keeper, "lost", None) or [])
    if lost:
        report["lease_lost"] = "; ".join(lost)
        failed.append(dict(item="leases", subject="leases", failed=True, msg=report["lease_lost"] + "; another run may have synced "
                           "meanwhile: rerun once it is done"))
    return dict(report=report, details=details, changed=any(r.get("changed") for r in source_results + secret_results),
                failed=failed)


def _finish_rings(client, cluster, source_results, objects_of, force_conflicts, check_mode, started, rings, details):
    """After a wave's sources were applied (and waited on): bake the ringed ones, roll back those that failed.

    A ringed source that became healthy stays under watch for its ring's bake time (all of this cluster's
    sources of the wave bake together), unless nothing changed and its revision was already healthy here
    (a no-op sync does not bake again). One that stays healthy is recorded healthy on the cluster; one whose
    health failed (wait or bake) is synced back to the revision last recorded healthy here.
    """
    ringed = [r for r in source_results if not r.get("skipped") and (r.get("item") or {}).get("ring_name") is not None
              and r["item"]["state"] == "present"]
    last_of, baking = {}, []
    for result in ringed:
        item = result["item"]
        rings[item["key"]] = dict(cluster=cluster, ring=item["ring_name"], started=started,
                                  changed=bool(result.get("changed")))
        if check_mode:
            continue
        last = last_of[item["key"]] = rollout.read_last_healthy(client, item["owner"], item["namespace"])
        if result.get("failed") or not item.get("bake"):
            continue
        known = last is not None and last.get("revision") == item["revision"] and \
            last.get("inputs") == item.get("render_digest")
        if result.get("changed") or not known:
            baking.append(dict(key=item["key"], namespace=item["namespace"], owner=item["owner"],
                               checks=parse_health_checks(item.get("health_checks") or None), seconds=item["bake"],
                               planned=plan_bundle(objects_of[item["key"]], client.discovery(), item["namespace"],
                                                   item["owner"], False, "reject")))
    baked = rollout.bake(client, baking) if baking else {}
    for result in ringed:
        item = result["item"]
        report = rings[item["key"]]
        failure = baked.get(item["key"])
        if failure:
            result.update(failed=True, msg="ring %s: %s" % (item["ring_name"], failure), health=True)
        elif result.get("failed"):
            failure = result.get("msg")
        if not failure:
            report.update(state=rollout.HEALTHY, revision=item["revision"], healthy_revision=item["revision"])
            last = last_of.get(item["key"])
            if not check_mode and (last is None or last.get("revision") != item["revision"] or
                                   last.get("inputs") != item.get("render_digest")):
                try:
                    rollout.write_last_healthy(client, item["owner"], item["namespace"], item["revision"],
                                               item.get("render_digest"))
                except ApiError as err:
                    report["message"] = "healthy, but not recorded as the last healthy revision here: %s" % err.msg
        else:
            report.update(state=rollout.FAILED, reason=failure, message=failure)
            if result.get("health") and not check_mode:
                reverted, why = _roll_back(client, item, last_of.get(item["key"]), force_conflicts, details)
                if reverted:
                    report.update(state=rollout.ROLLED_BACK, revision=reverted, healthy_revision=reverted,
                                  message="rolled back to %s: %s" % (reverted, failure))
                    result["msg"] = "ring %s: %s; rolled back to %s" % (
                        item["ring_name"], failure.replace("ring %s: " % item["ring_name"], "", 1), reverted)
                else:
                    report["message"] = "%s; not rolled back: %s" % (failure, why)
                    result["msg"] = "%s; not rolled back: %s" % (result.get("msg") or failure, why)
        report["finished"] = utc_now()


def _roll_back(client, item, last, force_conflicts, details):
    """Sync the source back to the revision last recorded healthy on this cluster: (revision, None) or (None, why)."""
    rollback = item.get("rollback") or {}
    if not last:
        return None, "no revision was recorded healthy on this cluster"
    if rollback.get("revision") != last["revision"]:
        return None, ("the last healthy revision here, %s, was not rendered for this run (the source's "
                      "status.rollout.lastHealthy names %s)" % (last["revision"], rollback.get("revision") or "none"))
    if last.get("inputs") != item.get("render_digest"):
        return None, ("the source's url, path or substitutions changed since %s was healthy here, so it cannot be "
                      "rendered as it was" % last["revision"])
    if rollback.get("error"):
        return None, "rendering %s failed: %s" % (last["revision"], rollback["error"])
    back = dict(item, revision=last["revision"], bundle=rollback["bundle"])
    try:
        objects = _validate_source(client, back)
    except FederationError as err:
        return None, "%s is refused now: %s" % (last["revision"], err.msg)
    scratch = {}
    result = _sync_source(client, back, objects, False, force_conflicts, False, False, {}, scratch)
    details[item["key"]]["rollback"] = scratch.get(item["key"])
    if result.get("failed") and result.get("health") and _healthy_again(client, back, objects):
        return last["revision"], None
    if result.get("failed"):
        return None, "the rollback to %s failed: %s" % (last["revision"], result.get("msg"))
    return last["revision"], None


def _healthy_again(client, item, objects, interval=2):
    """Whether the rolled-back objects become Current within the ring's timeout. A Deployment keeps the failed
    rollout's ProgressDeadlineExceeded condition until its bad Pods are gone, so the engine's wait, which stops
    at the first Failed, can fail right after a rollback that is succeeding."""
    planned = plan_bundle(objects, client.discovery(), item["namespace"], item["owner"], False, "reject")
    checks = parse_health_checks(item.get("health_checks") or None)
    deadline = time.monotonic() + (item.get("wait_timeout") or 300)
    while time.monotonic() < deadline:
        time.sleep(interval)
        try:
            report = rollout.look(client, planned, item["namespace"], item["owner"], checks)
        except FederationError:
            continue
        if all(r["status"] == "Current" for r in report):
            return True
    return False


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
        if cluster in (plan.get("secrets_closed") or {}).get(namespace, {}):
            continue  # a sync window is closed for the project on this cluster
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


def failed_report(plan, cluster, err, wave=None):
    """The report of a cluster the module could not work on at all (e.g. its connection settings do not load):
    every source and project's secrets of this cluster's work (of this wave) fail with the error; a ring of a
    source fails with it (its later rings are not started)."""
    work = [w for w in sync_run.cluster_work(plan, cluster, wave) if not w["suspended"]]
    if wave is not None and wave != sync_run.cluster_waves(plan, cluster)[0]:
        plan = dict(plan, secret_projects=[])
    failed = [_error_result(w, err) for w in work] + [_error_result(ns, err) for ns in plan.get("secret_projects") or []]
    report = sync_run.cluster_results(failed[:len(work)], failed[len(work):], cluster)
    rings = dict((w["key"], dict(cluster=cluster, ring=w["ring_name"], state=rollout.FAILED, message=err.msg,
                                 reason=err.msg)) for w in work if w.get("ring_name") is not None)
    if rings:
        report["rollout"] = rings
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
    policy = SourcePolicy.from_plan(item.get("policy"))
    if policy.impersonated_user:
        # Every request of this source's apply (reads, dry-runs, writes, prune, its inventory) is made as its
        # ServiceAccount: the API server's RBAC bounds what the source can do.
        client = client.impersonating(policy.impersonated_user)
    options = SyncOptions(policy=policy,
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
        details[item["key"]]["changes"] = result.change_set.field_changes()
    return dict(item=item, changed=result.changed, counts=result.change_set.counts(), health=result.health)


WINDOW = "SyncWindow"  # condition type on sources that sync windows govern


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
                              source_error=entry.get("error") or None, check_mode=check_mode, cause=cause,
                              policy=entry.get("policy") or {}, policy_note=entry.get("policy_note"),
                              amend_status=_rollout_amendment(entry, reports, hosts),
                              ended_conditions=ended_conditions(entry))
        changed = changed or outcome.changed
        events = outcome.events
        if entry.get("window"):
            (state, reason, message), notes = window_condition(entry["window"])
            window = record_condition(client, FEDERATED_KUSTOMIZATION, entry["namespace"], entry["name"], WINDOW,
                                      state, reason, message, notes, check_mode=check_mode)
            changed = changed or window.changed
            events = events + window.events
        recorded.append(dict(kind=FEDERATED_KUSTOMIZATION, key=entry["key"], changed=outcome.changed,
                             events=events))
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


def ended_conditions(entry):
    """Conditions of a source's status that its recording removes: ``SyncWindow`` when the source was synced
    (so the windows were evaluated for it) and no window applied to any of its clusters - the windows were removed
    or no longer apply to it. A source not synced this run (suspended, or failed before reaching its clusters)
    keeps the condition it has until it is synced again."""
    return (WINDOW,) if entry.get("ready") and not entry.get("window") else ()


def _rollout_amendment(entry, reports, hosts):
    """For a source with rollout rings: a function that adds status.rollout (and, while a revision is held, a
    Ready condition saying so) to the status being recorded, and returns the Events of its rings."""
    if not entry.get("rings") or entry.get("suspended") or entry.get("terminating"):
        return None
    ring_reports = [report["rollout"][entry["key"]] for unused, report in sync_run._reports(reports, hosts)
                    if entry["key"] in (report.get("rollout") or {})]

    def amend(previous, status, now):
        status["rollout"], events = rollout.rollout_status(previous.get("rollout"), entry, ring_reports, now)
        held = status["rollout"].get("held")
        if held and held.get("revision") == entry.get("revision"):
            ready = set_condition(previous.get("conditions"), READY, "False", "RolloutHeld",
                                  rollout.held_message(held), now, status.get("observedGeneration"))
            status["conditions"] = [ready if c["type"] == READY else c for c in status["conditions"]]
        return events
    return amend


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
