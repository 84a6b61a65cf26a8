# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that carry a run's data between its plays (management -> attached clusters -> management).

The decisions (plan, per-cluster work, results, failures) live in ``module_utils/federation/sync_run.py``, where the
sync modules call them in-process; these filters only adapt the ones playbooks need to host vars (teardown's
results, the rollout halt of sync, the reports sync_record reads) and build the connection and inventory
views the roles pass to modules. A filter nothing in roles/ or playbooks/ uses does not belong here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_run

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


def _reports(hostvars, hosts):
    """{host: report} of the hosts whose gitops_cluster_results are defined."""
    reports = {}
    for host in hosts:
        try:
            report = hostvars[host]["gitops_cluster_results"]
        except (KeyError, TypeError):
            continue
        if not _undefined(report) and isinstance(report, dict):
            reports[host] = report
    return reports


def sync_reports(hostvars, hosts):
    """{host: gitops_cluster_results} of the attached hosts that reported (for the sync_record module)."""
    return _reports(hostvars, hosts)


def rollout_halts(hostvars, hosts):
    """{source key: why} of the sources whose rollout stopped in an earlier wave (a ring failed)."""
    return sync_run.rollout_halts(_reports(hostvars, hosts), hosts)


def cluster_waves(plan, cluster):
    return sync_run.cluster_waves(plan, cluster)


def merge_reports(report, more):
    return sync_run.merge_reports(report if isinstance(report, dict) else {}, more if isinstance(more, dict) else {})


def rollout_failures(hostvars, hosts):
    return sync_run.rollout_failures(_reports(hostvars, hosts), hosts)


def collect_results(hostvars, hosts, key):
    return sync_run.collect_results(_reports(hostvars, hosts), hosts, key)


POLICY_OPTIONS = ("platform", "service_account", "service_account_namespace")


def source_policies(projects):
    """The operator's policy options of every source of gitops_projects, as [{namespace, name, platform,
    service_account, service_account_namespace}] (nothing else of the entries: no credentials)."""
    policies = []
    for project in projects or []:
        for entry in project.get("sources") or []:
            item = dict(namespace=project.get("namespace"), name=entry.get("name"))
            item.update((k, entry[k]) for k in POLICY_OPTIONS if entry.get(k) is not None)
            policies.append(item)
    return policies


def source_policy(projects, namespace, name):
    """One source's policy options from gitops_projects ({} when the operator declares none: a tenant source)."""
    for item in source_policies(projects):
        if item["namespace"] == namespace and item["name"] == name:
            return dict((k, v) for k, v in item.items() if k in POLICY_OPTIONS)
    return {}


def status_table(sources):
    """Rows of a per-source, per-cluster table (revision, state, last applied, message)."""
    header = ("PROJECT", "SOURCE", "SCOPE", "CLUSTER", "STATE", "REVISION", "LAST APPLIED", "MESSAGE")
    rows = []
    for source in sources:
        status = source.get("status") or {}
        scope = status.get("scope") or "tenant"
        by_cluster = dict((c.get("name"), c) for c in status.get("clusters") or [])
        state_of_source = "Suspended" if source.get("suspended") else None
        if source.get("terminating"):
            state_of_source = "Terminating"
        clusters = list(source.get("placed") or []) + sorted(n for n in by_cluster if n not in (source.get("placed") or []))
        if not clusters:
            rows.append((source["namespace"], source["name"], scope, "-", state_of_source or "NotPlaced", "-", "-",
                         "; ".join(source.get("errors") or []) or "placed on no inventory cluster"))
        for cluster in clusters:
            entry = by_cluster.get(cluster) or {}
            state = entry.get("status") or "Pending"
            if state_of_source and state not in ("Failed", "Unreachable"):
                state = state_of_source
            rows.append((source["namespace"], source["name"], scope, cluster, state, _short(entry.get("revision")),
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
            collect_results=collect_results,
            rollout_failures=rollout_failures,
            rollout_halts=rollout_halts,
            cluster_waves=cluster_waves,
            merge_reports=merge_reports,
            sync_reports=sync_reports,
            status_table=status_table,
            source_policies=source_policies,
            source_policy=source_policy,
        )
