"""Real local Kubernetes control planes: one etcd, N kube-apiservers (distinct --etcd-prefix each).

By default the envtest approach: no kubelet, scheduler or controllers, so Deployments never become
ready on their own and namespace deletion is never finalized. With workloads, a cluster also runs
kube-controller-manager and kube-scheduler (same release as the apiserver) and kwok, which simulates
Nodes and Pod lifecycles without containers (stages in kwok/stages.yaml): Deployments roll out, Pods
become Ready, Jobs complete, and Pods labelled kwok.gitops.federation/fail crash or never become ready.

Every apiserver has its own CA, serving and admin client certificates, and a ServiceAccount token
signer so RBAC tests can use real tokens.

State lives in ``<workdir>/state.json`` so ``clusters-down`` in another process can stop them.
"""

import base64
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request

import yaml

from . import pki
from .binaries import binary
from .processes import LocalEnvError, alive, free_port, log_tail, rss_bytes, spawn, stop, wait_http

SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
KWOK_STAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kwok", "stages.yaml")
# kwok manages the Nodes carrying this annotation (and only those).
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
WORKLOAD_PROCESSES = ("kube-controller-manager", "kube-scheduler", "kwok")


class Cluster:
    """One running control plane, as recorded in the state file."""

    def __init__(self, name, server, kubeconfig, pid, ca_file, workload_pids=None, nodes=()):
        self.name = name
        self.server = server
        self.kubeconfig = kubeconfig
        self.pid = pid
        self.ca_file = ca_file
        # kube-controller-manager, kube-scheduler and kwok, when the cluster runs workloads.
        self.workload_pids = dict(workload_pids or {})
        self.nodes = list(nodes)

    @property
    def workloads(self):
        return bool(self.workload_pids)

    @property
    def directory(self):
        return os.path.dirname(self.kubeconfig)

    def pids(self):
        """Process name -> pid of every process of this cluster (the apiserver first)."""
        return dict({"kube-apiserver": self.pid}, **self.workload_pids)

    def as_dict(self):
        return dict(name=self.name, server=self.server, kubeconfig=self.kubeconfig, pid=self.pid, ca_file=self.ca_file,
                    workload_pids=self.workload_pids, nodes=self.nodes)

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

    def start(self, names, timeout=180, workloads=False, nodes=1):
        """Start etcd and one apiserver per name; wait for every /readyz. Stops everything on failure.

        workloads: True (every cluster), False (none) or the names of the clusters that also run
        kube-controller-manager, kube-scheduler and kwok with ``nodes`` fake Nodes; those are ready
        once every Node is Ready and the controller-manager has created the default ServiceAccount.
        """
        if self.clusters:
            raise LocalEnvError(f"clusters already recorded in {self.state_path}; run clusters-down first")
        names = list(names)
        with_workloads = set(names) if workloads is True else set(workloads or ())
        unknown = with_workloads - set(names)
        if unknown:
            raise LocalEnvError(f"workloads asked for clusters that are not started: {', '.join(sorted(unknown))}")
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
            workload_clusters = [c for c in self.clusters if c.name in with_workloads]
            for cluster in workload_clusters:
                self._start_workloads(cluster, nodes)
            self._save()
            for cluster in workload_clusters:
                self._wait_workloads(cluster, timeout)
        except BaseException:
            self.stop()
            raise
        return self.clusters

    def stop(self):
        for cluster in self.clusters:
            for pid in cluster.workload_pids.values():
                stop(pid)
        for cluster in self.clusters:
            stop(cluster.pid)
        stop(self.etcd_pid)
        self.clusters = []
        self.etcd_pid = None
        if os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_apiserver(self, name, crash=False):
        """Stop one cluster's kube-apiserver, as an outage: etcd (its data) and its other processes keep running.

        crash: SIGKILL at once, cutting the requests in flight, instead of a graceful shutdown that drains them.
        Returns False if it was not running.
        """
        cluster = self.by_name(name)
        if not alive(cluster.pid):
            return False
        stop(cluster.pid, crash=crash)
        return True

    def start_apiserver(self, name, timeout=180):
        """Start a stopped kube-apiserver again: same arguments, port, certificates and etcd data; wait for /readyz.

        Returns False if it was running already.
        """
        cluster = self.by_name(name)
        if alive(cluster.pid):
            return False
        with open(os.path.join(cluster.directory, "kube-apiserver.argv.json")) as handle:
            argv = json.load(handle)
        log_path = os.path.join(cluster.directory, "kube-apiserver.log")
        cluster.pid = spawn(argv, log_path)
        self._save()
        context = ssl.create_default_context(cafile=cluster.ca_file)
        context.load_cert_chain(os.path.join(cluster.directory, "admin.crt"), os.path.join(cluster.directory, "admin.key"))
        wait_http(f"{cluster.server}/readyz", cluster.pid, log_path, f"kube-apiserver {cluster.name}",
                  timeout=timeout, ssl_context=context)
        return True

    def memory_bytes(self):
        """Resident memory of etcd plus every process of every cluster."""
        return rss_bytes(self.etcd_pid) + sum(rss_bytes(pid) for c in self.clusters for pid in c.pids().values())

    def memory_report(self):
        """Cluster name -> {process name: resident bytes}, plus "etcd" (shared by all clusters)."""
        report = {c.name: {name: rss_bytes(pid) for name, pid in c.pids().items()} for c in self.clusters}
        report["etcd"] = {"etcd": rss_bytes(self.etcd_pid)}
        return report

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
        pki.write_private(path("ca.key"), ca.key_pem)
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
        argv = [
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
        ]
        # Kept so start_apiserver() can bring a stopped apiserver back on the same port with the same data.
        with open(path("kube-apiserver.argv.json"), "w") as handle:
            json.dump(argv, handle)
        pid = spawn(argv, log_path)

        kubeconfig = path("kubeconfig")
        _write_kubeconfig(kubeconfig, [(name, server, ca.cert_pem, admin_cert, admin_key)])
        cluster = Cluster(name, server, kubeconfig, pid, path("ca.crt"))
        self.clusters.append(cluster)
        context = ssl.create_default_context(cafile=path("ca.crt"))
        context.load_cert_chain(path("admin.crt"), path("admin.key"))
        return cluster, log_path, context

    def _start_workloads(self, cluster, nodes):
        """kube-controller-manager, kube-scheduler and kwok for one cluster, then its fake Nodes."""
        directory = cluster.directory
        path = lambda filename: os.path.join(directory, filename)  # noqa: E731
        ca = pki.CertificateAuthority.load(path("ca.crt"), path("ca.key"))
        with open(path("ca.crt"), "rb") as handle:
            ca_pem = handle.read()
        # Each component has the identity the bootstrap RBAC policy grants its rights to; kwok acts as
        # every kubelet at once, so it gets system:masters.
        identities = {"kube-controller-manager": ("system:kube-controller-manager", None),
                      "kube-scheduler": ("system:kube-scheduler", None),
                      "kwok": ("kwok", "system:masters")}
        for component, (user, group) in identities.items():
            cert, key = ca.issue(user, organization=group)
            _write_kubeconfig(path(f"{component}.kubeconfig"), [(cluster.name, cluster.server, ca_pem, cert, key)])

        component_dir = path("components")
        os.makedirs(component_dir, mode=0o700, exist_ok=True)
        cluster.workload_pids["kube-controller-manager"] = spawn([
            binary("kube-controller-manager"),
            f"--kubeconfig={path('kube-controller-manager.kubeconfig')}",
            f"--authentication-kubeconfig={path('kube-controller-manager.kubeconfig')}",
            f"--authorization-kubeconfig={path('kube-controller-manager.kubeconfig')}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", f"--cert-dir={component_dir}",
            "--leader-elect=false", "--use-service-account-credentials=true", "--controllers=*",
            f"--service-account-private-key-file={path('sa.key')}", f"--root-ca-file={path('ca.crt')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false",
        ], path("kube-controller-manager.log"))
        cluster.workload_pids["kube-scheduler"] = spawn([
            binary("kube-scheduler"),
            f"--kubeconfig={path('kube-scheduler.kubeconfig')}",
            f"--authentication-kubeconfig={path('kube-scheduler.kubeconfig')}",
            f"--authorization-kubeconfig={path('kube-scheduler.kubeconfig')}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", f"--cert-dir={component_dir}",
            "--leader-elect=false", "--profiling=false",
        ], path("kube-scheduler.log"))
        cluster.workload_pids["kwok"] = spawn([
            binary("kwok"),
            f"--kubeconfig={path('kwok.kubeconfig')}", f"--config={KWOK_STAGES}",
            "--manage-nodes-with-annotation-selector=%s=%s" % KWOK_NODE_ANNOTATION,
            f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40",
        ], path("kwok.log"), cwd=component_dir, env=dict(os.environ, HOME=component_dir))
        for index in range(1, nodes + 1):
            name = f"kwok-node-{index}"
            _api(cluster, "POST", "/api/v1/nodes", _fake_node(name))
            cluster.nodes.append(name)

    def _wait_workloads(self, cluster, timeout):
        """Until every fake Node is Ready and the controller-manager has made the default ServiceAccount."""
        deadline = time.monotonic() + timeout
        waiting_for = "nothing yet"
        while time.monotonic() < deadline:
            for name, pid in cluster.workload_pids.items():
                if not alive(pid):
                    log = os.path.join(cluster.directory, f"{name}.log")
                    raise LocalEnvError(f"{name} of cluster {cluster.name} exited during startup; last lines of "
                                        f"{log}:\n{log_tail(log)}")
            not_ready = [n for n in cluster.nodes if not _node_ready(_api(cluster, "GET", f"/api/v1/nodes/{n}"))]
            if not_ready:
                waiting_for = f"Node {', '.join(not_ready)} Ready (kwok, see kwok.log)"
            elif _api(cluster, "GET", "/api/v1/namespaces/default/serviceaccounts/default") is None:
                waiting_for = "ServiceAccount default/default (kube-controller-manager, see kube-controller-manager.log)"
            else:
                return
            time.sleep(0.25)
        raise LocalEnvError(f"workloads of cluster {cluster.name} not ready after {timeout}s: waiting for "
                            f"{waiting_for}; logs in {cluster.directory}")

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


def _fake_node(name):
    annotation, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {annotation: value, "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok"}},
        # Not tainted: workloads from the repositories under test schedule without tolerations.
        "spec": {},
    }


def _node_ready(node):
    conditions = ((node or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _api(cluster, method, path, body=None):
    """One request to the cluster's apiserver as its admin; the decoded answer, None on 404."""
    directory = cluster.directory
    context = ssl.create_default_context(cafile=cluster.ca_file)
    context.load_cert_chain(os.path.join(directory, "admin.crt"), os.path.join(directory, "admin.key"))
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(cluster.server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise LocalEnvError(f"{method} {path} on cluster {cluster.name}: HTTP {err.code}: {err.read()[:300]!r}")


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

