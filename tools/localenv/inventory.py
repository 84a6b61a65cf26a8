"""An Ansible inventory for local environments: management + attached clusters and a demo project."""

import os

import yaml

from .pki import write_private

EXAMPLE_APP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "examples", "demo-app")


def demo_project(git, repo="demo-app", namespace="demo", source="demo-app", secret="demo-git", wait=False):
    """gitops_projects entry: one federated secret (HTTPS credentials) and one source with a per-cluster overlay.

    wait: the sync waits for the source's workloads to become healthy (for clusters that run workloads).
    """
    return {
        "namespace": namespace,
        "secrets": [{"name": secret, "username": git.username, "password": git.password,
                     "cluster_selector": {"matchLabels": {"env": "demo"}}}],
        "sources": [{
            "name": source, "url": git.http_url(repo), "ref": {"branch": "main"}, "secret": secret,
            "path": "overlays/attached-1", "cluster_selector": {"matchLabels": {"env": "demo"}},
            "substitute": {"CLUSTER_NAME": "an attached cluster"}, "wait": bool(wait),
            "overrides": [{"cluster_name": "attached-2", "cluster_overrides": [
                {"op": "replace", "path": "/spec/path", "value": "overlays/attached-2"}]}],
        }],
    }


def write_inventory(path, clusters, projects, management="mgmt"):
    """Write hosts.yml: group management (one host), group attached (the rest, labelled env=demo)."""
    hosts = {c.name: {"kubeconfig": c.kubeconfig} for c in clusters}
    attached = {name: dict(vars_, cluster_labels={"env": "demo", "name": name})
                for name, vars_ in hosts.items() if name != management}
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "gitops_projects": projects},
        "children": {
            "management": {"hosts": {management: hosts[management]}},
            "attached": {"hosts": attached},
        },
    }}
    write_private(path, yaml.safe_dump(inventory, sort_keys=False).encode())
    return path
