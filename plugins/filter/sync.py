# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that carry one sync's data between its plays (management -> attached clusters -> management).

The sync playbook reads sources on the management cluster, renders each once, reconciles every attached
cluster in parallel (Ansible forks, serial batches) and records the results back. These pure functions
shape the data passed between those steps, so the role's YAML stays a readable list of module calls.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

# The connection options of kubernetes.core (and of this collection's modules), read from host vars.
CONNECTION_KEYS = ("kubeconfig", "context", "host", "api_key", "client_cert", "client_key", "ca_cert",
                   "validate_certs", "proxy")


def cluster_connection(host_vars):
    """The connection options found in one host's vars (undefined ones left out)."""
    connection = {}
    for key in CONNECTION_KEYS:
        try:
            value = host_vars[key]
        except (KeyError, TypeError):
            continue
        if value is not None and not _undefined(value):
            connection[key] = value
    return connection


def _undefined(value):
    return type(value).__name__.endswith("Undefined")


def inventory_clusters(hostvars, hosts):
    """[{name, labels}] for the attached hosts, for placement (labels from host var cluster_labels)."""
    clusters = []
    for host in hosts:
        try:
            labels = hostvars[host]["cluster_labels"]
        except (KeyError, TypeError):
            labels = {}
        if _undefined(labels) or labels is None:
            labels = {}
        if not isinstance(labels, dict):
            raise AnsibleFilterError("host %s: cluster_labels must be a mapping of label to value, got %r"
                                     % (host, labels))
        clusters.append(dict(name=host, labels=dict((str(k), str(v)) for k, v in labels.items())))
    return clusters


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
                     ready=False, error=None, revision=None, clusters={}, record=True)
        errors = list(source.get("errors") or [])
        if entry["suspended"] or entry["terminating"]:
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


def cluster_work(plan, cluster):
    """This cluster's work: apply each ready source placed here, remove each ready source placed elsewhere."""
    work = []
    for entry in plan.get("sources") or []:
        if not entry.get("ready"):
            continue
        settings = entry["clusters"].get(cluster)
        if settings is not None:
            work.append(dict(settings, key=entry["key"], owner=entry["owner"], state="present",
                             suspended=bool(settings.get("suspended"))))
        elif cluster in (entry.get("unplaced") or []):
            work.append(dict(key=entry["key"], owner=entry["owner"], namespace=entry["target_namespace"],
                             state="absent", suspended=False, revision=entry.get("revision")))
    return work


def rollout_failures(hostvars, hosts):
    """Clusters of earlier batches whose sync failed (a canary rollout halts after them)."""
    failed = []
    for host, report in _reports(hostvars, hosts):
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


def _reports(hostvars, hosts):
    for host in hosts:
        try:
            report = hostvars[host]["gitops_cluster_results"]
        except (KeyError, TypeError):
            continue
        if not _undefined(report) and isinstance(report, dict):
            yield host, report


def collect_results(hostvars, hosts, key):
    """Every attached cluster's result for one source (clusters that did not report are left out)."""
    return [report["sources"][key] for unused_host, report in _reports(hostvars, hosts)
            if key in (report.get("sources") or {})]


def collect_secret_results(hostvars, hosts, namespace, secret, placed):
    """Results for one federated secret from the clusters it is placed on (and any that still had it)."""
    results = []
    for host, report in _reports(hostvars, hosts):
        by_secret = (report.get("secrets") or {}).get(namespace)
        if by_secret is None:
            continue
        if "*" in by_secret:
            if host in placed:
                results.append(by_secret["*"])
        elif secret in by_secret:
            results.append(by_secret[secret])
    return results


def failures(plan, hostvars, hosts):
    """Human-readable lines for everything that did not sync: the job fails with these."""
    lines = list(plan.get("secret_errors") or [])
    for entry in plan.get("sources") or []:
        if entry.get("error"):
            lines.append("%s: %s" % (entry["key"], entry["error"]))
    for host, report in _reports(hostvars, hosts):
        if report.get("halted"):
            lines.append("%s: not synced: %s" % (host, report["halted"]))
        for key, result in sorted((report.get("sources") or {}).items()):
            if result.get("status") in ("Failed", "Unreachable"):
                lines.append("%s on %s: %s: %s" % (key, host, result["status"], result.get("message")))
        for namespace, by_secret in sorted((report.get("secrets") or {}).items()):
            for secret, result in sorted(by_secret.items()):
                if result.get("status") in ("Failed", "Unreachable"):
                    lines.append("federated secrets of %s on %s: %s" % (namespace, host, result.get("message")))
    return lines


def status_table(sources):
    """Rows of a per-source, per-cluster table (revision, state, last applied, message)."""
    header = ("PROJECT", "SOURCE", "CLUSTER", "STATE", "REVISION", "LAST APPLIED", "MESSAGE")
    rows = []
    for source in sources:
        status = source.get("status") or {}
        by_cluster = dict((c.get("name"), c) for c in status.get("clusters") or [])
        state_of_source = "Suspended" if source.get("suspended") else None
        if source.get("terminating"):
            state_of_source = "Terminating"
        clusters = list(source.get("placed") or []) + sorted(n for n in by_cluster if n not in (source.get("placed") or []))
        if not clusters:
            rows.append((source["namespace"], source["name"], "-", state_of_source or "NotPlaced", "-", "-",
                         "; ".join(source.get("errors") or []) or "placed on no inventory cluster"))
        for cluster in clusters:
            entry = by_cluster.get(cluster) or {}
            state = entry.get("status") or "Pending"
            if state_of_source and state not in ("Failed", "Unreachable"):
                state = state_of_source
            rows.append((source["namespace"], source["name"], cluster, state, _short(entry.get("revision")),
                         entry.get("lastAppliedTime") or "-", entry.get("message") or ""))
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header) - 1)]
    lines = []
    for row in [header] + rows:
        cells = [str(cell).ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return lines


def _short(revision):
    """main@sha1:4b76adcc78cc5a231fa5d8e7cf2f764df10c7568 -> main@sha1:4b76adc (as kubectl users read it)."""
    if not revision:
        return "-"
    prefix, sep, sha = revision.rpartition("sha1:")
    return prefix + sep + sha[:7] if sep else revision


class FilterModule(object):
    def filters(self):
        return dict(
            cluster_connection=cluster_connection,
            inventory_clusters=inventory_clusters,
            render_jobs=render_jobs,
            sync_plan=sync_plan,
            cluster_work=cluster_work,
            cluster_results=cluster_results,
            collect_results=collect_results,
            collect_secret_results=collect_secret_results,
            rollout_failures=rollout_failures,
            sync_failures=failures,
            status_table=status_table,
        )
