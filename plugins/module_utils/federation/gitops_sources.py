# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GitOps sources: the FederatedGitRepository + FederatedKustomization pair, as desired and as synced.

``desired_objects`` turns module options into the pair (same name, same placement). ``source_view``
resolves a live pair against the inventory for one sync: which clusters it is placed on, and for each
of them the effective settings after that cluster's template overrides. Clusters whose effective
fetch and render inputs are equal share one render (``renders``), so a source is fetched and rendered
once per distinct input, not once per cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import math
import re

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import (
    API_VERSION, FEDERATED_GIT_REPOSITORY, FEDERATED_KUSTOMIZATION, managed_labels)
from ansible_collections.gitops.federation.plugins.module_utils.federation.overrides import (
    apply_template_overrides, normalize_overrides, override_cluster_names, target_operations)
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import (
    placement_from_options, resolve_placement)
from ansible_collections.gitops.federation.plugins.module_utils.federation.rollout import (
    assign_rings, parse_rings, render_digest, ring_plan)
from ansible_collections.gitops.federation.plugins.module_utils.federation.status import DELETED

SOURCE_OWNER = "gitops/%s/%s"
DEFAULT_SCM = "github"
DEFAULT_TIMEOUT_SECONDS = 300
REF_KEYS = ("branch", "tag", "semver", "commit")
# Template overrides under these paths belong to the FederatedGitRepository; all others to the
# FederatedKustomization.
GIT_REPOSITORY_PATHS = ("/spec/url", "/spec/ref", "/spec/secretRef", "/spec/ignore", "/spec/scm")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


# Set by the teardown playbook while a source's objects are being removed; a terminating source is never synced.
TERMINATING_ANNOTATION = "gitops.federation/terminating"


def source_owner(namespace, name):
    """The owner id under which a source's objects are applied to attached clusters."""
    return SOURCE_OWNER % (namespace, name)


def duration_seconds(text, default=DEFAULT_TIMEOUT_SECONDS, where="timeout"):
    """Whole seconds (rounded up) of a Go duration such as 90s, 5m or 1m30s."""
    if not text:
        return default
    text = str(text).strip()
    if not re.match(r"^(%s)+$" % _DURATION.pattern, text):
        raise FederationError("%s: %r is not a duration such as 90s, 5m or 1h30m" % (where, text))
    return int(math.ceil(sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))))


def _split_overrides(overrides):
    """(FederatedGitRepository overrides, FederatedKustomization overrides) of the module's overrides."""
    git, kustomization = [], []
    for entry in overrides:
        git_ops = [op for op in entry["clusterOverrides"] if op.get("target") is None and any(
            op["path"] == p or op["path"].startswith(p + "/") for p in GIT_REPOSITORY_PATHS)]
        other = [op for op in entry["clusterOverrides"] if op not in git_ops]
        if git_ops:
            git.append({"clusterName": entry["clusterName"], "clusterOverrides": git_ops})
        if other:
            kustomization.append({"clusterName": entry["clusterName"], "clusterOverrides": other})
    return git, kustomization


def desired_objects(name, namespace, url, ref=None, path=None, secret=None, scm=DEFAULT_SCM, timeout=None,
                    ignore=None, prune=True, wait=False, force=False, suspend=None, target_namespace=None,
                    health_checks=None, substitute=None, placement=None, overrides=None, live_suspend=None,
                    rollout=None):
    """The FederatedGitRepository and FederatedKustomization of a source, from module options.

    suspend None keeps the live value we set (live_suspend: see owned_suspend), so a playbook that does not
    mention suspend never resumes a source it suspended; a suspension an operator made with kubectl is owned by
    kubectl's field manager and stays as it is because we do not apply the field at all.
    """
    ref = dict((k, v) for k, v in (ref or {}).items() if v is not None)
    if len(ref) > 1:
        raise FederationError("ref of source %s/%s: give at most one of %s, got %s"
                              % (namespace, name, ", ".join(REF_KEYS), ", ".join(sorted(ref))))
    if timeout is not None:
        duration_seconds(timeout, where="timeout of source %s/%s" % (namespace, name))
    normalized = normalize_overrides(overrides, "overrides of source %s/%s" % (namespace, name))
    git_overrides, kustomization_overrides = _split_overrides(normalized)
    git_spec = {"url": url, "scm": scm or DEFAULT_SCM}
    if ref:
        git_spec["ref"] = ref
    if secret:
        git_spec["secretRef"] = {"name": secret}
    if timeout:
        git_spec["timeout"] = timeout
    if ignore:
        git_spec["ignore"] = ignore
    kustomization_spec = {"sourceRef": {"kind": "GitRepository", "name": name}, "prune": bool(prune),
                          "wait": bool(wait), "force": bool(force)}
    if path is not None:
        kustomization_spec["path"] = path
    if suspend is None:
        suspend = live_suspend
    if suspend is not None:
        kustomization_spec["suspend"] = bool(suspend)
    if target_namespace:
        kustomization_spec["targetNamespace"] = target_namespace
    if timeout:
        kustomization_spec["timeout"] = timeout
    if health_checks:
        kustomization_spec["healthChecks"] = [dict((k, v) for k, v in (
            ("apiVersion", check.get("api_version") or check.get("apiVersion")), ("kind", check.get("kind")),
            ("current", check.get("current")), ("failed", check.get("failed"))) if v) for check in health_checks]
    if substitute:
        kustomization_spec["postBuild"] = {"substitute": dict((str(k), _text(v)) for k, v in substitute.items())}

    def federated(kind, spec, kind_overrides):
        obj = {"apiVersion": API_VERSION, "kind": kind,
               "metadata": {"name": name, "namespace": namespace, "labels": managed_labels()},
               "spec": {"template": {"spec": spec}, "placement": copy.deepcopy(placement or {})}}
        if kind_overrides:
            obj["spec"]["overrides"] = kind_overrides
        return obj

    kustomization = federated(FEDERATED_KUSTOMIZATION, kustomization_spec, kustomization_overrides)
    if rollout:
        kustomization["spec"]["rollout"] = {"rings": rollout_rings(rollout, "rollout of source %s/%s"
                                                                   % (namespace, name))}
    return federated(FEDERATED_GIT_REPOSITORY, git_spec, git_overrides), kustomization


def rollout_rings(rollout, where):
    """spec.rollout.rings from the module's snake_case option, validated."""
    parse_rings(rollout, where, duration_seconds)
    rings = []
    for ring in rollout:
        entry = {"name": ring["name"]}
        if ring.get("clusters"):
            entry["clusters"] = [{"name": c} for c in ring["clusters"]]
        if ring.get("cluster_selector") is not None:
            entry["clusterSelector"] = placement_from_options(None, ring["cluster_selector"])["clusterSelector"]
        for key in ("bake", "timeout"):
            if ring.get(key):
                entry[key] = str(ring[key])
        rings.append(entry)
    return rings


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def owned_suspend(kustomization, manager):
    """The live spec.template.spec.suspend when manager set it (server-side apply), else None.

    A value another manager set (kubectl patch) or the CRD defaulted is not ours to carry over: applying it would
    claim the field, which the drift check rightly counts as a change.
    """
    for entry in ((kustomization or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        fields = (((entry.get("fieldsV1") or {}).get("f:spec") or {}).get("f:template") or {}).get("f:spec") or {}
        if "f:suspend" in fields:
            return (((kustomization.get("spec") or {}).get("template") or {}).get("spec") or {}).get("suspend")
    return None


def applied_clusters(kustomization):
    """Clusters the source's status still lists as holding its objects (teardown not done there)."""
    entries = ((kustomization or {}).get("status") or {}).get("clusters") or []
    return [e["name"] for e in entries if e.get("name") and e.get("status") != DELETED]


def _cluster_settings(namespace, template_spec):
    return dict(
        namespace=template_spec.get("targetNamespace") or namespace,
        prune=template_spec.get("prune", True) is not False,
        wait=bool(template_spec.get("wait")),
        wait_timeout=duration_seconds(template_spec.get("timeout")),
        force_conflicts=bool(template_spec.get("force")),
        health_checks=[dict(kind=c.get("kind"), api_version=c.get("apiVersion"), current=c.get("current"),
                            failed=c.get("failed")) for c in template_spec.get("healthChecks") or []],
        suspended=bool(template_spec.get("suspend")),
    )


def source_view(kustomization, git_repository, clusters):
    """A live source resolved against the inventory clusters (see the module docstring).

    Problems that make the source impossible to sync (missing FederatedGitRepository, an override whose
    path does not exist...) are returned in ``errors``; such a source has no renders.
    """
    metadata = kustomization["metadata"]
    name, namespace = metadata["name"], metadata.get("namespace")
    spec = kustomization.get("spec") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    git = git_repository or {}
    git_spec = git.get("spec") or {}
    git_template = ((git_spec.get("template") or {}).get("spec")) or {}
    status = kustomization.get("status") or {}
    placement = resolve_placement(spec.get("placement"), clusters,
                                  "FederatedKustomization %s/%s placement" % (namespace, name))
    inventory = set(c.name for c in clusters)
    override_names = override_cluster_names(spec.get("overrides")) + override_cluster_names(git_spec.get("overrides"))
    unknown = sorted(set(placement.unknown) | set(n for n in override_names if n not in inventory))
    errors, renders, per_cluster, rings, assigned = [], [], {}, [], {}
    try:
        where = "FederatedKustomization %s/%s spec.rollout" % (namespace, name)
        rings = parse_rings(spec.get("rollout"), where, duration_seconds)
        assigned = assign_rings(rings, placement.placed, clusters, where) if rings else {}
    except FederationError as err:
        errors.append(err.msg)
    if errors:
        pass
    elif git_repository is None:
        source_name = (template_spec.get("sourceRef") or {}).get("name", name)
        errors.append("FederatedGitRepository %s/%s (the sourceRef of FederatedKustomization %s/%s) does not exist"
                      % (namespace, source_name, namespace, name))
    else:
        try:
            k_overrides = normalize_overrides(spec.get("overrides"), "FederatedKustomization %s/%s overrides"
                                              % (namespace, name))
            g_overrides = normalize_overrides(git_spec.get("overrides"), "FederatedGitRepository %s/%s overrides"
                                              % (namespace, git["metadata"]["name"]))
            keys = {}
            for cluster in placement.placed:
                k_spec = apply_template_overrides({"spec": template_spec}, k_overrides, cluster,
                                                  "FederatedKustomization %s/%s overrides" % (namespace, name))["spec"]
                g_spec = apply_template_overrides({"spec": git_template}, g_overrides, cluster,
                                                  "FederatedGitRepository %s/%s overrides"
                                                  % (namespace, git["metadata"]["name"]))["spec"]
                render = dict(url=g_spec.get("url"), ref=g_spec.get("ref") or {},
                              secret=(g_spec.get("secretRef") or {}).get("name"), ignore=g_spec.get("ignore"),
                              timeout=duration_seconds(g_spec.get("timeout")), path=k_spec.get("path") or ".",
                              substitute=((k_spec.get("postBuild") or {}).get("substitute")) or {})
                key = json.dumps(render, sort_keys=True)
                if key not in keys:
                    keys[key] = len(renders)
                    renders.append(dict(render, id=len(renders), clusters=[]))
                renders[keys[key]]["clusters"].append(cluster)
                settings = _cluster_settings(namespace, k_spec)
                settings.update(render=keys[key], overrides=target_operations(k_overrides, cluster))
                if rings:
                    # A ring's clusters must become healthy before the next ring: rings always wait.
                    ring = rings[assigned[cluster]]
                    settings.update(ring=assigned[cluster], ring_name=ring["name"], bake=ring["bake_seconds"],
                                    wait=True, wait_timeout=ring["timeout"] or settings["wait_timeout"],
                                    render_digest=render_digest(render))
                per_cluster[cluster] = settings
        except FederationError as err:
            errors.append(err.msg)
            renders, per_cluster = [], {}
    listed = applied_clusters(kustomization)
    return dict(
        name=name, namespace=namespace, owner=source_owner(namespace, name), generation=metadata.get("generation"),
        suspended=bool(template_spec.get("suspend")),
        terminating=TERMINATING_ANNOTATION in (metadata.get("annotations") or {}),
        url=git_template.get("url"), ref=git_template.get("ref") or {}, scm=git_template.get("scm") or DEFAULT_SCM,
        secret=(git_template.get("secretRef") or {}).get("name"), path=template_spec.get("path"),
        prune=template_spec.get("prune", True) is not False, wait=bool(template_spec.get("wait")),
        timeout=template_spec.get("timeout"), target_namespace=template_spec.get("targetNamespace"),
        substitute=((template_spec.get("postBuild") or {}).get("substitute")) or {},
        health_checks=template_spec.get("healthChecks") or [],
        placement=spec.get("placement") or {}, overrides=spec.get("overrides") or [],
        placed=placement.placed, unknown_clusters=unknown,
        unplaced=[c.name for c in clusters if c.name not in placement.placed],
        stale_clusters=[n for n in listed if n not in placement.placed],
        renders=renders, clusters=per_cluster, errors=errors,
        rings=ring_plan(rings, assigned) if rings and not errors else [],
        rollout_status=status.get("rollout") or {},
        status=dict(last_applied_revision=status.get("lastAppliedRevision"),
                    artifact_revision=((git.get("status") or {}).get("artifact") or {}).get("revision"),
                    observed_generation=status.get("observedGeneration"), scope=status.get("scope") or "tenant",
                    platform=status.get("platform") or {},
                    conditions=status.get("conditions") or [], clusters=status.get("clusters") or []),
    )
