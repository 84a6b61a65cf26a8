# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of one sync run: which sources are ready, what each cluster does, what is recorded.

Pure functions (no I/O), used by the three modules of the sync path (``sync_plan`` on the management
cluster, ``cluster_reconcile`` on each attached cluster, ``sync_record`` back on the management cluster)
and by the ``gitops.federation`` filters the other playbooks use. Lease, render and per-cluster outcomes
are passed in the shape of Ansible loop results (``item``, ``failed``, ``skipped``, ``msg``), so the
same decisions serve modules and playbooks. A cluster's *report* is ``{sources: {key: result},
secrets: {namespace: {secret or "*": result}}, halted: message}``; ``reports`` maps hosts to them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def source_key(source):
    return "%s/%s" % (source["namespace"], source["name"])


def render_jobs(sources, lease_results):
    """One render job per distinct render input of each source whose lease this run holds."""
    held = set()
    for result in lease_results or []:
        if not result.get("failed") and not result.get("skipped"):
            held.add(source_key(result["item"]))
    jobs = []
    for source in sources:
        if source_key(source) not in held:
            continue
        for render in source.get("renders") or []:
            jobs.append(dict(key=source_key(source), namespace=source["namespace"], source=source["name"],
                             render=render))
    return jobs


def _job_error(result):
    return result.get("msg") or "failed"


def sync_plan(sources, lease_results, render_results, projects, secret_lease_results=None):
    """What the attached clusters do and what the record step writes, per source.

    A source is ``ready`` only if its lease is held and every one of its renders succeeded: a broken or
    partial render never reaches a cluster (so nothing is pruned on it). A project's federated secrets are
    propagated (``secret_projects``) only when this run holds the project's secrets lease.
    """
    leases = dict((source_key(r["item"]), r) for r in lease_results or [] if "item" in r)
    renders = {}
    for result in render_results or []:
        job = result.get("item") or {}
        renders[(job.get("key"), (job.get("render") or {}).get("id"))] = result
    plan = []
    for source in sources:
        key = source_key(source)
        entry = dict(key=key, namespace=source["namespace"], name=source["name"], owner=source["owner"],
                     generation=source.get("generation"), suspended=bool(source.get("suspended")),
                     terminating=bool(source.get("terminating")), placed=list(source.get("placed") or []),
                     unplaced=list(source.get("unplaced") or []),
                     target_namespace=source.get("target_namespace") or source["namespace"],
                     rings=list(source.get("rings") or []), ready=False, error=None, revision=None, clusters={},
                     record=True,
                     # The operator's policy (source_policy.SourcePolicy.to_plan), never the object's claim.
                     policy=source.get("policy") or None, policy_note=source.get("policy_note") or None)
        if source.get("ref_override"):
            entry["ref_override"] = source["ref_override"]  # a preview or drift report renders this ref
        if source.get("window"):
            entry["window"] = source["window"]  # sync windows closed (or were forced open) on some clusters
        errors = list(source.get("errors") or [])
        if entry["suspended"] or entry["terminating"] or source.get("window_closed"):
            plan.append(entry)
            continue
        lease = leases.get(key)
        if errors:
            pass
        elif lease is None or lease.get("skipped"):
            errors.append("not synced: no lease was taken for it")
        elif lease.get("failed"):
            errors.append(lease.get("msg") or "the sync lease could not be taken")
            # Another run is syncing it (or the lease could not be read): its status is that run's to write.
            entry["record"] = False
        else:
            revisions = {}
            for render in source.get("renders") or []:
                result = renders.get((key, render["id"]))
                if result is None or result.get("failed") or result.get("skipped"):
                    errors.append("fetch/render of %s (path %s) failed: %s"
                                  % (render.get("url"), render.get("path"), _job_error(result or {})))
                else:
                    revisions[render["id"]] = (result["revision"], result["bundle"])
            if not errors:
                for cluster, settings in (source.get("clusters") or {}).items():
                    revision, bundle = revisions[settings["render"]]
                    entry["clusters"][cluster] = dict(settings, revision=revision, bundle=bundle)
                ordered = [revisions[i][0] for i in sorted(revisions)]
                entry["revision"] = ordered[0] if ordered else None
                entry["ready"] = True
        entry["error"] = "; ".join(errors) if errors else None
        plan.append(entry)
    secret_projects, secret_errors = [], []
    for namespace in projects:
        lease = next((r for r in secret_lease_results or [] if r.get("item") == namespace), None)
        if lease is not None and lease.get("failed"):
            secret_errors.append(lease.get("msg") or "the federated secrets of %s: lease not taken" % namespace)
        elif lease is not None and not lease.get("skipped"):
            secret_projects.append(namespace)
    return dict(projects=list(projects), secret_projects=secret_projects, secret_errors=secret_errors, sources=plan)


def waves(plan):
    """How many waves the attached play runs: the most rollout rings of any ready source (1 without rings)."""
    return max([len(e.get("rings") or []) for e in plan.get("sources") or [] if e.get("ready")] + [1])


def cluster_waves(plan, cluster):
    """The waves in which this cluster has work: the rings it is in, or [0] (secrets, removals) when none."""
    return sorted(set(int(e["clusters"][cluster].get("ring") or 0) for e in plan.get("sources") or []
                      if e.get("ready") and cluster in e["clusters"])) or [0]


def cluster_work(plan, cluster, wave=None):
    """This cluster's work: apply each ready source placed here, remove each ready source placed elsewhere.

    With a wave (rollout rings), only the sources whose ring on this cluster is that wave; removals go with the
    cluster's first wave.
    """
    work = []
    first = wave is None or wave == cluster_waves(plan, cluster)[0]
    for entry in plan.get("sources") or []:
        if not entry.get("ready"):
            continue
        settings = entry["clusters"].get(cluster)
        if settings is not None and wave is not None and int(settings.get("ring") or 0) != wave:
            continue
        if settings is None and not first:
            continue
        if settings is not None:
            work.append(dict(settings, key=entry["key"], owner=entry["owner"], state="present",
                             suspended=bool(settings.get("suspended")), **_policy(entry)))
        elif cluster in (entry.get("unplaced") or []):
            work.append(dict(key=entry["key"], owner=entry["owner"], namespace=entry["target_namespace"],
                             state="absent", suspended=False, revision=entry.get("revision"), **_policy(entry)))
    return work


def _policy(entry):
    """The source's policy for a cluster's work (removal too: CRDs kept, same ServiceAccount); none: tenant."""
    return dict(policy=entry["policy"]) if entry.get("policy") else {}


def merge_reports(report, more):
    """One cluster's report over the waves of a run: this wave's report merged into the earlier ones."""
    merged = dict(sources=dict((report or {}).get("sources") or {}), secrets=dict((report or {}).get("secrets") or {}))
    for key in ("rollout",):
        if (report or {}).get(key) or (more or {}).get(key):
            merged[key] = dict((report or {}).get(key) or {})
            merged[key].update((more or {}).get(key) or {})
    merged["sources"].update((more or {}).get("sources") or {})
    merged["secrets"].update((more or {}).get("secrets") or {})
    for key in ("halted", "lease_lost"):
        texts = [r[key] for r in (report, more) if (r or {}).get(key)]
        if texts:
            merged[key] = "; ".join(texts)
    return merged


def rollout_halts(reports, hosts):
    """{source key: why} for the sources whose rollout must not go on: a ring of theirs failed on a cluster."""
    halts = {}
    for host, report in _reports(reports, hosts):
        for key, ring in sorted((report.get("rollout") or {}).items()):
            if ring.get("state") in ("Failed", "RolledBack") and key not in halts:
                halts[key] = "ring %s failed on %s" % (ring.get("ring"), host)
    return halts


def rollout_failures(reports, hosts):
    """Clusters of earlier batches whose sync failed (a canary rollout halts after them)."""
    failed = []
    for host, report in _reports(reports, hosts):
        if any(r.get("status") in ("Failed", "Unreachable") for r in (report.get("sources") or {}).values()):
            failed.append(host)
    return failed


def _failure_status(result):
    return "Unreachable" if result.get("status") == 0 else "Failed"


def cluster_results(source_results, secret_results, cluster):
    """{sources: {key: result}, secrets: {namespace: {secret: result}}} from this cluster's task results."""
    sources = {}
    for result in source_results or []:
        work = result.get("item") or {}
        if result.get("skipped"):
            if work.get("suspended"):
                sources[work["key"]] = dict(cluster=cluster, status="Suspended",
                                            message="suspended on this cluster by an override")
            continue
        if result.get("failed"):
            outcome = dict(cluster=cluster, status=_failure_status(result), counts=result.get("counts") or {},
                           message=result.get("msg"), revision=work.get("revision"))
        elif work.get("state") == "absent":
            if not result.get("changed"):
                continue  # nothing of the source was here
            outcome = dict(cluster=cluster, status="Deleted", counts=result.get("counts") or {},
                           message="removed: the cluster left the placement")
        else:
            health = result.get("health") or []
            # No message: status and events spell the counts out themselves.
            outcome = dict(cluster=cluster, status="Applied", counts=result.get("counts") or {},
                           revision=work.get("revision"))
            if work.get("wait"):
                outcome["healthy"] = all(h.get("status") == "Current" for h in health)
        sources[work["key"]] = dict((k, v) for k, v in outcome.items() if v is not None)
    secrets = {}
    for result in secret_results or []:
        namespace = result.get("item")
        if result.get("skipped"):
            continue
        if result.get("failed"):
            secrets[namespace] = {"*": dict(cluster=cluster, status=_failure_status(result), message=result.get("msg"))}
        else:
            secrets[namespace] = result.get("status_results") or {}
    return dict(sources=sources, secrets=secrets)


def _reports(reports, hosts):
    """(host, report) of the given hosts that reported, in the hosts' order."""
    for host in hosts:
        report = (reports or {}).get(host)
        if isinstance(report, dict):
            yield host, report


def collect_results(reports, hosts, key):
    """Every attached cluster's result for one source (clusters that did not report are left out)."""
    return [report["sources"][key] for unused_host, report in _reports(reports, hosts)
            if key in (report.get("sources") or {})]


def collect_secret_results(reports, hosts, namespace, secret, placed):
    """Results for one federated secret from the clusters it is placed on (and any that still had it)."""
    results = []
    for host, report in _reports(reports, hosts):
        by_secret = (report.get("secrets") or {}).get(namespace)
        if by_secret is None:
            continue
        if "*" in by_secret:
            if host in placed:
                results.append(by_secret["*"])
        elif secret in by_secret:
            results.append(by_secret[secret])
    return results


def failures(plan, reports, hosts):
    """Human-readable lines for everything that did not sync: the job fails with these."""
    lines = list(plan.get("secret_errors") or [])
    for entry in plan.get("sources") or []:
        if entry.get("error"):
            lines.append("%s: %s" % (entry["key"], entry["error"]))
        if entry.get("held"):
            lines.append("%s: %s" % (entry["key"], entry["held"]))
    for host, report in _reports(reports, hosts):
        if report.get("halted"):
            lines.append("%s: not synced: %s" % (host, report["halted"]))
        if report.get("lease_lost"):
            lines.append("%s: %s" % (host, report["lease_lost"]))
        for key, result in sorted((report.get("sources") or {}).items()):
            if result.get("status") in ("Failed", "Unreachable"):
                lines.append("%s on %s: %s: %s" % (key, host, result["status"], result.get("message")))
        for key, ring in sorted((report.get("rollout") or {}).items()):
            if ring.get("state") == "Halted":
                lines.append("%s on %s: not synced (ring %s): %s" % (key, host, ring.get("ring"), ring.get("message")))
        for namespace, by_secret in sorted((report.get("secrets") or {}).items()):
            for secret, result in sorted(by_secret.items()):
                if result.get("status") in ("Failed", "Unreachable"):
                    lines.append("federated secrets of %s on %s: %s" % (namespace, host, result.get("message")))
    return lines
