# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Handing one sync run from job to job: the AWX workflow form of the sync (plan, sliced apply, record).

In ``sync.yml`` the three steps share one ``ansible-playbook`` process: the attached hosts read the plan from
the management host's variables and the record step reads their reports from theirs. In a workflow each step
is its own job, possibly on another execution node, and the slices of the apply job cannot see each other.
So the run is handed over on the management cluster, in the project namespaces the run syncs (the sync's
identity already works there), as Secrets labelled with the run's id:

- ``gitops-run-<id>-plan``: the project's part of the plan (no secret value in it; the bundle paths of the plan
  job's disk replaced by the names of the bundle Secrets);
- ``gitops-run-<id>-bundle-<n>-<chunk>``: each rendered bundle, gzip-compressed, in chunks of at most
  ``CHUNK_BYTES`` (a Secret holds at most 1 MiB). Secrets, not ConfigMaps: a bundle may hold Secret manifests;
- ``gitops-run-<id>-result-<cluster digest>``: one attached cluster's report for the project, written by the
  apply job that reconciled it (slices never read each other's hostvars; record reads these).

What passes between the jobs through AWX (``set_stats`` artifacts, extra variables of the next workflow nodes)
is only the *reference* ``{id, holder, projects, management, stored}``: a few hundred bytes whatever the estate.
The record job deletes every object of the run after recording; a run that never reached its record job
leaves them until the next plan job of the project finds that run's holder holds no Lease any more and its
objects are older than its lease duration.

The run id is derived from the plan job's Lease holder identity (``awx-job-<id>`` under AWX), which the apply
jobs use to renew and the record job to release the Leases: the id ties the jobs and the Leases together.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import datetime
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.lease import LEASE_API, expired, LeaseTimeError
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import MANAGED_BY_LABEL, MANAGED_BY_VALUE

RUN_LABEL = "gitops.federation/run"
PART_LABEL = "gitops.federation/run-part"
HOLDER_ANNOTATION = "gitops.federation/holder"
CLUSTER_ANNOTATION = "gitops.federation/cluster"
SOURCE_ANNOTATION = "gitops.federation/source"
DURATION_ANNOTATION = "gitops.federation/lease-duration"
SECRET_TYPE = "gitops.federation/sync-run"
# Raw (compressed) bytes per bundle Secret: under the 1 MiB a Secret may hold, with room for the metadata.
CHUNK_BYTES = 768 * 1024
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


def run_id(holder):
    """A name-safe id for the run of this Lease holder: readable prefix plus a digest (unique per holder)."""
    readable = re.sub(r"[^a-z0-9]+", "-", str(holder).lower()).strip("-")[:30].strip("-") or "run"
    return "%s-%s" % (readable, hashlib.sha256(str(holder).encode("utf-8")).hexdigest()[:8])


def management_id(server):
    """The management cluster a run was planned against (as in the bundle paths of sync_steps)."""
    return hashlib.sha256((server or "").rstrip("/").encode("utf-8")).hexdigest()[:16]


def _cluster_digest(cluster):
    return hashlib.sha256(cluster.encode("utf-8")).hexdigest()[:16]


def plan_name(rid):
    return "gitops-run-%s-plan" % rid


def result_name(rid, cluster):
    return "gitops-run-%s-result-%s" % (rid, _cluster_digest(cluster))


def _pack(value):
    return base64.b64encode(gzip.compress(json.dumps(value, sort_keys=True).encode("utf-8"), mtime=0)).decode("ascii")


def _unpack(text, where):
    try:
        return json.loads(gzip.decompress(base64.b64decode(text)).decode("utf-8"))
    except (ValueError, OSError, TypeError, EOFError, zlib.error) as err:
        raise FederationError("%s cannot be read (%s): delete it and rerun the plan job" % (where, err))


class RunStore(object):
    """The run's objects on the management cluster (Secrets in the project namespaces)."""

    def __init__(self, client):
        self.client = client
        self.resource = client.discovery().find("v1", "Secret")

    def _secret(self, namespace, name, rid, part, data, annotations=None):
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, RUN_LABEL: rid, PART_LABEL: part}
        return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
                "metadata": {"name": name, "namespace": namespace, "labels": labels,
                             "annotations": dict(annotations or {})},
                "data": data}

    def put(self, body):
        """Create the Secret, or replace it (a slice run again overwrites its cluster's result)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            return self.client.request("POST", self.resource.path(namespace), body=body)
        except ApiError as err:
            if err.status != 409:
                raise FederationError("Secret %s/%s on the management cluster: %s" % (namespace, name, err.msg),
                                      status=err.status)
        live = self.client.get(self.resource, name, namespace)
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = (live or {}).get("metadata", {}).get("resourceVersion")
        return self.client.request("PUT", self.resource.path(namespace, name), body=body)

    def get(self, namespace, name):
        try:
            return self.client.get(self.resource, name, namespace)
        except ApiError as err:
            raise FederationError("Secret %s/%s on the management cluster: %s" % (namespace, name, err.msg),
                                  status=err.status)

    def list(self, namespace, selector):
        return self.client.list(self.resource, namespace, label_selector=selector)

    def list_metadata(self, namespace, selector):
        page = self.client.request("GET", self.resource.path(namespace), query={"labelSelector": selector},
                                   accept=_METADATA_ONLY)
        return page.get("items") or []

    def delete_run(self, namespace, rid):
        """Every object of the run in the namespace, in one request."""
        self.client.request("DELETE", self.resource.path(namespace), query={"labelSelector": "%s=%s" % (RUN_LABEL, rid)})


# -- plan job ---------------------------------------------------------------------------------------------------


def _project_part(plan, namespace):
    left_out = ("sources", "secrets", "projects", "secret_projects", "scratch_dir")
    part = dict((k, v) for k, v in plan.items() if k not in left_out)
    part["projects"] = [namespace]
    part["secret_projects"] = [n for n in plan.get("secret_projects") or [] if n == namespace]
    part["sources"] = [e for e in plan.get("sources") or [] if e["namespace"] == namespace]
    part["secrets"] = [s for s in plan.get("secrets") or [] if s["namespace"] == namespace]
    return part


RINGS_REFUSED = ("rollout rings run one ring after the other, which the workflow form (one sliced apply job) "
                 "cannot do: sync this source with playbooks/sync.yml")


def refuse_rings(plan):
    """Sources with rollout rings leave a stored run as failed (their Lease is released by the record job)."""
    for entry in plan.get("sources") or []:
        if entry.get("rings") and entry.get("ready"):
            entry.update(ready=False, error=RINGS_REFUSED, clusters={})


def publish(client, plan, check_mode=False, now=None):
    """Store the plan and its bundles for the apply and record jobs; return the run's reference.

    In check mode nothing is stored (the reference says so: apply and record jobs refuse it).
    """
    holder = plan["holder"]
    rid = run_id(holder)
    reference = dict(id=rid, holder=holder, projects=list(plan.get("projects") or []),
                     management=management_id(client.server), stored=not check_mode)
    if check_mode:
        return dict(run=reference, changed=False, stored=[], collected=[])
    store = RunStore(client)
    stored, collected = [], []
    for namespace in reference["projects"]:
        collected.extend(collect_stale(store, client, namespace, rid, now))
    plan = copy.deepcopy(plan)
    refuse_rings(plan)
    bundles = {}  # local path -> {name, chunks, digest}
    for entry in plan.get("sources") or []:
        for cluster, settings in sorted((entry.get("clusters") or {}).items()):
            path = settings.get("bundle")
            if not path:
                continue
            if path not in bundles:
                bundles[path] = _store_bundle(store, entry, path, rid, holder, len(bundles), stored)
            settings["bundle"] = None
            settings["bundle_ref"] = bundles[path]
    annotations = {HOLDER_ANNOTATION: holder, DURATION_ANNOTATION: str(plan.get("lease_duration") or 900)}
    for namespace in reference["projects"]:
        name = plan_name(rid)
        store.put(store._secret(namespace, name, rid, "plan", {"plan.json.gz": _pack(_project_part(plan, namespace))},
                                annotations))
        stored.append("%s/%s" % (namespace, name))
    return dict(run=reference, changed=True, stored=stored, collected=collected)


def _store_bundle(store, entry, path, rid, holder, index, stored):
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except (IOError, OSError) as err:
        raise FederationError("the bundle %s of source %s cannot be read: %s" % (path, entry["key"], err))
    packed = gzip.compress(raw, mtime=0)
    chunks = [packed[i:i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)] or [b""]
    base = "gitops-run-%s-bundle-%d" % (rid, index)
    annotations = {HOLDER_ANNOTATION: holder, SOURCE_ANNOTATION: entry["key"]}
    for number, chunk in enumerate(chunks):
        name = "%s-%d" % (base, number)
        store.put(store._secret(entry["namespace"], name, rid, "bundle",
                                {"chunk": base64.b64encode(chunk).decode("ascii")}, annotations))
        stored.append("%s/%s" % (entry["namespace"], name))
    return dict(namespace=entry["namespace"], name=base, chunks=len(chunks),
                digest="sha256:" + hashlib.sha256(raw).hexdigest(), bytes=len(raw), stored_bytes=len(packed))


def collect_stale(store, client, namespace, current, now=None):
    """Delete the objects of runs in the namespace that ended without their record job.

    A run is over when its holder holds no live Lease in the namespace and its objects are older than its
    lease duration (a live run keeps its Leases renewed; one that took none there is given that long).
    """
    items = store.list_metadata(namespace, RUN_LABEL)
    runs = {}
    for item in items:
        meta = item.get("metadata") or {}
        rid = (meta.get("labels") or {}).get(RUN_LABEL)
        if rid and rid != current:
            runs.setdefault(rid, []).append(meta)
    if not runs:
        return []
    leases = client.list(client.discovery().find(LEASE_API, "Lease"), namespace)
    holding = set()
    for lease in leases:
        spec = lease.get("spec") or {}
        try:
            if not expired(spec):
                holding.add(spec.get("holderIdentity"))
        except LeaseTimeError:
            holding.add(spec.get("holderIdentity"))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    collected = []
    for rid, metas in sorted(runs.items()):
        annotations = metas[0].get("annotations") or {}
        if annotations.get(HOLDER_ANNOTATION) in holding:
            continue
        try:
            duration = int(annotations.get(DURATION_ANNOTATION) or 900)
        except ValueError:
            duration = 900
        newest = max(_created(m) for m in metas)
        if newest is None or now - newest < datetime.timedelta(seconds=duration):
            continue
        store.delete_run(namespace, rid)
        collected.append("%s/%s" % (namespace, rid))
    return collected


def _created(meta):
    text = meta.get("creationTimestamp")
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


# -- apply and record jobs --------------------------------------------------------------------------------------


def check_reference(run, client):
    """Refuse a reference this management cluster cannot serve (planned in check mode, or elsewhere)."""
    for key in ("id", "holder", "projects"):
        if not run.get(key):
            raise FederationError("option run: %s is missing; pass the gitops_sync_run the plan job published "
                                  "(set_stats artifact) unchanged" % key)
    if run.get("stored") is False:
        raise FederationError("run %s was planned in check mode: nothing was stored for the apply and record jobs "
                              "(for a dry run use sync.yml --check)" % run["id"])
    if run.get("management") and run["management"] != management_id(client.server):
        raise FederationError("run %s was planned against another management cluster than %s: give the apply and "
                              "record jobs the plan job's management connection" % (run["id"], client.server))
    if run["id"] != run_id(run["holder"]):
        raise FederationError("option run: id %s does not belong to holder %s; pass the plan job's gitops_sync_run "
                              "unchanged" % (run["id"], run["holder"]))


def load_plan(client, run):
    """The whole plan of the run, from its projects' plan Secrets (bundles not fetched)."""
    check_reference(run, client)
    store = RunStore(client)
    plan = None
    for namespace in run["projects"]:
        name = plan_name(run["id"])
        live = store.get(namespace, name)
        if live is None:
            raise FederationError("the plan of run %s (Secret %s/%s on the management cluster) does not exist: the "
                                  "run was recorded already, or its objects were collected after it ended; start a "
                                  "new run with the plan job" % (run["id"], namespace, name))
        part = _unpack((live.get("data") or {}).get("plan.json.gz"), "Secret %s/%s" % (namespace, name))
        if plan is None:
            plan = part
            continue
        plan["projects"] += part["projects"]
        plan["secret_projects"] += part["secret_projects"]
        plan["sources"] += part["sources"]
        plan["secrets"] += part["secrets"]
        plan["secret_errors"] = plan.get("secret_errors") or []
        plan["secret_errors"] += [e for e in part.get("secret_errors") or [] if e not in plan["secret_errors"]]
    if plan is None:
        raise FederationError("option run: no project in run %s" % run["id"])
    if plan.get("holder") != run["holder"]:
        raise FederationError("the plan of run %s names holder %s, not %s: pass the plan job's gitops_sync_run "
                              "unchanged" % (run["id"], plan.get("holder"), run["holder"]))
    return plan


def fetch_bundles(client, plan, cluster, directory):
    """Write the bundles of the sources placed on this cluster under directory (0700) and point the plan at them."""
    store = RunStore(client)
    fetched = {}
    for entry in plan.get("sources") or []:
        if not entry.get("ready"):
            continue
        settings = (entry.get("clusters") or {}).get(cluster)
        if not settings or not settings.get("bundle_ref"):
            continue
        ref = settings["bundle_ref"]
        if ref["name"] not in fetched:
            fetched[ref["name"]] = _fetch_bundle(store, ref, directory)
        settings["bundle"] = fetched[ref["name"]]
    return fetched


def _fetch_bundle(store, ref, directory):
    packed = b""
    for number in range(ref["chunks"]):
        name = "%s-%d" % (ref["name"], number)
        live = store.get(ref["namespace"], name)
        if live is None:
            raise FederationError("bundle Secret %s/%s of the run is missing on the management cluster: rerun the plan "
                                  "job" % (ref["namespace"], name))
        packed += base64.b64decode((live.get("data") or {}).get("chunk") or "")
    try:
        raw = gzip.decompress(packed)
    except (OSError, EOFError, zlib.error) as err:
        raise FederationError("bundle %s/%s of the run cannot be read (%s): rerun the plan job"
                              % (ref["namespace"], ref["name"], err))
    if "sha256:" + hashlib.sha256(raw).hexdigest() != ref["digest"]:
        raise FederationError("bundle %s/%s of the run does not match the plan's digest: it was changed after the "
                              "plan job; rerun the plan job" % (ref["namespace"], ref["name"]))
    path = os.path.join(directory, ref["name"] + ".yaml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)
    return path


class BundleDirectory(object):
    """A private temporary directory for the bundles of one apply, removed on exit (they may hold Secrets)."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="gitops-federation-run-")
        return self.path

    def __exit__(self, *unused):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


def store_result(client, run, cluster, report):
    """This cluster's report, split per project of the run, for the record job."""
    store = RunStore(client)
    rid = run["id"]
    names = []
    for namespace in run["projects"]:
        part = project_report(report, namespace)
        name = result_name(rid, cluster)
        store.put(store._secret(namespace, name, rid, "result", {"report.json.gz": _pack(part)},
                                {HOLDER_ANNOTATION: run["holder"], CLUSTER_ANNOTATION: cluster}))
        names.append("%s/%s" % (namespace, name))
    return names


def project_report(report, namespace):
    part = dict((k, v) for k, v in report.items() if k not in ("sources", "secrets"))
    part["sources"] = dict((k, v) for k, v in (report.get("sources") or {}).items() if k.split("/", 1)[0] == namespace)
    part["secrets"] = dict((k, v) for k, v in (report.get("secrets") or {}).items() if k == namespace)
    return part


def load_reports(client, run):
    """{cluster: report} merged over the run's projects, from the result Secrets the apply jobs wrote."""
    store = RunStore(client)
    reports = {}
    for namespace in run["projects"]:
        for item in store.list(namespace, "%s=%s,%s=result" % (RUN_LABEL, run["id"], PART_LABEL)):
            cluster = ((item.get("metadata") or {}).get("annotations") or {}).get(CLUSTER_ANNOTATION)
            if not cluster:
                continue
            where = "Secret %s/%s" % (namespace, item["metadata"]["name"])
            part = _unpack((item.get("data") or {}).get("report.json.gz"), where)
            merged = reports.setdefault(cluster, {"sources": {}, "secrets": {}})
            merged["sources"].update(part.get("sources") or {})
            merged["secrets"].update(part.get("secrets") or {})
            for key in ("halted", "lease_lost"):
                if part.get(key):
                    merged[key] = part[key]
    return reports


def delete_run(client, run):
    """Remove every object of the run (after recording)."""
    store = RunStore(client)
    for namespace in run["projects"]:
        store.delete_run(namespace, run["id"])


# -- the steps of the workflow form (the modules call these with option run) -----------------------------------


def reconcile_run(client, management_client, run, cluster, check_mode=False, connection_error=None, **options):
    """Apply job, one attached cluster: the plan and this cluster's bundles from the management cluster, the same
    reconcile as sync.yml, then this cluster's report stored for the record job (not in check mode).

    ``connection_error``: the cluster's connection settings did not load (client None); it is reported as the
    failure of all of its work. Returns sync_steps.reconcile's dict plus ``stored`` (the result Secrets written)."""
    # Imported here: sync_steps imports the apply engine, which the plan job's publish step does not need.
    from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_steps

    plan = load_plan(management_client, run)
    with BundleDirectory() as directory:
        try:
            if connection_error is not None:
                raise connection_error
            fetch_bundles(management_client, plan, cluster, directory)
            outcome = sync_steps.reconcile(client, management_client, plan, cluster, check_mode=check_mode, **options)
        except FederationError as err:
            # Nothing could be done on this cluster: every piece of its work is reported failed, and stored.
            outcome = sync_steps.failed_report(plan, cluster, err)
    outcome["stored"] = [] if check_mode else store_result(management_client, run, cluster, outcome["report"])
    return outcome


def missing_reports(plan, reports, hosts):
    """Failed reports for the clusters that have work in the plan but no stored result (their apply job failed
    before reconciling them, was cancelled, or left them out with its limit): they show in status as Failed."""
    from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_run, sync_steps

    secret_hosts = set()
    for secret in plan.get("secrets") or []:
        if secret["namespace"] in (plan.get("secret_projects") or []):
            secret_hosts.update(secret.get("placed") or [])
    missing = {}
    for host in hosts:
        if host in reports:
            continue
        if sync_run.cluster_work(plan, host) or host in secret_hosts:
            err = FederationError("no result from this cluster: the apply job of run %s did not reconcile it (the job "
                                  "failed or was cancelled first, or its limit left the cluster out)"
                                  % run_id(plan["holder"]))
            missing[host] = sync_steps.failed_report(plan, host, err)["report"]
    return missing


def record_run(client, run, hosts, check_mode=False, trigger=None):
    """Record job: status and events from the stored results (clusters without one recorded as failed), the
    Leases released, then every object of the run deleted (not in check mode)."""
    from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_steps

    plan = load_plan(client, run)
    reports = load_reports(client, run)
    missing = missing_reports(plan, reports, hosts)
    reports.update(missing)
    outcome = sync_steps.record(client, plan, reports, hosts, check_mode=check_mode, trigger=trigger)
    if not check_mode:
        delete_run(client, run)
    outcome["missing"] = sorted(missing)
    outcome["reported"] = sorted(h for h in reports if h not in missing)
    return outcome
