"""make bench: the sync path side by side with the engine alone, kubectl and kubernetes.core, on local clusters.

    python -m tools.bench [--objects 100,1000,5000] [--clusters 1,3,6,12] [--runs 3] [--out FILE.json]

Starts its own etcd + kube-apiservers (one management, up to max(--clusters) attached) and git server, generates
a repository of N objects (ConfigMaps, Secrets with stringData, Services, Deployments, ServiceAccounts, Roles,
RoleBindings and custom resources of a CRD the bench installs first on every cluster), and measures, interleaved
(every tool once per run, in a rotating order), for each tool: the first sync into a fresh namespace, a no-op
re-sync and a sync with one object changed. Requests are counted by the API servers themselves (the
apiserver_request_total metric, dry-runs apart). See docs/performance.md.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools.localenv.binaries import bin_dir_path, binary  # noqa: E402
from tools.localenv.clusters import LocalClusters  # noqa: E402
from tools.localenv.gitserver import GitServers  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)
HERE = os.path.dirname(os.path.abspath(__file__))
CRD_GROUP = "bench.gitops.example"
# Requests the API server makes to itself on a timer; not ours to count.
BACKGROUND_RESOURCES = frozenset(["leases", "endpoints", "endpointslices", "flowschemas",
                                  "prioritylevelconfigurations", "events"])
READ_VERBS = frozenset(["GET", "LIST", "WATCH", "CONNECT"])
METRIC = re.compile(r'^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$')


# -- the repository ------------------------------------------------------------------------------------------


def crd():
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets." + CRD_GROUP},
            "spec": {"group": CRD_GROUP, "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "properties": {"spec": {"type": "object", "properties": {
                             "size": {"type": "integer"}, "color": {"type": "string"},
                             "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}]}}


def objects(n, value="v0"):
    """N objects, a realistic mix (one tenth each kind, ConfigMaps fill the rest)."""
    kinds = ["Secret", "Service", "Deployment", "ServiceAccount", "Role", "RoleBinding", "Widget", "Secret",
             "ConfigMap", "ConfigMap"]
    out = []
    for i in range(n):
        kind, name = kinds[i % len(kinds)], "obj-%05d" % i
        labels = {"app.kubernetes.io/name": "bench", "bench/index": str(i)}
        meta = {"name": name, "labels": labels}
        if kind == "ConfigMap":
            obj = {"apiVersion": "v1", "kind": kind, "metadata": meta,
                   "data": {"LEVEL": value if i == 8 else "info", "settings.yaml": "a: 1\nb: [x, y]\n" * 4}}
        elif kind == "Secret":
            obj = {"apiVersion": "v1", "kind": kind, "metadata": meta, "type": "Opaque",
                   "stringData": {"token": "s3cret-%d" % i, "url": "https://user:pw@example.com/%d" % i}}
        elif kind == "Service":
            obj = {"apiVersion": "v1", "kind": kind, "metadata": meta,
                   # Headless: the local clusters' service IP range (a /24) would run out at a few hundred.
                   "spec": {"clusterIP": "None", "selector": {"app": name},
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
        elif kind == "Deployment":
            obj = {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": {
                "replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
                    "name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.7.0", "ports": [{"containerPort": 8080}],
                    "env": [{"name": "LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"cpu": "500m", "memory": "128Mi"}}}]}}}}
        elif kind == "ServiceAccount":
            obj = {"apiVersion": "v1", "kind": kind, "metadata": meta}
        elif kind == "Role":
            obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
                   "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}
        elif kind == "RoleBinding":
            obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "obj-%05d" % (i - 1)},
                   "subjects": [{"kind": "ServiceAccount", "name": "obj-%05d" % (i - 2)}]}
        else:
            obj = {"apiVersion": CRD_GROUP + "/v1", "kind": "Widget", "metadata": meta,
                   "spec": {"size": i, "color": "blue", "labels": {"tier": "bench"}}}
        out.append(obj)
    return out


def large_crd(group, index):
    """A CRD with a large schema (about 200 properties in nested objects), like operators ship."""
    fields = dict(("field%03d" % f, {"type": "string", "description": "Setting %d of the operator's spec. " % f * 3})
                  for f in range(40))
    sections = dict(("section%d" % s, {"type": "object", "properties": fields}) for s in range(5))
    kind = "Thing%d" % index
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "thing%ds.%s" % (index, group)},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": "thing%ds" % index, "singular": "thing%d" % index,
                               "listKind": kind + "List"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "properties": {"spec": {"type": "object", "properties": sections}}}}}]}}


def crd_heavy_objects(group, crds=10, per_kind=20, value="v0"):
    """crds large CRDs and per_kind custom resources of each kind (CRDs first, as a repository lists them)."""
    out = [large_crd(group, i) for i in range(crds)]
    for i in range(crds):
        for j in range(per_kind):
            out.append({"apiVersion": "%s/v1" % group, "kind": "Thing%d" % i,
                        "metadata": {"name": "thing-%d-%03d" % (i, j)},
                        "spec": {"section0": {"field000": value, "field001": "x" * 40},
                                 "section3": {"field039": "why"}}})
    return out


def bundle_text(n, value):
    return yaml.safe_dump_all(objects(n, value), sort_keys=False)


# -- environment ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, workdir, max_clusters, collections):
        self.workdir = workdir
        self.collections = collections
        self.clusters_env = LocalClusters(os.path.join(workdir, "clusters"))
        names = ["mgmt"] + ["attached-%d" % i for i in range(1, max_clusters + 1)]
        self.git = None
        self.clusters = dict((c.name, c) for c in self.clusters_env.start(names))
        try:
            self.git = GitServers(os.path.join(workdir, "git")).start()
            for cluster in self.clusters.values():
                self.kubectl(cluster.name, "apply", "--server-side", "-f", "-", stdin=json.dumps(crd()))
            for cluster in self.clusters.values():
                self.kubectl(cluster.name, "wait", "--for=condition=Established", "crd/widgets." + CRD_GROUP)
        except BaseException:
            self.stop()
            raise
        self.env = dict(os.environ)
        self.env.update({
            "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join([collections, os.path.join(
                os.path.dirname(os.path.dirname(os.__file__)), "site-packages")]),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_CONFIG": os.path.join(HERE, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "GITOPS_FEDERATION_CACHE": os.path.join(workdir, "cache"),
            "PATH": VENV_BIN + os.pathsep + bin_dir_path() + os.pathsep + os.environ.get("PATH", ""),
        })
        self.counter = 0

    def stop(self):
        if self.git is not None:
            self.git.stop()
        self.clusters_env.stop()

    def kubectl(self, host, *args, stdin=None):
        proc = subprocess.run([binary("kubectl"), "--kubeconfig", self.clusters[host].kubeconfig] + list(args),
                              input=stdin, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError("kubectl %s: %s" % (" ".join(args), proc.stderr))
        return proc.stdout

    def name(self, prefix):
        self.counter += 1
        return "%s-%d-%d" % (prefix, os.getpid() % 1000, self.counter)

    # -- API server metrics --------------------------------------------------------------------------------

    def snapshot(self, hosts):
        counts = {}
        for host in hosts:
            counter = Counter()
            for line in self.kubectl(host, "get", "--raw", "/metrics").splitlines():
                match = METRIC.match(line)
                if not match:
                    continue
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
                if labels.get("resource") in BACKGROUND_RESOURCES:
                    continue
                dry = bool(labels.get("dry_run"))
                verb = labels.get("verb")
                counter["dry_runs" if dry else "requests"] += float(match.group(2))
                if not dry and verb not in READ_VERBS:
                    counter["writes"] += float(match.group(2))
            counts[host] = counter
        return counts

    @staticmethod
    def delta(before, after):
        out = {}
        for host in after:
            d = dict((k, int(after[host][k] - before[host].get(k, 0))) for k in ("requests", "writes", "dry_runs"))
            d["requests"] -= 1  # the /metrics GET of the first snapshot
            out[host] = d
        return out

    # -- running -------------------------------------------------------------------------------------------

    def run(self, argv, env=None):
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env or self.env, cwd=self.workdir)
        elapsed = time.monotonic() - started
        if proc.returncode:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(argv[:3]), proc.returncode,
                                                      (proc.stdout + proc.stderr)[-3000:]))
        return elapsed, proc.stdout

    def playbook(self, path, inventory, extra=None, forks=5, env=None):
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), path, "-i", inventory, "-f", str(forks)]
        if extra:
            argv += ["-e", json.dumps(extra)]
        return self.run(argv, env=env)

    def inventory(self, attached, projects=()):
        hosts = dict((h, {"kubeconfig": self.clusters[h].kubeconfig, "cluster_labels": {"env": "bench"}})
                     for h in attached)
        inv = {"all": {"vars": {"ansible_connection": "local", "gitops_projects": list(projects)},
                       "children": {"management": {"hosts": {"mgmt": {"kubeconfig": self.clusters["mgmt"].kubeconfig}}},
                                    "attached": {"hosts": hosts}}}}
        path = os.path.join(self.workdir, self.name("inventory") + ".yml")
        with open(path, "w") as handle:
            yaml.safe_dump(inv, handle)
        return path


# -- the tools measured ------------------------------------------------------------------------------------------


class Tool:
    """One way to sync; first(ns), noop(ns), change(ns, value) each return seconds."""

    def __init__(self, bench, n, attached, sources=1):
        self.bench, self.n, self.attached, self.sources = bench, n, attached, sources
        self.forks = max(5, len(attached) + 1)
        self.bundle = os.path.join(bench.workdir, bench.name("bundle") + ".yaml")

    def write_bundle(self, value):
        with open(self.bundle, "w") as handle:
            handle.write(self.bundle_text(value))

    def bundle_text(self, value):
        return bundle_text(self.n, value)

    def prepare(self, ns):
        self.write_bundle("v0")

    def hosts(self):
        return list(self.attached)


class SyncPlaybook(Tool):
    name = "sync.yml"

    def prepare(self, ns):
        b = self.bench
        self.repo = b.name("repo")
        b.git.create_repo(self.repo, files={"all.yaml": bundle_text(self.n, "v0")})
        project = {"namespace": ns, "secrets": [{"name": "git", "username": b.git.username, "password": b.git.password,
                                                 "cluster_selector": {"matchLabels": {"env": "bench"}}}],
                   "sources": [{"name": "app-%d" % i, "url": b.git.http_url(self.repo), "ref": {"branch": "main"},
                                "secret": "git", "path": ".", "cluster_selector": {"matchLabels": {"env": "bench"}},
                                "target_namespace": ns if self.sources == 1 else "%s-%d" % (ns, i)}
                               for i in range(self.sources)]}
        if self.sources == 1:
            del project["sources"][0]["target_namespace"]
        self.inv = b.inventory(self.attached, [project])
        b.playbook("gitops.federation.sources", self.inv)

    env = None

    def sync(self):
        return self.bench.playbook("gitops.federation.sync", self.inv, forks=self.forks, env=self.env)[0]

    first = noop = lambda self, ns: self.sync()

    def change(self, ns, value):
        self.bench.git.commit(self.repo, files={"all.yaml": bundle_text(self.n, value)})
        return self.sync()


class SyncPlaybookProcesses(SyncPlaybook):
    """sync.yml with every module in its own process (GITOPS_FEDERATION_IN_WORKER=0): the path before 0.3."""

    name = "sync.yml (module processes)"

    def prepare(self, ns):
        super(SyncPlaybookProcesses, self).prepare(ns)
        self.env = dict(self.bench.env, GITOPS_FEDERATION_IN_WORKER="0")


class EnginePlaybook(Tool):
    name = "cluster_sync"
    PLAY = os.path.join(HERE, "engine.yml")

    def sync(self, ns):
        inv = getattr(self, "inv", None) or self.bench.inventory(self.attached)
        self.inv = inv
        extra = {"bench_namespace": ns, "bench_bundle": self.bundle, "bench_sources": self.sources}
        return self.bench.playbook(self.PLAY, inv, extra, forks=self.forks)[0]

    first = noop = sync

    def change(self, ns, value):
        self.write_bundle(value)
        return self.sync(ns)


class KubernetesCore(EnginePlaybook):
    name = "kubernetes.core.k8s"
    PLAY = os.path.join(HERE, "k8s.yml")

    def prepare(self, ns):
        super(KubernetesCore, self).prepare(ns)
        for host in self.attached:
            self.bench.kubectl(host, "create", "namespace", ns)


class Kubectl(Tool):
    name = "kubectl (parallel)"
    parallel = True

    def prepare(self, ns):
        super(Kubectl, self).prepare(ns)
        for host in self.attached:
            self.bench.kubectl(host, "create", "namespace", ns)

    def sync(self, ns):
        b = self.bench
        argv = lambda host: [binary("kubectl"), "--kubeconfig", b.clusters[host].kubeconfig, "apply", "--server-side",
                             "--force-conflicts", "--field-manager=bench", "-n", ns, "-f", self.bundle]
        started = time.monotonic()
        if self.parallel:
            procs = [subprocess.Popen(argv(h), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for h in self.attached]
            codes = [p.wait() for p in procs]
            errors = [p.stderr.read() for p in procs]
        else:
            codes, errors = [], []
            for h in self.attached:
                proc = subprocess.run(argv(h), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                codes.append(proc.returncode)
                errors.append(proc.stderr)
        if any(codes):
            raise RuntimeError("kubectl apply failed: %s" % errors)
        return time.monotonic() - started

    first = noop = sync

    def change(self, ns, value):
        self.write_bundle(value)
        return self.sync(ns)


class KubectlSequential(Kubectl):
    name = "kubectl (sequential)"
    parallel = False


class CRDHeavy:
    """The CRD-heavy repository (n = CRDs): CRDs of a group new to the clusters, and custom resources."""

    per_kind = 20

    def bundle_text(self, value):
        if not getattr(self, "group", None):
            self.group = "%s.crdbench.gitops.example" % self.bench.name("g")
        return yaml.safe_dump_all(crd_heavy_objects(self.group, self.n, self.per_kind, value), sort_keys=False)


class EngineCRDs(CRDHeavy, EnginePlaybook):
    name = "cluster_sync (CRDs)"

    def sync(self, ns):
        inv = getattr(self, "inv", None) or self.bench.inventory(self.attached)
        self.inv = inv
        extra = {"bench_namespace": ns, "bench_bundle": self.bundle, "bench_sources": 1,
                 "bench_allow_cluster_scoped": True}
        return self.bench.playbook(self.PLAY, inv, extra, forks=self.forks)[0]

    first = noop = sync


class KubectlTwoPasses(CRDHeavy, Kubectl):
    """What a kubectl user does: apply the CRDs, wait until they are Established, apply the rest."""

    name = "kubectl (CRDs, 2 passes)"

    def sync(self, ns):
        b = self.bench
        docs = list(yaml.safe_load_all(open(self.bundle)))
        crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
        crd_file, rest_file = self.bundle + ".crds.yaml", self.bundle + ".rest.yaml"
        with open(crd_file, "w") as handle:
            yaml.safe_dump_all(crds, handle)
        with open(rest_file, "w") as handle:
            yaml.safe_dump_all([d for d in docs if d["kind"] != "CustomResourceDefinition"], handle)
        kubectl = binary("kubectl")

        def script(host):
            base = "%s --kubeconfig %s" % (kubectl, b.clusters[host].kubeconfig)
            return " && ".join([
                "%s apply --server-side --force-conflicts --field-manager=bench -f %s" % (base, crd_file),
                "%s wait --for=condition=Established --timeout=120s %s" % (
                    base, " ".join("crd/" + c["metadata"]["name"] for c in crds)),
                "%s apply --server-side --force-conflicts --field-manager=bench -n %s -f %s" % (base, ns, rest_file)])

        started = time.monotonic()
        procs = [subprocess.Popen(["bash", "-c", script(h)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for h in self.attached]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise RuntimeError("kubectl failed: %s" % [p.stderr.read() for p in procs])
        return time.monotonic() - started

    first = noop = sync


TOOLS = {"sync": SyncPlaybook, "sync-processes": SyncPlaybookProcesses, "engine": EnginePlaybook, "kubectl": Kubectl, "kubectl-seq": KubectlSequential,
         "k8s": KubernetesCore, "engine-crds": EngineCRDs, "kubectl-crds": KubectlTwoPasses}


def cpu_seconds(bench):
    """(CPU seconds of every finished child of the bench, and its descendants they waited for: the tools;
    CPU seconds of the etcd and every kube-apiserver so far: the servers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = bench.clusters_env
    ticks = 0
    for pid in [env.etcd_pid] + [c.pid for c in env.clusters]:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError, TypeError):
            pass
    return children.ru_utime + children.ru_stime, ticks / float(os.sysconf("SC_CLK_TCK"))


def measure_case(bench, n, attached, tools, runs, sources=1, steps=("first", "noop", "change")):
    """Interleaved runs of every tool; returns {tool: {step: {times: [...], requests: {...}, cpu: [...]}}}.

    cpu: [tool CPU seconds, API servers + etcd CPU seconds] of each run: on a machine of 2 cores, where the tool
    and the servers share the CPUs, it tells which side a wall time is made of."""
    results = dict((t, dict((s, {"seconds": [], "requests": [], "cpu": []}) for s in steps)) for t in tools)
    for run in range(runs):
        order = tools[run % len(tools):] + tools[:run % len(tools)]
        for key in order:
            tool = TOOLS[key](bench, n, attached, sources)
            ns = bench.name("b-%s" % key.replace(".", ""))
            tool.prepare(ns)
            for step in steps:
                before = bench.snapshot(attached)
                cpu_before = cpu_seconds(bench)
                if step == "change":
                    seconds = tool.change(ns, "run-%d" % run)
                else:
                    seconds = getattr(tool, step)(ns)
                cpu_after = cpu_seconds(bench)
                after = bench.snapshot(attached)
                cpu = [round(b - a, 2) for a, b in zip(cpu_before, cpu_after)]
                results[key][step]["seconds"].append(round(seconds, 3))
                results[key][step]["requests"].append(bench.delta(before, after))
                results[key][step]["cpu"].append(cpu)
                print("  N=%-5d M=%-2d S=%d run %d %-20s %-6s %7.2fs  %s  cpu tool %.1fs servers %.1fs" % (
                    n, len(attached), sources, run + 1, TOOLS[key].name, step, seconds,
                    summarize_requests(results[key][step]["requests"][-1], n), cpu[0], cpu[1]), flush=True)
    return dict((TOOLS[k].name, dict((s, summarize(v, n)) for s, v in steps_.items())) for k, steps_ in results.items())


def summarize_requests(by_host, n):
    if not by_host:
        return ""
    per = [v for v in by_host.values()]
    req = max(p["requests"] for p in per)
    return "req/cluster %d (%.2f/object) writes %d dry-runs %d" % (
        req, req / float(n), max(p["writes"] for p in per), max(p["dry_runs"] for p in per))


def summarize(values, n):
    seconds = values["seconds"]
    last = values["requests"][-1] if values["requests"] else {}
    per = list(last.values())
    out = dict(seconds=seconds, min=min(seconds), median=statistics.median(seconds))
    if values.get("cpu"):
        out.update(cpu_tool_median=statistics.median(c[0] for c in values["cpu"]),
                   cpu_servers_median=statistics.median(c[1] for c in values["cpu"]))
    if per:
        requests = max(p["requests"] for p in per)
        out.update(requests_per_cluster=requests, requests_per_object=round(requests / float(n), 3),
                   writes_per_cluster=max(p["writes"] for p in per), dry_runs_per_cluster=max(p["dry_runs"] for p in per))
    return out


def module_rss(bench, n):
    """Peak RSS (MiB) of the cluster_sync and cluster_reconcile module processes, first sync of N objects."""
    out = {}
    tool = Tool(bench, n, ["attached-1"])
    tool.write_bundle("v0")
    kubeconfig = bench.clusters["attached-1"].kubeconfig
    modules = os.path.join(bench.collections, "ansible_collections", "gitops", "federation", "plugins", "modules")
    for module in ("cluster_sync", "cluster_reconcile"):
        ns = bench.name("rss")
        if module == "cluster_sync":
            args = dict(kubeconfig=kubeconfig, owner="bench/" + ns, namespace=ns, src=tool.bundle,
                        create_namespace=True, force_conflicts=True)
        else:
            key = ns + "/app"
            # No holder: no Lease to keep (sync_plan takes them; this measures the module alone).
            plan = {"secret_projects": [], "sources": [{
                "key": key, "namespace": ns, "name": "app", "owner": "gitops/%s/app" % ns, "ready": True,
                "unplaced": [], "target_namespace": ns,
                "clusters": {"attached-1": {"namespace": ns, "render": 0, "prune": True, "overrides": [],
                                            "bundle": tool.bundle, "revision": "main@sha1:" + "0" * 40}}}]}
            args = dict(kubeconfig=kubeconfig, plan=plan, cluster="attached-1", management=dict(kubeconfig=kubeconfig))
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        env = dict(bench.env, PYTHONPATH=bench.collections)
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, os.path.join(modules, module + ".py"), handle.name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        stdout = proc.stdout.read()
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = status
        os.unlink(handle.name)
        result = json.loads(stdout[stdout.find(b"{"):]) if b"{" in stdout else {"failed": True, "msg": stderr[-2000:]}
        if result.get("failed"):
            raise RuntimeError("%s: %s" % (module, result.get("msg")))
        out[module] = dict(peak_rss_mib=round(usage.ru_maxrss / 1024.0, 1), seconds=round(time.monotonic() - started, 2))
        print("  RSS N=%d %s: %.0f MiB" % (n, module, usage.ru_maxrss / 1024.0), flush=True)
    return out


def profile_noop(bench, n, m):
    """Where a no-op sync.yml spends its time: Ansible's profile_tasks (per task, summed over hosts' waits)."""
    tool = SyncPlaybook(bench, n, ["attached-%d" % i for i in range(1, m + 1)])
    ns = bench.name("profile")
    tool.prepare(ns)
    tool.sync()
    env = dict(bench.env, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="40",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    seconds, stdout = bench.playbook("gitops.federation.sync", tool.inv, forks=tool.forks, env=env)
    tasks = []
    for line in stdout[stdout.rfind("=" * 20):].splitlines():
        match = re.match(r"^(.*?) -+ (\d+\.\d+)s$", line.strip())
        if match:
            tasks.append([match.group(1).strip(), float(match.group(2))])
    print("  profile of a no-op sync.yml (N=%d, M=%d): %.2fs" % (n, m, seconds), flush=True)
    for name, took in tasks:
        print("    %6.2fs  %s" % (took, name), flush=True)
    return dict(objects=n, clusters=m, seconds=round(seconds, 2), tasks=tasks)


def versions():
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return {"python": platform.python_version(), "ansible-core": out([os.path.join(VENV_BIN, "ansible"), "--version"]),
            "kubectl": out([binary("kubectl"), "version", "--client"]),
            "kube-apiserver": out([binary("kube-apiserver"), "--version"]),
            "git": out(["git", "--version"])}


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2.0 ** 30, 1),
            "load_average_at_start": os.getloadavg()}


def ints(text):
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", default="100,1000,5000", help="T(N): object counts, on one cluster, every tool")
    parser.add_argument("--clusters", default="1,3,6,12",
                        help="T(M): attached cluster counts, podinfo-sized source, sync.yml first sync and no-op")
    parser.add_argument("--compare", default="1000x3", help="NxM of the side-by-side comparison of every tool")
    parser.add_argument("--small", type=int, default=20, help="objects of the podinfo-sized source")
    parser.add_argument("--multi", default="3x6", help="SOURCESxCLUSTERS no-op case (sync.yml vs engine)")
    parser.add_argument("--crds", default="10x3",
                        help="CRDSxCLUSTERS of the CRD-heavy first sync (20 custom resources per CRD; 0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rss", type=int, default=5000, help="objects for the peak RSS measure (0: skip)")
    parser.add_argument("--profile", default="20x2", help="NxM of the profiled no-op sync.yml (0: skip)")
    parser.add_argument("--compare-tools", default=None, help="tools of the side-by-side case (default: --tools)")
    parser.add_argument("--tools", default="sync,engine,kubectl,kubectl-seq,k8s")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "performance.json"))
    parser.add_argument("--collections", default=os.path.join(ROOT, ".build", "collections"),
                        help="collections directory holding the gitops.federation under test")
    args = parser.parse_args(argv)
    # A TERM (timeout, CI cancel) still stops the clusters and servers (the finally below).
    signal.signal(signal.SIGTERM, lambda *unused: sys.exit(143))
    tools = [t for t in args.tools.split(",") if t]
    compare_tools = [t for t in (args.compare_tools or args.tools).split(",") if t]
    compare_n, compare_m = (ints(args.compare.replace("x", ",")) + [0, 0])[:2]
    multi_s, multi_m = (ints(args.multi.replace("x", ",")) + [0, 0])[:2]
    profile_n, profile_m = (ints(args.profile.replace("x", ",")) + [0, 0])[:2]
    crds_n, crds_m = (ints(args.crds.replace("x", ",")) + [0, 0])[:2]
    max_clusters = max(ints(args.clusters) + [compare_m, multi_m, profile_m, crds_m, 1])
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "machine": machine(), "versions": versions(), "runs": args.runs, "cases": []}
    workdir = tempfile.mkdtemp(prefix="gitops-bench-")
    started = time.monotonic()
    attached = lambda m: ["attached-%d" % i for i in range(1, m + 1)]

    def save():
        # Written after every case, so a run stopped early keeps what it measured.
        report["wall_seconds"] = round(time.monotonic() - started, 1)
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=1, sort_keys=True)

    # No-op scaling cases record the first sync (their set-up) and the no-op; the side-by-side case all three.
    scale_steps = ("first", "noop")
    try:
        bench = None
        bench = Bench(workdir, max_clusters, os.path.abspath(args.collections))
        if profile_n:
            report["profile"] = profile_noop(bench, profile_n, profile_m)
            save()
        if compare_n:
            print("side by side: N=%d M=%d" % (compare_n, compare_m), flush=True)
            report["cases"].append(dict(case="compare", objects=compare_n, clusters=compare_m, sources=1,
                                        tools=measure_case(bench, compare_n, attached(compare_m), compare_tools,
                                                           args.runs)))
            save()
        if crds_n:
            print("CRD-heavy: %d CRDs x %d custom resources, M=%d" % (crds_n, CRDHeavy.per_kind, crds_m), flush=True)
            report["cases"].append(dict(case="CRD-heavy", objects=crds_n * (CRDHeavy.per_kind + 1), crds=crds_n,
                                        clusters=crds_m, sources=1, tools=measure_case(
                                            bench, crds_n, attached(crds_m), ["engine-crds", "kubectl-crds"],
                                            args.runs, steps=("first", "noop"))))
            save()
        for m in ints(args.clusters):
            print("T(M): N=%d M=%d" % (args.small, m), flush=True)
            # sync.yml with module processes beside it: the in-worker gain, side by side in the same run.
            chosen = [t for t in tools if t in ("sync",)] + (["sync-processes"] if "sync" in tools else [])
            report["cases"].append(dict(case="T(M)", objects=args.small, clusters=m, sources=1, tools=measure_case(
                bench, args.small, attached(m), chosen, args.runs, steps=scale_steps)))
            save()
        if multi_s:
            print("multi: S=%d M=%d" % (multi_s, multi_m), flush=True)
            chosen = [t for t in tools if t in ("sync", "engine")] + (["sync-processes"] if "sync" in tools else [])
            report["cases"].append(dict(case="sources x clusters", objects=args.small, clusters=multi_m,
                                        sources=multi_s, tools=measure_case(bench, args.small, attached(multi_m),
                                                                            chosen, args.runs, sources=multi_s,
                                                                            steps=scale_steps)))
            save()
        for n in ints(args.objects):
            print("T(N): N=%d M=1" % n, flush=True)
            report["cases"].append(dict(case="T(N)", objects=n, clusters=1, sources=1,
                                        tools=measure_case(bench, n, attached(1), tools, args.runs)))
            save()
        if args.rss:
            report["rss"] = dict(objects=args.rss, modules=module_rss(bench, args.rss))
            save()
    finally:
        if bench is not None:
            bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report["workdir"] = workdir
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    report["bench_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=1, sort_keys=True)
    print("wrote %s (%.0fs)" % (args.out, report["wall_seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
