"""Real local Kubernetes control planes: one etcd, N kube-apiservers (distinct --etcd-prefix each).

The envtest approach: no kubelet, scheduler or controllers, so Deployments never become ready on
their own and namespace deletion is never finalized. Every apiserver has its own CA, serving and
admin client certificates, and a ServiceAccount token signer so RBAC tests can use real tokens.

State lives in ``<workdir>/state.json`` so ``clusters-down`` in another process can stop them.
"""

import base64
import json
import os
import shutil
import ssl

import yaml

from . import pki
from .binaries import binary
from .processes import LocalEnvError, free_port, rss_bytes, spawn, stop, wait_http

SERVICE_CIDR = "10.0.0.0/24"


class Cluster:
    """One running control plane, as recorded in the state file."""

    def __init__(self, name, server, kubeconfig, pid, ca_file):
        self.name = name
        self.server = server
        self.kubeconfig = kubeconfig
        self.pid = pid
        self.ca_file = ca_file

    def as_dict(self):
        return dict(name=self.name, server=self.server, kubeconfig=self.kubeconfig, pid=self.pid, ca_file=self.ca_file)

    def __repr__(self):
        return f"Cluster({self.name!r}, {self.server!r})"


class LocalClusters:
    def __init__(self, workdir):
        self.workdir = os.path.abspath(workdir)
        self.state_path = os.path.join(self.workdir, "state.json")
        self.etcd_pid = None
        self.clusters = []

    # -- state ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, workdir):
        env = cls(workdir)
        if os.path.exists(env.state_path):
            with open(env.state_path) as handle:
                state = json.load(handle)
            env.etcd_pid = state.get("etcd_pid")
            env.clusters = [Cluster(**c) for c in state.get("clusters", [])]
        return env

    def _save(self):
        with open(self.state_path, "w") as handle:
            json.dump({"etcd_pid": self.etcd_pid, "clusters": [c.as_dict() for c in self.clusters]}, handle, indent=2)

    def by_name(self, name):
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(f"no local cluster named {name!r} in {self.workdir}")

    @property
    def all_kubeconfig(self):
        return os.path.join(self.workdir, "all.kubeconfig")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, names, timeout=180):
        """Start etcd and one apiserver per name; wait for every /readyz. Stops everything on failure."""
        if self.clusters:
            raise LocalEnvError(f"clusters already recorded in {self.state_path}; run clusters-down first")
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir, mode=0o700)
        try:
            etcd_url = self._start_etcd()
            started = [self._start_apiserver(name, etcd_url) for name in names]
            self._save()
            for cluster, log_path, context in started:
                wait_http(f"{cluster.server}/readyz", cluster.pid, log_path, f"kube-apiserver {cluster.name}",
                          timeout=timeout, ssl_context=context)
            self._write_all_kubeconfig()
        except BaseException:
            self.stop()
            raise
        return self.clusters

    def stop(self):
        for cluster in self.clusters:
            stop(cluster.pid)
        stop(self.etcd_pid)
        self.clusters = []
        self.etcd_pid = None
        if os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def memory_bytes(self):
        """Resident memory of etcd plus every apiserver."""
        return rss_bytes(self.etcd_pid) + sum(rss_bytes(c.pid) for c in self.clusters)

    # -- internals -----------------------------------------------------------------------------

    def _start_etcd(self):
        client_port, peer_port = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        log_path = os.path.join(self.workdir, "etcd.log")
        self.etcd_pid = spawn([
            binary("etcd"),
            "--name=local", f"--data-dir={os.path.join(self.workdir, 'etcd-data')}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=local={peer_url}",
            # Test data only: skipping fsync makes every write an order of magnitude faster.
            "--unsafe-no-fsync=true", "--quota-backend-bytes=4294967296",
        ], log_path)
        self._save()
        wait_http(f"{client_url}/health", self.etcd_pid, log_path, "etcd", expect=b'"health":"true"')
        return client_url

    def _start_apiserver(self, name, etcd_url):
        directory = os.path.join(self.workdir, name)
        os.makedirs(directory, mode=0o700)
        path = lambda filename: os.path.join(directory, filename)  # noqa: E731

        ca = pki.CertificateAuthority.create(f"{name}-ca")
        serving_cert, serving_key = ca.issue(
            "kube-apiserver", hosts=["127.0.0.1", "localhost", "10.0.0.1", "kubernetes", "kubernetes.default",
                                     "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
            server=True,
        )
        admin_cert, admin_key = ca.issue("admin", organization="system:masters")
        sa_key, sa_pub = pki.service_account_keypair()
        with open(path("ca.crt"), "wb") as handle:
            handle.write(ca.cert_pem)
        with open(path("apiserver.crt"), "wb") as handle:
            handle.write(serving_cert)
        pki.write_private(path("apiserver.key"), serving_key)
        pki.write_private(path("admin.crt"), admin_cert)
        pki.write_private(path("admin.key"), admin_key)
        pki.write_private(path("sa.key"), sa_key)
        with open(path("sa.pub"), "wb") as handle:
            handle.write(sa_pub)

        port = free_port()
        server = f"https://127.0.0.1:{port}"
        log_path = path("kube-apiserver.log")
        pid = spawn([
            binary("kube-apiserver"),
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--etcd-servers={etcd_url}", f"--etcd-prefix=/clusters/{name}",
            f"--cert-dir={directory}", f"--tls-cert-file={path('apiserver.crt')}",
            f"--tls-private-key-file={path('apiserver.key')}", f"--client-ca-file={path('ca.crt')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={path('sa.pub')}",
            f"--service-account-signing-key-file={path('sa.key')}",
            "--allow-privileged=true", "--profiling=false", "--enable-priority-and-fairness=false",
        ], log_path)

        kubeconfig = path("kubeconfig")
        _write_kubeconfig(kubeconfig, [(name, server, ca.cert_pem, admin_cert, admin_key)])
        cluster = Cluster(name, server, kubeconfig, pid, path("ca.crt"))
        self.clusters.append(cluster)
        context = ssl.create_default_context(cafile=path("ca.crt"))
        context.load_cert_chain(path("admin.crt"), path("admin.key"))
        return cluster, log_path, context

    def _write_all_kubeconfig(self):
        entries = []
        for cluster in self.clusters:
            with open(cluster.kubeconfig) as handle:
                config = yaml.safe_load(handle)
            entries.append(config)
        merged = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "current-context": self.clusters[0].name,
            "clusters": [c for e in entries for c in e["clusters"]],
            "users": [u for e in entries for u in e["users"]],
            "contexts": [c for e in entries for c in e["contexts"]],
        }
        pki.write_private(self.all_kubeconfig, yaml.safe_dump(merged, sort_keys=False).encode())


def _b64(data):
    return base64.b64encode(data).decode()


def _write_kubeconfig(path, entries):
    """Write a kubeconfig whose contexts are named after the clusters, each with its admin user."""
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": entries[0][0],
        "clusters": [], "users": [], "contexts": [],
    }
    for name, server, ca_pem, cert_pem, key_pem in entries:
        config["clusters"].append({"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}})
        config["users"].append({"name": f"{name}-admin", "user": {
            "client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}})
        config["contexts"].append({"name": name, "context": {"cluster": name, "user": f"{name}-admin"}})
    pki.write_private(path, yaml.safe_dump(config, sort_keys=False).encode())

