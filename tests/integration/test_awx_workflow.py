"""The sync as an AWX workflow (docs/awx.md, "Sync as a workflow"), run as AWX runs jobs: ansible-runner.

Six attached clusters: the session's cluster-2 and cluster-3 plus four more real kube-apiservers started by this
module. Jobs as AWX chains them: the plan job (sync_workflow_plan.yml) publishes its set_stats artifact, which is
given to the next jobs as extra variables (AWX passes a workflow node's artifacts on the same way); three apply
jobs (sync_workflow_apply.yml), each on a different third of the attached clusters, run at the same time: two
limited with --limit on the whole inventory, one on an inventory that holds only its own hosts (as an AWX job
slice does: no management host, its connection from gitops_management); then the record job.

What was not run here: a live AWX (the workflow template, job slicing and artifact passing themselves).
"""

import copy
import glob
import itertools
import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

from kube import dynamic_client, get_or_none
from playbook import VENV_BIN, ansible_env
from test_playbooks import APP_OBJECTS, MANAGEMENT, SOURCE, Env, condition
from tools.localenv.clusters import LocalClusters
from tools.localenv.inventory import EXAMPLE_APP

ATTACHED = tuple("attached-%d" % i for i in range(1, 7))
SLICES = (ATTACHED[0:2], ATTACHED[2:4], ATTACHED[4:6])
RECONCILE_TASK = "Reconcile the sources of this cluster"
RUN_LABEL = "gitops.federation/run"
JOB_IDS = itertools.count(4000)  # AWX gives every job its own id (awx_job_id), the plan job's names the run


@pytest.fixture(scope="module")
def more_clusters(tmp_path_factory):
    """Four more bare control planes (attached-3 .. attached-6)."""
    env = LocalClusters(str(tmp_path_factory.mktemp("workflow-clusters")))
    env.start(["wf-%d" % i for i in range(1, 5)])
    yield env.clusters
    env.stop()


class Workflow:
    """The six-cluster estate, a project on it, and jobs run as AWX runs them."""

    def __init__(self, clusters, admin_clients, more_clusters, git, workdir):
        self.env = Env(clusters, admin_clients, git, workdir)
        for host, cluster in zip(ATTACHED[2:], more_clusters):
            self.env.hosts[host] = cluster
            self.env.clients[host] = dynamic_client(cluster.kubeconfig)
        self.workdir = workdir
        self.project = self.env.project("wf")
        self.namespace = self.project.namespace
        self.jobs = []  # (name, wall seconds, user+sys CPU seconds of the job's processes, peak RSS bytes)

    def inventory(self, hosts=None, host_vars=None):
        """hosts.yml of the whole inventory, or (hosts) of an AWX job slice: only those attached hosts."""
        children = {"management": {"hosts": {} if hosts else {MANAGEMENT: None}},
                    "attached": {"hosts": dict((h, None) for h in hosts or ATTACHED)}}
        files = {"hosts.yml": {"all": {"children": children}},
                 "group_vars/all.yml": {
                     "ansible_connection": "local", "gitops_projects": [self.project.spec],
                     "gitops_allow_local_urls": False,
                     # The management cluster's connection for apply jobs whose slice lacks the management host.
                     "gitops_management": {"kubeconfig": self.env.hosts[MANAGEMENT].kubeconfig}}}
        files["host_vars/%s.yml" % MANAGEMENT] = {"kubeconfig": self.env.hosts[MANAGEMENT].kubeconfig}
        for host in hosts or ATTACHED:
            files["host_vars/%s.yml" % host] = dict({"kubeconfig": self.env.hosts[host].kubeconfig,
                                                     "cluster_labels": {"env": "demo", "name": host}},
                                                    **(host_vars or {}).get(host, {}))
        return files

    def job_dir(self, ident, inventory, extravars=None):
        """A private data dir as AWX prepares one per job: project/, inventory/, env/."""
        root = os.path.join(self.workdir, ident)
        shutil.rmtree(root, ignore_errors=True)
        for sub in ("project", "inventory/group_vars", "inventory/host_vars", "env"):
            os.makedirs(os.path.join(root, sub))
        for name in ("sources", "sync", "sync_workflow_plan", "sync_workflow_apply", "sync_workflow_record"):
            with open(os.path.join(root, "project", name + ".yml"), "w") as handle:
                yaml.safe_dump([{"name": name, "import_playbook": "gitops.federation." + name}], handle)
        for path, content in inventory.items():
            with open(os.path.join(root, "inventory", path), "w") as handle:
                yaml.safe_dump(content, handle, sort_keys=False)
        settings = ansible_env()
        envvars = dict((k, settings[k]) for k in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_PYTHON_INTERPRETER"))
        envvars.update(ANSIBLE_NOCOLOR="1", GITOPS_FEDERATION_CACHE=os.path.join(root, "cache"))
        with open(os.path.join(root, "env", "envvars"), "w") as handle:
            yaml.safe_dump(envvars, handle)
        with open(os.path.join(root, "env", "extravars"), "w") as handle:
            yaml.safe_dump(dict({"awx_job_id": next(JOB_IDS)}, **(extravars or {})), handle)
        with open(os.path.join(root, "env", "settings"), "w") as handle:
            yaml.safe_dump({"job_timeout": 900, "idle_timeout": 600}, handle)
        return root

    def start(self, root, playbook, limit=None, forks=6):
        environment = dict((k, v) for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_")))
        environment["PATH"] = VENV_BIN + os.pathsep + environment["PATH"]
        argv = [os.path.join(VENV_BIN, "ansible-runner"), "run", root, "-p", playbook + ".yml", "--ident", "job",
                "--forks", str(forks)]
        if limit:
            argv += ["--limit", limit]
        # Output to a file, not a pipe: the job is waited for with wait4 (for its CPU time and peak RSS).
        with open(os.path.join(root, "output.txt"), "w") as output:
            proc = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=environment,
                                    stdin=subprocess.DEVNULL)
        return (playbook, time.monotonic(), proc, root)

    def wait(self, started):
        playbook, began, proc, root = started
        unused_pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.jobs.append((playbook, time.monotonic() - began, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024))
        with open(os.path.join(root, "output.txt")) as handle:
            return Job(root, proc.returncode, handle.read())

    def run(self, root, playbook, limit=None):
        return self.wait(self.start(root, playbook, limit))

    def lease(self, name):
        return get_or_none(self.env.management, "coordination.k8s.io/v1", "Lease", name, self.namespace)

    def run_objects(self):
        resource = self.env.management.resources.get(api_version="v1", kind="Secret")
        return [i["metadata"]["name"] for i in
                resource.get(namespace=self.namespace, label_selector=RUN_LABEL).to_dict()["items"]]


class Job:
    def __init__(self, root, returncode, output):
        self.root, self.returncode, self.output = root, returncode, output
        artifacts = os.path.join(root, "artifacts", "job")
        with open(os.path.join(artifacts, "status")) as handle:
            self.status = handle.read().strip()
        self.events = []
        for path in sorted(glob.glob(os.path.join(artifacts, "job_events", "*.json"))):
            with open(path) as handle:
                self.events.append(json.load(handle))

    @property
    def artifact_data(self):
        """What AWX stores as the job's artifacts (set_stats) and passes on to the next workflow nodes."""
        stats = [e for e in self.events if e.get("event") == "playbook_on_stats"]
        return stats[-1]["event_data"].get("artifact_data") or {}

    def hosts_of(self, task_name, events=("runner_on_ok", "runner_on_failed")):
        return sorted(e["event_data"]["host"] for e in self.events if e.get("event") in events
                      and e["event_data"].get("task", "").endswith(task_name))

    def failures(self):
        return [(e["event_data"].get("task"), e["event_data"].get("host"), e["event_data"]["res"].get("msg"))
                for e in self.events if e.get("event") == "runner_on_failed"
                and not e["event_data"].get("ignore_errors")]

    def succeeded(self):
        assert (self.returncode, self.status) == (0, "successful"), (self.failures(), self.output[-4000:])
        return self


@pytest.fixture
def workflow(clusters, admin_clients, more_clusters, git_servers, tmp_path):
    flow = Workflow(clusters, admin_clients, more_clusters, git_servers, str(tmp_path))
    flow.run(flow.job_dir("sources", flow.inventory()), "sources").succeeded()
    yield flow
    for name, wall, cpu, rss in flow.jobs:  # measurements for docs/awx.md (sizing), shown with pytest -s
        print("job %-22s wall %6.1f s  cpu %6.1f s  peak rss %4d MiB" % (name, wall, cpu, rss // 2 ** 20))


def plan(workflow):
    job = workflow.run(workflow.job_dir("plan", workflow.inventory()), "sync_workflow_plan").succeeded()
    run = job.artifact_data.get("gitops_sync_run")
    assert run and run["stored"] is True and run["projects"] == [workflow.namespace], job.artifact_data
    # The artifact is a reference: small, no plan, bundle or credential in it.
    text = json.dumps(job.artifact_data)
    assert len(text) < 400, text
    assert workflow.env.git.password not in text and "kind: " not in text
    return run


def test_plan_three_concurrent_slices_and_record_sync_every_cluster_once(workflow):
    run = plan(workflow)
    lease = workflow.lease("gitops-sync-" + SOURCE)
    assert lease["spec"]["holderIdentity"] == run["holder"]
    planned = workflow.project.source()  # nothing recorded yet
    assert not (planned.get("status") or {}).get("clusters")

    # A second run while the workflow holds the leases is refused, and touches no cluster.
    other = workflow.run(workflow.job_dir("other", workflow.inventory()), "sync")
    assert other.status == "failed", other.output[-3000:]
    assert any("being synced by another run" in str(msg) and run["holder"] in str(msg)
               for unused, unused_host, msg in other.failures()), other.failures()
    assert workflow.lease("gitops-sync-" + SOURCE)["spec"]["holderIdentity"] == run["holder"]
    for host in ATTACHED:
        assert workflow.project.deployment(host) is None

    # A new commit after the plan: the slices apply what was planned (they never fetch or render).
    planned_sha = workflow.env.git.commit(workflow.project.repo, message="after the plan",
                                          files={"base/late.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                                                   "  name: late\ndata: {a: b}\n",
                                                 "base/kustomization.yaml": open(os.path.join(
                                                     EXAMPLE_APP, "base", "kustomization.yaml")).read().replace(
                                                         "  - configmap.yaml\n", "  - configmap.yaml\n  - late.yaml\n")})
    assert planned_sha

    extravars = {"gitops_sync_run": run}
    started = [
        workflow.start(workflow.job_dir("apply-1", workflow.inventory(), extravars), "sync_workflow_apply",
                       limit=",".join(SLICES[0])),
        workflow.start(workflow.job_dir("apply-2", workflow.inventory(), extravars), "sync_workflow_apply",
                       limit=",".join(SLICES[1])),
        # As an AWX job slice: an inventory of its own hosts only, no management host.
        workflow.start(workflow.job_dir("apply-3", workflow.inventory(hosts=SLICES[2]), extravars),
                       "sync_workflow_apply"),
    ]
    applied = [workflow.wait(s).succeeded() for s in started]
    reconciled = [job.hosts_of(RECONCILE_TASK) for job in applied]
    assert reconciled == [sorted(s) for s in SLICES], reconciled  # every cluster once, each by its own slice
    # The slices took, released or re-rendered nothing: the lease is still the plan job's.
    assert workflow.lease("gitops-sync-" + SOURCE)["spec"]["holderIdentity"] == run["holder"]
    assert len([n for n in workflow.run_objects() if "-result-" in n]) == len(ATTACHED)

    workflow.run(workflow.job_dir("record", workflow.inventory(), extravars), "sync_workflow_record").succeeded()

    status = workflow.project.source()["status"]
    entries = dict((c["name"], c) for c in status["clusters"])
    assert sorted(entries) == sorted(ATTACHED), status
    revision = status["lastAppliedRevision"]
    assert planned_sha not in revision  # the planned commit, not the one pushed after the plan
    for host in ATTACHED:
        assert entries[host]["status"] == "Applied" and entries[host]["revision"] == revision, entries[host]
        for api_version, kind, name in APP_OBJECTS:
            assert workflow.project.get(host, api_version, kind, name) is not None, (kind, name, host)
        assert workflow.project.get(host, "v1", "ConfigMap", "late") is None
    assert condition(status, "Propagation")["status"] == "True", status
    secret_status = get_or_none(workflow.env.management, "types.kubefed.io/v1beta1", "FederatedSecret",
                                workflow.project.spec["secrets"][0]["name"], workflow.namespace)["status"]
    assert sorted(c["name"] for c in secret_status["clusters"]) == sorted(ATTACHED)
    # Leases released, and nothing of the run left on the management cluster.
    assert workflow.lease("gitops-sync-" + SOURCE) is None
    assert workflow.lease("gitops-secrets-sync") is None
    assert workflow.run_objects() == []


def test_a_failing_slice_shows_in_status_and_fails_the_record_job(workflow):
    run = plan(workflow)
    extravars = {"gitops_sync_run": run}
    # Slice 2: attached-4's API server does not answer. Slice 3 never runs (cancelled before it started).
    broken = {ATTACHED[3]: {"kubeconfig": workflow.env.unreachable_kubeconfig(ATTACHED[3])}}
    started = [
        workflow.start(workflow.job_dir("apply-1", workflow.inventory(), extravars), "sync_workflow_apply",
                       limit=",".join(SLICES[0])),
        workflow.start(workflow.job_dir("apply-2", workflow.inventory(host_vars=broken), extravars),
                       "sync_workflow_apply", limit=",".join(SLICES[1])),
    ]
    first, second = [workflow.wait(s) for s in started]
    first.succeeded()
    assert second.status == "failed"
    assert [host for unused, host, unused_msg in second.failures()] == [ATTACHED[3]], second.failures()

    record = workflow.run(workflow.job_dir("record", workflow.inventory(), extravars), "sync_workflow_record")
    assert record.status == "failed", record.output[-3000:]
    message = " ".join(str(msg) for unused, unused_host, msg in record.failures())
    assert "%s on %s: Unreachable" % (workflow.namespace + "/" + SOURCE, ATTACHED[3]) in message, message
    for host in SLICES[2]:
        assert "on %s: Failed: no result from this cluster" % host in message, message

    status = workflow.project.source()["status"]
    entries = dict((c["name"], c) for c in status["clusters"])
    assert sorted(entries) == sorted(ATTACHED), status
    for host in SLICES[0] + (ATTACHED[2],):  # the other slices' results are not hidden by the failing one
        assert entries[host]["status"] == "Applied", entries[host]
        assert workflow.project.deployment(host) is not None
    assert entries[ATTACHED[3]]["status"] == "Unreachable", entries[ATTACHED[3]]
    for host in SLICES[2]:
        assert entries[host]["status"] == "Failed" and "no result" in entries[host]["message"], entries[host]
        assert workflow.project.deployment(host) is None
    assert condition(status, "Propagation")["status"] == "False", status
    assert workflow.lease("gitops-sync-" + SOURCE) is None
    assert workflow.run_objects() == []

    # The next run of the workflow syncs what failed.
    run = plan(workflow)
    extravars = {"gitops_sync_run": run}
    started = [workflow.start(workflow.job_dir("again-%d" % i, workflow.inventory(), extravars),
                              "sync_workflow_apply", limit=",".join(hosts)) for i, hosts in enumerate(SLICES)]
    for job in [workflow.wait(s) for s in started]:
        job.succeeded()
    workflow.run(workflow.job_dir("record-again", workflow.inventory(), extravars), "sync_workflow_record").succeeded()
    status = workflow.project.source()["status"]
    assert all(c["status"] == "Applied" for c in status["clusters"]), status
    assert copy.deepcopy(condition(status, "Propagation"))["status"] == "True"


def test_the_awx_example_uses_only_options_the_awx_collection_documents():
    """examples/awx/workflow.yml cannot run here (no AWX): its task arguments are checked against awx.awx's docs."""
    import ansible_collections.awx.awx.plugins.modules as awx_modules

    with open(os.path.join(os.path.dirname(EXAMPLE_APP), "awx", "workflow.yml")) as handle:
        tasks = yaml.safe_load(handle)[0]["tasks"]
    checked = 0
    for task in tasks:
        (module, args), = [(k, v) for k, v in task.items() if k.startswith("awx.awx.")]
        with open(os.path.join(os.path.dirname(awx_modules.__file__), module.split(".")[-1] + ".py")) as handle:
            source = handle.read()
        documentation = yaml.safe_load(source.split('DOCUMENTATION = """', 1)[-1].split('"""', 1)[0]
                                       if 'DOCUMENTATION = """' in source
                                       else source.split("DOCUMENTATION = '''", 1)[1].split("'''", 1)[0])
        options = documentation["options"]
        known = set(options) | set(a for o in options.values() for a in o.get("aliases") or [])
        assert set(args) <= known, (module, sorted(set(args) - known))
        if "workflow_nodes" in args:
            node_options = options["workflow_nodes"]["suboptions"]
            related = set(node_options["related"]["suboptions"])
            for node in args["workflow_nodes"]:
                assert set(node) <= set(node_options), sorted(set(node) - set(node_options))
                assert set(node.get("related") or {}) <= related
        checked += 1
    assert checked == 5
