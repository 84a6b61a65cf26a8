"""Test-side access to the local clusters, independent of the collection's own client.

Assertions about cluster state go through the kubernetes library's dynamic client (or kubectl), not
through the engine under test.
"""

import base64
import uuid

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError


def dynamic_client(kubeconfig):
    api = k8s_config.new_client_from_config(config_file=kubeconfig, persist_config=False)
    return DynamicClient(api)


def unique_name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ensure_namespace(client, name, labels=None):
    namespaces = client.resources.get(api_version="v1", kind="Namespace")
    try:
        return namespaces.get(name=name)
    except NotFoundError:
        return namespaces.create(body={"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name, "labels": labels or {}}})


def get_or_none(client, api_version, kind, name, namespace=None):
    resource = client.resources.get(api_version=api_version, kind=kind)
    try:
        return resource.get(name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return None


def service_account_kubeconfig(cluster, client, namespace, name, path, rules=None):
    """A kubeconfig authenticating as a real ServiceAccount token bound to a Role in one namespace.

    rules default to full access to everything in that namespace (and nothing else).
    """
    rules = rules or [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    ensure_namespace(client, namespace)
    create = lambda api_version, kind, body: client.resources.get(api_version=api_version, kind=kind).create(  # noqa: E731
        body=body, namespace=namespace)
    create("v1", "ServiceAccount", {"metadata": {"name": name}})
    create("rbac.authorization.k8s.io/v1", "Role", {"metadata": {"name": name}, "rules": rules})
    create("rbac.authorization.k8s.io/v1", "RoleBinding", {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    })
    core = k8s_client.CoreV1Api(client.client)
    token = core.create_namespaced_service_account_token(name, namespace, {
        "spec": {"audiences": [], "expirationSeconds": 3600}}).status.token
    with open(cluster.ca_file, "rb") as handle:
        ca_data = base64.b64encode(handle.read()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": cluster.name, "cluster": {"server": cluster.server, "certificate-authority-data": ca_data}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": cluster.name, "user": name, "namespace": namespace}}],
    }
    with open(path, "w") as handle:
        yaml.safe_dump(config, handle)
    return path, token
