"""Session fixtures: real local clusters and git servers, started once per test session.

Nothing here skips: if a server cannot start, the fixture raises and every test that needs it errors,
so CI fails loudly instead of passing without clusters.
"""

import os

import pytest

from tools.localenv.binaries import bin_dir_path
from tools.localenv.clusters import LocalClusters
from tools.localenv.gitserver import GitServers

from kube import dynamic_client, ensure_namespace, unique_name  # noqa: I100 (tests/integration is on sys.path)

CLUSTER_NAMES = ("cluster-1", "cluster-2", "cluster-3")
# cluster-2 and cluster-3 (the attached clusters of the federation tests) also run kube-controller-manager,
# kube-scheduler and kwok, so their workloads roll out; cluster-1 stays a bare apiserver, where tests
# write object status by hand.
WORKLOAD_CLUSTERS = ("cluster-2", "cluster-3")


@pytest.fixture(scope="session", autouse=True)
def binaries_on_path():
    """kubectl and kustomize on PATH for tests and for the modules they run."""
    os.environ["PATH"] = bin_dir_path() + os.pathsep + os.environ["PATH"]


@pytest.fixture(scope="session")
def local_clusters(tmp_path_factory):
    env = LocalClusters(str(tmp_path_factory.mktemp("clusters")))
    env.start(CLUSTER_NAMES, workloads=WORKLOAD_CLUSTERS)
    yield env
    env.stop()


@pytest.fixture(scope="session")
def clusters(local_clusters):
    """The three clusters as a list of tools.localenv.clusters.Cluster."""
    return list(local_clusters.clusters)


@pytest.fixture(scope="session")
def admin_clients(clusters):
    """name -> kubernetes DynamicClient with cluster-admin rights (for setup and assertions)."""
    return {c.name: dynamic_client(c.kubeconfig) for c in clusters}


@pytest.fixture(scope="session")
def git_servers(tmp_path_factory):
    servers = GitServers(str(tmp_path_factory.mktemp("git"))).start()
    yield servers
    servers.stop()


@pytest.fixture
def namespace(admin_clients):
    """A fresh namespace, created on every local cluster (never deleted: nothing finalizes it here)."""
    name = unique_name("t")
    for client in admin_clients.values():
        ensure_namespace(client, name)
    return name
