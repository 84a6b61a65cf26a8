"""The ground every other test stands on is real: independent API servers, CRDs, RBAC, git over HTTP and SSH."""

import os
import subprocess
import time

import pytest
from kubernetes import client as k8s_client
from kubernetes.dynamic.exceptions import ForbiddenError

from kube import dynamic_client, ensure_namespace, get_or_none, service_account_kubeconfig, unique_name
from tools.localenv.binaries import binary

VERSIONS_ENV = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "binaries", "versions.env")


def _pinned(name):
    with open(VERSIONS_ENV) as handle:
        return dict(line.strip().split("=", 1) for line in handle if "=" in line and not line.startswith("#"))[name]


def test_api_servers_report_the_pinned_release(clusters):
    for cluster in clusters:
        version = k8s_client.VersionApi(dynamic_client(cluster.kubeconfig).client).get_code()
        assert version.git_version == _pinned("KUBERNETES_VERSION"), cluster.name


def test_clusters_are_independent(clusters, admin_clients):
    name = unique_name("independent")
    first, others = clusters[0], clusters[1:]
    ensure_namespace(admin_clients[first.name], name)
    configmaps = admin_clients[first.name].resources.get(api_version="v1", kind="ConfigMap")
    configmaps.create(namespace=name, body={"metadata": {"name": "only-here"}, "data": {"k": "v"}})
    assert get_or_none(admin_clients[first.name], "v1", "ConfigMap", "only-here", name)["data"] == {"k": "v"}
    for other in others:
        assert get_or_none(admin_clients[other.name], "v1", "Namespace", name) is None, other.name
    assert len({c.server for c in clusters}) == len(clusters)


def test_kubectl_reaches_each_cluster(clusters):
    for cluster in clusters:
        out = subprocess.run([binary("kubectl"), "--kubeconfig", cluster.kubeconfig, "get", "ns", "kube-system",
                              "-o", "name"], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "namespace/kube-system"


def test_crd_becomes_established(admin_clients):
    client = admin_clients["cluster-2"]
    plural = unique_name("widgets").replace("-", "")
    crds = client.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(body={
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.example.test"},
        "spec": {"group": "example.test", "scope": "Namespaced",
                 "names": {"plural": plural, "singular": plural[:-1], "kind": "W" + plural[1:-1]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    })
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conditions = {c["type"]: c["status"] for c in
                      (crds.get(name=f"{plural}.example.test").to_dict().get("status") or {}).get("conditions") or []}
        if conditions.get("Established") == "True":
            break
        time.sleep(0.2)
    assert conditions.get("Established") == "True"


def test_namespace_scoped_token_writes_at_home_and_is_forbidden_elsewhere(clusters, admin_clients, tmp_path):
    cluster = clusters[0]
    admin = admin_clients[cluster.name]
    home, elsewhere = unique_name("home"), unique_name("elsewhere")
    ensure_namespace(admin, elsewhere)
    kubeconfig, _ = service_account_kubeconfig(cluster, admin, home, "deployer", str(tmp_path / "sa.kubeconfig"))
    limited = dynamic_client(kubeconfig)
    configmaps = limited.resources.get(api_version="v1", kind="ConfigMap")
    configmaps.create(namespace=home, body={"metadata": {"name": "written"}})
    assert get_or_none(admin, "v1", "ConfigMap", "written", home) is not None
    with pytest.raises(ForbiddenError):
        configmaps.create(namespace=elsewhere, body={"metadata": {"name": "written"}})
    assert get_or_none(admin, "v1", "ConfigMap", "written", elsewhere) is None


def _clone(url, dest, env=None):
    environment = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", **(env or {}))
    return subprocess.run(["git", "clone", "-q", url, dest], capture_output=True, text=True, env=environment)


def test_http_clone_needs_the_right_password(git_servers, tmp_path):
    git_servers.create_repo("foundation-http", files={"cm.yaml": "kind: ConfigMap\n"})
    base = git_servers.http_url("foundation-http")
    good = base.replace("http://", f"http://{git_servers.username}:{git_servers.password}@")
    assert _clone(good, str(tmp_path / "good")).returncode == 0
    assert (tmp_path / "good" / "cm.yaml").read_text() == "kind: ConfigMap\n"
    bad = _clone(base.replace("http://", f"http://{git_servers.username}:not-the-password@"), str(tmp_path / "bad"))
    assert bad.returncode != 0
    assert "Authentication failed" in bad.stderr
    anonymous = _clone(base, str(tmp_path / "anonymous"))
    assert anonymous.returncode != 0


def test_ssh_clone_needs_the_deploy_key_and_a_known_host(git_servers, tmp_path):
    git_servers.create_repo("foundation-ssh", files={"cm.yaml": "kind: ConfigMap\n"})
    url = git_servers.ssh_url("foundation-ssh")
    ssh = f"ssh -i {git_servers.deploy_key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes"
    ok = _clone(url, str(tmp_path / "ok"), {"GIT_SSH_COMMAND": f"{ssh} -o UserKnownHostsFile={git_servers.known_hosts}"})
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "ok" / "cm.yaml").exists()
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    unknown = _clone(url, str(tmp_path / "unknown"), {"GIT_SSH_COMMAND": f"{ssh} -o UserKnownHostsFile={empty_known_hosts}"})
    assert unknown.returncode != 0
    assert "Host key verification failed" in unknown.stderr
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    wrong_key = _clone(url, str(tmp_path / "wrong"), {"GIT_SSH_COMMAND": (
        f"ssh -i {other_key} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={git_servers.known_hosts}")})
    assert wrong_key.returncode != 0
    assert "Permission denied" in wrong_key.stderr
