"""The playbooks as users run them, against real kube-apiservers and a real git server.

cluster-1 is the management cluster (inventory host ``mgmt``); cluster-2 and cluster-3 are the attached clusters
``attached-1`` and ``attached-2``. Every test declares its own project namespace and its own git repository
(examples/demo-app: a kustomize base with one overlay per attached cluster), so tests are independent although
the clusters are shared by the session. Assertions read the clusters with the kubernetes client and kubectl,
never with the code under test.
"""

import datetime
import glob
import json
import os
import re
import socket
import subprocess
import time

import pytest
import yaml

from kube import get_or_none, service_account_kubeconfig, unique_name
from playbook import ROOT, VENV_BIN, ansible_env, run_playbook
from tools.localenv.binaries import binary
from tools.localenv.inventory import EXAMPLE_APP, demo_project
from tools.localenv.processes import free_port

PLAYBOOKS = os.path.join(ROOT, "playbooks")
MANAGEMENT = "mgmt"
ATTACHED = ("attached-1", "attached-2")
SOURCE = "demo-app"
SECRET = "demo-git"
APP_OBJECTS = (("apps/v1", "Deployment", "demo-app"), ("v1", "Service", "demo-app"),
               ("v1", "ConfigMap", "demo-app-settings"))
SECRET_OBJECT = ("v1", "Secret", SECRET)
FK = ("types.kubefed.io/v1beta1", "FederatedKustomization")
FGR = ("types.kubefed.io/v1beta1", "FederatedGitRepository")
OWNER_LABEL = "gitops.federation/owner"
TERMINATING = "gitops.federation/terminating"
RECAP_LINE = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


# -- environment --------------------------------------------------------------------------------------------


class Env:
    """The three clusters under their inventory names, the git server, and helpers to run the playbooks."""

    def __init__(self, clusters, admin_clients, git, workdir):
        self.hosts = {MANAGEMENT: clusters[0], ATTACHED[0]: clusters[1], ATTACHED[1]: clusters[2]}
        self.clients = dict((host, admin_clients[cluster.name]) for host, cluster in self.hosts.items())
        self.git = git
        self.workdir = workdir

    @property
    def management(self):
        return self.clients[MANAGEMENT]

    def project(self, prefix="pb"):
        """A fresh project: its own namespace and its own git repository holding the demo app."""
        namespace, repo = unique_name(prefix), unique_name("repo")
        self.git.create_repo(repo, source_dir=EXAMPLE_APP)
        spec = demo_project(self.git, repo=repo, namespace=namespace, source=SOURCE, secret=SECRET)
        return Project(self, namespace, repo, spec)

    def inventory(self, projects, host_vars=None, name=None):
        """hosts.yml: group management (mgmt) and group attached (attached-1, attached-2, labelled env=demo).

        host_vars maps a host name to vars replacing/adding to its own (a host that is not one of the three
        clusters is added to group attached).
        """
        hosts = {}
        for host, cluster in self.hosts.items():
            hosts[host] = {"kubeconfig": cluster.kubeconfig}
            if host != MANAGEMENT:
                hosts[host]["cluster_labels"] = {"env": "demo", "name": host}
        for host, vars_ in (host_vars or {}).items():
            hosts[host] = dict(hosts.get(host) or {"cluster_labels": {"env": "demo", "name": host}}, **vars_)
        inventory = {"all": {
            "vars": {"ansible_connection": "local", "gitops_projects": projects},
            "children": {
                "management": {"hosts": {MANAGEMENT: hosts.pop(MANAGEMENT)}},
                "attached": {"hosts": hosts},
            },
        }}
        path = os.path.join(self.workdir, (name or unique_name("inventory")) + ".yml")
        with open(path, "w") as handle:
            yaml.safe_dump(inventory, handle, sort_keys=False)
        return path

    def unreachable_kubeconfig(self, host):
        """A copy of host's kubeconfig whose server is a closed local port."""
        with open(self.hosts[host].kubeconfig) as handle:
            config = yaml.safe_load(handle)
        for entry in config["clusters"]:
            entry["cluster"]["server"] = "https://127.0.0.1:%d" % free_port()
        path = os.path.join(self.workdir, unique_name("closed-port") + ".kubeconfig")
        with open(path, "w") as handle:
            yaml.safe_dump(config, handle)
        return path

    def kubectl(self, host, *args, check=True):
        proc = subprocess.run([binary("kubectl"), "--kubeconfig", self.hosts[host].kubeconfig, *args],
                              capture_output=True, text=True)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc


class Project:
    def __init__(self, env, namespace, repo, spec):
        self.env = env
        self.namespace = namespace
        self.repo = repo
        self.spec = spec
        self.owner = "gitops/%s/%s" % (namespace, SOURCE)

    def inventory(self, **kwargs):
        return self.env.inventory([self.spec], **kwargs)

    def get(self, host, api_version, kind, name):
        return get_or_none(self.env.clients[host], api_version, kind, name, self.namespace)

    def source(self):
        return self.get(MANAGEMENT, *FK, SOURCE)

    def deployment(self, host):
        return self.get(host, "apps/v1", "Deployment", "demo-app")

    def owned(self, host, api_version="v1", kind="ConfigMap"):
        """Names of the objects of one kind in the project namespace that carry any gitops owner label."""
        resource = self.env.clients[host].resources.get(api_version=api_version, kind=kind)
        items = resource.get(namespace=self.namespace, label_selector=OWNER_LABEL).to_dict()["items"]
        return sorted(item["metadata"]["name"] for item in items)

    def inventory_configmap(self, host):
        """The inventory the engine keeps on a cluster for this source (label gitops.federation/inventory)."""
        resource = self.env.clients[host].resources.get(api_version="v1", kind="ConfigMap")
        items = resource.get(namespace=self.namespace, label_selector="gitops.federation/inventory=true").to_dict()
        found = [i for i in items["items"] if i["data"].get("owner") == self.owner]
        return found[0] if found else None

    def resource_versions(self, host):
        versions = {}
        for api_version, kind, name in APP_OBJECTS + (SECRET_OBJECT,):
            live = self.get(host, api_version, kind, name)
            versions[(kind, name)] = live and live["metadata"]["resourceVersion"]
        return versions

    def events(self):
        """Messages of the Events on the source's federated objects, oldest first."""
        items = self.env.management.resources.get(api_version="v1", kind="Event").get(
            namespace=self.namespace).to_dict()["items"]
        ours = [e for e in items if e["involvedObject"]["kind"] in (FK[1], FGR[1])]
        return [e["message"] for e in sorted(ours, key=lambda e: (e.get("lastTimestamp") or "", e["metadata"]["name"]))]

    def status_yaml(self):
        """The status as the seed shows it: kubectl get federatedkustomization -n <project> <source> -oyaml."""
        proc = self.env.kubectl(MANAGEMENT, "get", "federatedkustomization", "-n", self.namespace, SOURCE,
                                "-o", "yaml")
        return yaml.safe_load(proc.stdout)


def playbook(name, inventory, extra_vars=None, callback="ansible.posix.json", **kwargs):
    return run_playbook(os.path.join(PLAYBOOKS, name + ".yml"), inventory=inventory, extra_vars=extra_vars,
                        callback=callback, **kwargs)


def ok(run):
    assert run.returncode == 0, run.output[-6000:]
    return run


def failed(run):
    assert run.returncode != 0, run.output[-6000:]
    return run


def recap(run):
    """{host: (ok, changed, unreachable, failed)} from the PLAY RECAP of the default callback."""
    section = run.stdout[run.stdout.rindex("PLAY RECAP"):]
    return dict((m.group(1), tuple(int(m.group(i)) for i in range(2, 6))) for m in RECAP_LINE.finditer(section))


def task(result, name):
    """Whether a result is of the task named name (roles prefix their task names with the role)."""
    return result["_task"] == name or result["_task"].endswith(" : " + name)


def failure_messages(run):
    return [str(r.get("msg")) for r in run.results if r.get("failed")]


def failure_details(run):
    """(task, host, message, item messages) of every failed task: what an assertion shows when a run goes wrong."""
    return [(r["_task"], r["_host"], r.get("msg"), [i.get("msg") for i in r.get("results") or [] if i.get("failed")])
            for r in run.results if r.get("failed")] or run.output[-4000:]


def condition(status, ctype):
    found = [c for c in status.get("conditions") or [] if c["type"] == ctype]
    assert found, status
    return found[0]


def clusters_by_name(status):
    return dict((c["name"], c) for c in status.get("clusters") or [])


def status_rows(run):
    """The status table printed by status.yml, as lists of cells (header first)."""
    tables = [r["msg"] for r in run.results if task(r, "Per-source, per-cluster status")]
    assert tables, run.output[-4000:]
    return tables[0]


def micro_time(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def env(clusters, admin_clients, git_servers, tmp_path_factory):
    return Env(clusters, admin_clients, git_servers, str(tmp_path_factory.mktemp("playbooks")))


@pytest.fixture
def synced(env):
    """A project declared with sources.yml and synced once to both attached clusters."""
    project = env.project()
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))
    return project, inventory


# -- 1. sources + sync ----------------------------------------------------------------------------------------


def test_sources_and_sync_apply_per_cluster_overlays_and_status(env):
    project = env.project()
    inventory = project.inventory()
    ok(playbook("sources", inventory))

    source = project.source()
    assert source is not None and not source["spec"]["template"]["spec"].get("suspend")
    git_repository = get_or_none(env.management, *FGR, SOURCE, project.namespace)
    assert git_repository["spec"]["template"]["spec"]["url"] == env.git.http_url(project.repo)
    for host in ATTACHED:  # declaring touches no attached cluster
        assert get_or_none(env.clients[host], "v1", "Namespace", project.namespace) is None

    run = ok(playbook("sync", inventory))
    # attached-1 gets overlays/attached-1 (1 replica), attached-2 overlays/attached-2 through its override.
    for host, replicas in ((ATTACHED[0], 1), (ATTACHED[1], 2)):
        deployment = project.deployment(host)
        assert deployment is not None, host
        assert deployment["spec"]["replicas"] == replicas, host
        assert deployment["metadata"]["labels"][OWNER_LABEL]
        assert project.get(host, "v1", "Service", "demo-app") is not None
        settings = project.get(host, "v1", "ConfigMap", "demo-app-settings")
        assert settings["data"]["GREETING"] == "hello from an attached cluster"  # postBuild substitution
        secret = project.get(host, "v1", "Secret", SECRET)
        assert secret is not None, "the federated secret was not propagated to %s" % host
        assert secret["data"]["username"]
    # The sync reports what it changed on each cluster.
    synced_tasks = [r for r in run.results if task(r, "Reconcile the sources of this cluster")]
    assert sorted(r["_host"] for r in synced_tasks) == sorted(ATTACHED)
    assert all(r["changed"] for r in synced_tasks), synced_tasks

    fk = project.status_yaml()
    status = fk["status"]
    assert status["observedGeneration"] == fk["metadata"]["generation"]
    revision = status["lastAppliedRevision"]
    assert re.match(r"^main@sha1:[0-9a-f]{40}$", revision), revision
    entries = clusters_by_name(status)
    assert sorted(entries) == sorted(ATTACHED)
    for host in ATTACHED:
        assert entries[host]["status"] == "Applied"
        assert entries[host]["revision"] == revision
        assert entries[host]["lastAppliedTime"]
    propagation = condition(status, "Propagation")
    assert propagation["status"] == "True", propagation
    assert propagation["observedGeneration"] == fk["metadata"]["generation"]
    assert condition(status, "Ready")["status"] == "True"
    secret_status = get_or_none(env.management, "types.kubefed.io/v1beta1", "FederatedSecret", SECRET,
                                project.namespace)["status"]
    assert sorted(clusters_by_name(secret_status)) == sorted(ATTACHED)
    assert condition(secret_status, "Propagation")["status"] == "True"
    messages = project.events()
    for host in ATTACHED:  # the audit trail: what revision reached which cluster
        assert any(revision in m and host in m for m in messages), messages

    before = dict((host, project.resource_versions(host)) for host in ATTACHED)
    generation = fk["metadata"]["resourceVersion"]
    second = ok(playbook("sync", inventory, callback="default"))
    counts = recap(second)
    assert sorted(counts) == sorted((MANAGEMENT,) + ATTACHED), second.stdout[-3000:]
    for host, (unused_ok, changed, unreachable, failures) in counts.items():
        assert (changed, unreachable, failures) == (0, 0, 0), "%s: %s" % (host, second.stdout[-3000:])
    for host in ATTACHED:
        assert project.resource_versions(host) == before[host], "a no-op sync wrote to %s" % host
    assert project.source()["metadata"]["resourceVersion"] == generation, "a no-op sync rewrote the status"


# -- 2. unattended, through ansible-runner (as AWX / Automation Platform runs it) ----------------------------


def test_sync_runs_unattended_under_ansible_runner(env, tmp_path):
    project = env.project()
    inventory = project.inventory()
    ok(playbook("sources", inventory))

    # A private data dir as AWX prepares one: project/ with the playbook, inventory/, env/envvars.
    private = tmp_path / "runner"
    (private / "project").mkdir(parents=True)
    (private / "inventory").mkdir()
    (private / "env").mkdir()
    (private / "project" / "sync.yml").write_text(yaml.safe_dump([{"import_playbook": "gitops.federation.sync"}]))
    with open(inventory) as handle:
        (private / "inventory" / "hosts.yml").write_text(handle.read())
    settings = ansible_env()
    (private / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": settings["ANSIBLE_COLLECTIONS_PATH"],
        "ANSIBLE_PYTHON_INTERPRETER": settings["ANSIBLE_PYTHON_INTERPRETER"],
        "ANSIBLE_NOCOLOR": "1",
    }))
    (private / "env" / "settings").write_text(yaml.safe_dump({"job_timeout": 600, "idle_timeout": 300}))
    # Nothing of the caller's Ansible configuration leaks in: the private data dir is all the job gets.
    environment = dict((k, v) for k, v in os.environ.items() if not k.startswith("ANSIBLE_"))
    environment["PATH"] = VENV_BIN + os.pathsep + environment["PATH"]
    ident = "sync-" + project.namespace
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-runner"), "run", str(private), "-p", "sync.yml",
                           "--ident", ident], capture_output=True, text=True, env=environment, stdin=subprocess.DEVNULL,
                          timeout=900)
    artifacts = private / "artifacts" / ident
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert (artifacts / "rc").read_text().strip() == "0"
    assert (artifacts / "status").read_text().strip() == "successful"

    events = []
    for path in sorted(glob.glob(str(artifacts / "job_events" / "*.json"))):
        with open(path) as handle:
            events.append(json.load(handle))
    assert events, "no job events"
    synced = [e for e in events if e.get("event") == "runner_on_ok"
              and e["event_data"].get("task_action") == "gitops.federation.cluster_reconcile"]
    assert sorted(e["event_data"]["host"] for e in synced) == sorted(ATTACHED), [e["event"] for e in events]
    key = "%s/%s" % (project.namespace, SOURCE)
    for event in synced:
        assert event["event_data"]["res"]["changed"] is True
        report = event["event_data"]["res"]["report"]
        assert list(report["sources"]) == [key]
        assert report["sources"][key]["counts"]["created"] >= len(APP_OBJECTS)
    stats_events = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert stats_events and not stats_events[-1]["event_data"].get("failures")
    # The job's output and events, which AWX stores and shows, hold no credential.
    for path in glob.glob(str(artifacts / "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, errors="replace") as handle:
                assert env.git.password not in handle.read(), "the git password leaked into %s" % path

    for host, replicas in ((ATTACHED[0], 1), (ATTACHED[1], 2)):
        assert project.deployment(host)["spec"]["replicas"] == replicas
    assert condition(project.source()["status"], "Propagation")["status"] == "True"


# -- 3. one sync at a time per source (Lease) ----------------------------------------------------------------


def debug_configmap():
    with open(os.path.join(EXAMPLE_APP, "base", "configmap.yaml")) as handle:
        text = handle.read()
    assert "LOG_LEVEL: info" in text
    return text.replace("LOG_LEVEL: info", "LOG_LEVEL: debug")


def test_sync_refuses_while_another_run_holds_the_lease_and_proceeds_once_it_expired(env, synced):
    project, inventory = synced
    applied = project.source()["status"]["lastAppliedRevision"]
    sha = env.git.commit(project.repo, files={"base/configmap.yaml": debug_configmap()}, message="debug logs")
    before = dict((host, project.resource_versions(host)) for host in ATTACHED)

    leases = env.management.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    lease_name = "gitops-sync-" + SOURCE
    now = datetime.datetime.now(datetime.timezone.utc)
    leases.create(namespace=project.namespace, body={
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": lease_name, "namespace": project.namespace},
        "spec": {"holderIdentity": "other-run", "leaseDurationSeconds": 900,
                 "acquireTime": micro_time(now), "renewTime": micro_time(now)},
    })

    recorded = dict((kind, get_or_none(env.management, api_version, kind, SOURCE, project.namespace)["metadata"]
                     ["resourceVersion"]) for api_version, kind in (FK, FGR))
    events = len(project.events())

    run = failed(playbook("sync", inventory))
    assert any("being synced by another run" in m and "other-run" in m for m in failure_messages(run)), \
        failure_details(run)
    # The refused run leaves the source's status and events to the run that holds the lease.
    assert recorded == dict((kind, get_or_none(env.management, api_version, kind, SOURCE, project.namespace)
                             ["metadata"]["resourceVersion"]) for api_version, kind in (FK, FGR))
    assert len(project.events()) == events, project.events()[events:]
    for host in ATTACHED:
        assert project.resource_versions(host) == before[host], "%s was touched while the lease was held" % host
        assert project.get(host, "v1", "ConfigMap", "demo-app-settings")["data"]["LOG_LEVEL"] == "info"
    status = project.source()["status"]
    assert status["lastAppliedRevision"] == applied
    assert all(c["revision"] == applied for c in status["clusters"])
    lease = leases.get(name=lease_name, namespace=project.namespace).to_dict()
    assert lease["spec"]["holderIdentity"] == "other-run", "the refused run released someone else's lease"

    # The other run crashed: once its lease expired (renewed two hours ago, 15 minutes duration) we take over.
    expired = micro_time(now - datetime.timedelta(hours=2))
    leases.patch(name=lease_name, namespace=project.namespace, content_type="application/merge-patch+json",
                 body={"spec": {"acquireTime": expired, "renewTime": expired}})
    ok(playbook("sync", inventory))
    revision = "main@sha1:" + sha
    for host in ATTACHED:
        assert project.get(host, "v1", "ConfigMap", "demo-app-settings")["data"]["LOG_LEVEL"] == "debug"
    status = project.source()["status"]
    assert status["lastAppliedRevision"] == revision
    assert sorted(c["name"] for c in status["clusters"] if c["revision"] == revision) == sorted(ATTACHED)
    assert get_or_none(env.management, "coordination.k8s.io/v1", "Lease", lease_name, project.namespace) is None, \
        "the lease was not released at the end of the run"


def test_federated_secrets_are_not_propagated_while_another_run_holds_their_lease(env, synced):
    project, inventory = synced
    secrets = env.management.resources.get(api_version="v1", kind="Secret")
    # A key the git credentials do not use, so the sources still render while the secret changes.
    secrets.patch(name=SECRET, namespace=project.namespace, content_type="application/merge-patch+json",
                  body={"stringData": {"rotation": "second"}})
    rotated = secrets.get(name=SECRET, namespace=project.namespace).to_dict()["data"]["rotation"]
    before = dict((host, project.get(host, *SECRET_OBJECT)["metadata"]["resourceVersion"]) for host in ATTACHED)

    leases = env.management.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    now = datetime.datetime.now(datetime.timezone.utc)
    leases.create(namespace=project.namespace, body={
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "gitops-secrets-sync", "namespace": project.namespace},
        "spec": {"holderIdentity": "other-run", "leaseDurationSeconds": 900,
                 "acquireTime": micro_time(now), "renewTime": micro_time(now)},
    })
    run = failed(playbook("sync", inventory))
    assert any("the federated secrets of %s" % project.namespace in m and "other-run" in m
               for m in failure_messages(run)), failure_details(run)
    for host in ATTACHED:
        assert project.get(host, *SECRET_OBJECT)["metadata"]["resourceVersion"] == before[host], host
    assert leases.get(name="gitops-secrets-sync", namespace=project.namespace).to_dict()["spec"][
        "holderIdentity"] == "other-run", "the refused run released someone else's lease"

    leases.delete(name="gitops-secrets-sync", namespace=project.namespace)
    ok(playbook("sync", inventory))
    for host in ATTACHED:
        assert project.get(host, *SECRET_OBJECT)["data"]["rotation"] == rotated, host


def test_two_syncs_of_one_source_at_once_do_not_interleave(env):
    """Two ansible-playbook runs from the same controller: the second finds the first's Lease and stops."""
    # The first run holds the Lease while its fetch hangs on a git server that never answers.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(16)
    try:
        project = env.project()
        project.spec["sources"][0].update(url="http://127.0.0.1:%d/stuck.git" % stuck.getsockname()[1],
                                          timeout="15s")
        inventory = project.inventory()
        ok(playbook("sources", inventory))
        lease_name = "gitops-sync-" + SOURCE
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(PLAYBOOKS, "sync.yml"), "-i", inventory]
        environment = ansible_env({"ANSIBLE_STDOUT_CALLBACK": "default"})
        first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=environment, cwd=ROOT)
        try:
            lease = None
            for unused_attempt in range(600):
                lease = get_or_none(env.management, "coordination.k8s.io/v1", "Lease", lease_name, project.namespace)
                if lease is not None or first.poll() is not None:
                    break
                time.sleep(0.1)
            assert lease is not None, "the first run never took the lease"
            holder = lease["spec"]["holderIdentity"]
            assert holder.startswith("ansible-playbook@"), holder

            second = failed(playbook("sync", inventory))
            assert first.poll() is None, "the first run ended before the second was refused: the test proves nothing"
            messages = failure_messages(second)
            assert any("being synced by another run" in m and holder in m for m in messages), messages
            assert not any("did not finish within" in m for m in messages), "the second run fetched the source too"
        finally:
            first_output = first.communicate(timeout=600)[0]
    finally:
        stuck.close()
    # The first run ends on its own: its fetch timed out, it recorded that and released its lease.
    assert first.returncode != 0
    assert "did not finish within 15s" in first_output, first_output[-4000:]
    assert get_or_none(env.management, "coordination.k8s.io/v1", "Lease", lease_name, project.namespace) is None
    for host in ATTACHED:
        assert project.deployment(host) is None


# -- 4. suspend / resume -------------------------------------------------------------------------------------


def test_suspend_keeps_hand_edits_and_resume_reverts_them(env, synced):
    project, inventory = synced
    ok(playbook("suspend", inventory, {"source": SOURCE}))
    assert project.source()["spec"]["template"]["spec"]["suspend"] is True

    env.kubectl(ATTACHED[0], "-n", project.namespace, "scale", "deployment/demo-app", "--replicas=5")
    env.kubectl(ATTACHED[1], "-n", project.namespace, "patch", "configmap/demo-app-settings", "--type=merge",
                "-p", json.dumps({"data": {"LOG_LEVEL": "trace"}}))

    run = ok(playbook("sync", inventory))
    reconciled = [r for r in run.results if task(r, "Reconcile the sources of this cluster")]
    assert sorted(r["_host"] for r in reconciled) == sorted(ATTACHED)
    # A suspended source is in no cluster's work (its status says Suspended, from the record step).
    assert [(r["_host"], r["changed"], r["report"]["sources"]) for r in reconciled] == \
        [(r["_host"], False, {}) for r in reconciled], "a suspended source was applied"
    assert project.deployment(ATTACHED[0])["spec"]["replicas"] == 5
    assert project.get(ATTACHED[1], "v1", "ConfigMap", "demo-app-settings")["data"]["LOG_LEVEL"] == "trace"
    status = project.source()["status"]
    assert sorted((name, c["status"]) for name, c in clusters_by_name(status).items()) == \
        [(host, "Suspended") for host in sorted(ATTACHED)]

    ok(playbook("resume", inventory, {"source": SOURCE}))
    assert not project.source()["spec"]["template"]["spec"].get("suspend")
    assert project.deployment(ATTACHED[0])["spec"]["replicas"] == 1
    assert project.deployment(ATTACHED[1])["spec"]["replicas"] == 2
    assert project.get(ATTACHED[1], "v1", "ConfigMap", "demo-app-settings")["data"]["LOG_LEVEL"] == "info"
    status = project.source()["status"]
    assert sorted((name, c["status"]) for name, c in clusters_by_name(status).items()) == \
        [(host, "Applied") for host in sorted(ATTACHED)]
    assert condition(status, "Propagation")["status"] == "True"


# -- 5. teardown ---------------------------------------------------------------------------------------------


def create_foreign_configmap(env, project, host):
    """A ConfigMap made by hand in the project namespace, carrying the app's labels but not our owner label."""
    env.clients[host].resources.get(api_version="v1", kind="ConfigMap").create(namespace=project.namespace, body={
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "hand-made", "labels": {"app.kubernetes.io/name": "demo-app"}},
        "data": {"made": "by hand"},
    })


def assert_torn_down(project, host):
    for api_version, kind, name in APP_OBJECTS:
        assert project.get(host, api_version, kind, name) is None, "%s %s left on %s" % (kind, name, host)
    assert project.inventory_configmap(host) is None, "the source's inventory ConfigMap is left on %s" % host
    for api_version, kind in (("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service")):
        owned = [n for n in project.owned(host, api_version, kind)
                 if project.get(host, api_version, kind, n)["metadata"]["annotations"].get(OWNER_LABEL) == project.owner]
        assert owned == [], "%s of the source left on %s: %s" % (kind, host, owned)
    assert project.get(host, "v1", "ConfigMap", "hand-made")["data"] == {"made": "by hand"}


def test_teardown_removes_everything_of_the_source_and_keeps_foreign_objects(env, synced):
    project, inventory = synced
    for host in ATTACHED:
        create_foreign_configmap(env, project, host)
        assert project.inventory_configmap(host) is not None, "no inventory ConfigMap on %s" % host

    ok(playbook("teardown", inventory, {"source": SOURCE}))
    for host in ATTACHED:
        assert_torn_down(project, host)
    assert project.source() is None
    assert get_or_none(env.management, *FGR, SOURCE, project.namespace) is None
    # The project's federated secret is not the source's: it stays, and stays propagated.
    assert get_or_none(env.management, "types.kubefed.io/v1beta1", "FederatedSecret", SECRET, project.namespace)
    for host in ATTACHED:
        assert project.get(host, "v1", "Secret", SECRET) is not None


def test_teardown_with_an_unreachable_cluster_keeps_the_source_terminating_until_a_rerun(env, synced):
    project, inventory = synced
    for host in ATTACHED:
        create_foreign_configmap(env, project, host)
    unreachable = project.inventory(host_vars={ATTACHED[1]: {"kubeconfig": env.unreachable_kubeconfig(ATTACHED[1])}})
    before = project.resource_versions(ATTACHED[1])

    run = failed(playbook("teardown", unreachable, {"source": SOURCE}))
    messages = failure_messages(run)
    assert any("stays, marked terminating" in m and ATTACHED[1] in m for m in messages), messages
    assert not any(ATTACHED[0] + " " in m or ATTACHED[0] + "," in m for m in messages
                   if "stays, marked terminating" in m), messages
    source = project.source()
    assert source is not None
    assert TERMINATING in source["metadata"]["annotations"]
    assert source["spec"]["template"]["spec"]["suspend"] is True
    assert_torn_down(project, ATTACHED[0])
    assert project.resource_versions(ATTACHED[1]) == before
    entries = clusters_by_name(source["status"])
    assert ATTACHED[0] not in entries and entries[ATTACHED[1]]["status"] == "Unreachable", entries

    # A sync in the meantime (every cluster reachable again) never applies a terminating source.
    ok(playbook("sync", inventory))
    assert project.deployment(ATTACHED[0]) is None, "a terminating source was applied again"
    assert project.resource_versions(ATTACHED[1]) == before

    ok(playbook("teardown", inventory, {"source": SOURCE}))
    for host in ATTACHED:
        assert_torn_down(project, host)
    assert project.source() is None
    assert get_or_none(env.management, *FGR, SOURCE, project.namespace) is None


# -- 6. status after a sync with failed clusters --------------------------------------------------------------


def table_rows(run, namespace):
    lines = status_rows(run)
    assert lines[0].split() == ["PROJECT", "SOURCE", "SCOPE", "CLUSTER", "STATE", "REVISION", "LAST", "APPLIED",
                                "MESSAGE"]
    rows = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line, maxsplit=7)
        cells = cells[:2] + cells[3:]  # without SCOPE
        if cells[0] == namespace:
            rows[cells[2]] = cells + [""] * (7 - len(cells))
    return rows


def test_status_after_a_sync_with_an_unreachable_and_a_forbidden_cluster(env, tmp_path):
    project = env.project()
    # attached-3 is cluster-3 seen through a ServiceAccount that may only touch another namespace.
    elsewhere = unique_name("elsewhere")
    forbidden, unused_token = service_account_kubeconfig(env.hosts[ATTACHED[1]], env.clients[ATTACHED[1]], elsewhere,
                                                         "limited", str(tmp_path / "forbidden.kubeconfig"))
    inventory = project.inventory(host_vars={
        ATTACHED[1]: {"kubeconfig": env.unreachable_kubeconfig(ATTACHED[1])},
        "attached-3": {"kubeconfig": forbidden},
    })
    ok(playbook("sources", inventory))

    run = failed(playbook("sync", inventory))
    final = [r for r in run.results if r.get("failed") and task(r, "Report what did not sync")]
    assert final, failure_details(run)
    lines = final[0]["msg"]
    key = "%s/%s" % (project.namespace, SOURCE)
    assert any(line.startswith("%s on %s: Unreachable" % (key, ATTACHED[1])) for line in lines), lines
    assert any(line.startswith("%s on attached-3: Failed" % key) for line in lines), lines
    assert not any(" on %s:" % ATTACHED[0] in line for line in lines), lines
    assert project.deployment(ATTACHED[0])["spec"]["replicas"] == 1
    assert get_or_none(env.clients[ATTACHED[1]], "v1", "Namespace", project.namespace) is None

    status = project.source()["status"]
    propagation = condition(status, "Propagation")
    assert propagation["status"] == "False"
    assert ATTACHED[1] in propagation["message"] and "attached-3" in propagation["message"], propagation
    assert ATTACHED[0] + " " not in propagation["message"], propagation

    table = ok(playbook("status", inventory))
    rows = table_rows(table, project.namespace)
    assert sorted(rows) == sorted([ATTACHED[0], ATTACHED[1], "attached-3"]), rows
    revision = status["lastAppliedRevision"]
    healthy, down, denied = rows[ATTACHED[0]], rows[ATTACHED[1]], rows["attached-3"]
    assert healthy[:4] == [project.namespace, SOURCE, ATTACHED[0], "Applied"], healthy
    assert revision.startswith(healthy[4]) and len(healthy[4]) == len("main@sha1:") + 7, healthy
    assert healthy[5] == clusters_by_name(status)[ATTACHED[0]]["lastAppliedTime"], healthy
    assert down[3:6] == ["Unreachable", "-", "-"], down  # never applied there: no revision, no time
    assert "cannot reach the API server" in down[6], down
    assert denied[3] == "Failed" and "forbidden" in denied[6].lower(), denied


# -- 7. bad inventory variables fail before any cluster is touched -------------------------------------------


def drop_source_name(spec):
    del spec["sources"][0]["name"]


def list_as_substitute(spec):
    spec["sources"][0]["substitute"] = ["CLUSTER_NAME"]


@pytest.mark.parametrize("spoil, words", [
    (drop_source_name, ["missing required arguments: name", "gitops_projects -> sources"]),
    (list_as_substitute, ["substitute", "gitops_projects -> sources"]),
], ids=["source-without-name", "substitute-not-a-mapping"])
def test_sources_rejects_a_bad_project_variable_before_touching_the_cluster(env, spoil, words):
    project = env.project()
    spoil(project.spec)
    run = failed(playbook("sources", project.inventory()))
    messages = failure_messages(run)
    assert messages and "argument" in messages[0].lower(), messages
    for word in words:
        assert word in messages[0], messages
    assert not [r for r in run.results if task(r, "Install or upgrade the gitops.federation CRDs")], \
        "the CRDs were installed before the variables were validated"
    for host in (MANAGEMENT,) + ATTACHED:
        assert get_or_none(env.clients[host], "v1", "Namespace", project.namespace) is None


def test_sync_rejects_cluster_labels_that_are_not_a_mapping_before_touching_any_cluster(env):
    project = env.project()
    ok(playbook("sources", project.inventory()))
    bad = project.inventory(host_vars={ATTACHED[1]: {"cluster_labels": "env=demo"}})
    run = failed(playbook("sync", bad))
    messages = failure_messages(run)
    assert any(ATTACHED[1] in m and "cluster_labels" in m for m in messages), messages
    for host in ATTACHED:
        assert get_or_none(env.clients[host], "v1", "Namespace", project.namespace) is None, \
            "%s was touched" % host
    assert get_or_none(env.management, "coordination.k8s.io/v1", "Lease", "gitops-sync-" + SOURCE,
                       project.namespace) is None
    assert not project.source().get("status", {}).get("clusters")


# -- 8. a new commit, rolled out canary first ----------------------------------------------------------------


def test_new_commit_rolls_out_in_canary_batches(env, synced):
    project, inventory = synced
    first = project.source()["status"]["lastAppliedRevision"]
    sha = env.git.commit(project.repo, message="debug logs, 3 replicas on attached-2", files={
        "base/configmap.yaml": debug_configmap(),
        "overlays/attached-2/kustomization.yaml": open(
            os.path.join(EXAMPLE_APP, "overlays", "attached-2", "kustomization.yaml")).read().replace(
                "value: 2", "value: 3"),
    })
    revision = "main@sha1:" + sha
    assert revision != first

    run = ok(playbook("sync", inventory, {"gitops_rollout_batches": [1, "100%"]}, callback="default"))
    # Two batches of the attached play: the canary (one cluster), then the rest.
    batches = re.findall(r"^PLAY \[Reconcile the attached clusters\]", run.stdout, re.M)
    assert len(batches) == 2, run.stdout[-6000:]
    counts = recap(run)
    assert all(counts[host][2:] == (0, 0) for host in counts), counts

    for host in ATTACHED:
        assert project.get(host, "v1", "ConfigMap", "demo-app-settings")["data"]["LOG_LEVEL"] == "debug"
        assert project.inventory_configmap(host)["data"]["revision"] == revision
    assert project.deployment(ATTACHED[0])["spec"]["replicas"] == 1
    assert project.deployment(ATTACHED[1])["spec"]["replicas"] == 3
    status = project.status_yaml()["status"]
    assert status["lastAppliedRevision"] == revision
    entries = clusters_by_name(status)
    assert [(entries[h]["status"], entries[h]["revision"]) for h in ATTACHED] == [("Applied", revision)] * 2
    assert condition(status, "Propagation")["status"] == "True"
    assert revision in condition(status, "Propagation")["message"]


def test_a_failed_canary_halts_the_rollout(env):
    project = env.project()
    # The canary batch is the first attached host; it cannot be reached.
    inventory = project.inventory(host_vars={ATTACHED[0]: {"kubeconfig": env.unreachable_kubeconfig(ATTACHED[0])}})
    ok(playbook("sources", inventory))

    run = failed(playbook("sync", inventory, {"gitops_rollout_batches": [1, "100%"]}))
    final = [r for r in run.results if r.get("failed") and task(r, "Report what did not sync")]
    assert final, failure_details(run)
    lines = final[0]["msg"]
    key = "%s/%s" % (project.namespace, SOURCE)
    assert any(line.startswith("%s on %s: Unreachable" % (key, ATTACHED[0])) for line in lines), lines
    assert "%s: not synced: the rollout halted after failures on %s" % (ATTACHED[1], ATTACHED[0]) in lines, lines
    # The second batch was not touched at all: not even the project namespace or the federated secret.
    assert get_or_none(env.clients[ATTACHED[1]], "v1", "Namespace", project.namespace) is None
    propagation = condition(project.source()["status"], "Propagation")
    assert propagation["status"] == "False"
    assert ATTACHED[0] in propagation["message"] and ATTACHED[1] in propagation["message"], propagation


# -- the sync path: refused bundles write nothing for the project; bundles kept per management cluster -----


GADGET = "apiVersion: example.invalid/v1\nkind: Gadget\nmetadata:\n  name: not-served\n"
PLAIN_CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  a: b\n"


def plain_project(env, files):
    """A project whose one source is the plain directory app/ of a new repository holding files."""
    namespace, repo = unique_name("pb"), unique_name("repo")
    env.git.create_repo(repo, files=files)
    spec = demo_project(env.git, repo=repo, namespace=namespace, source=SOURCE, secret=SECRET)
    spec["sources"][0].update(path="app", overrides=[], substitute={})
    return Project(env, namespace, repo, spec)


def test_a_project_whose_every_source_is_refused_gets_nothing_written_not_even_its_secrets(env):
    project = plain_project(env, {"app/plain.yaml": PLAIN_CONFIGMAP, "app/gadget.yaml": GADGET})
    inventory = project.inventory()
    ok(playbook("sources", inventory))

    run = failed(playbook("sync", inventory))
    for host in ATTACHED:
        assert get_or_none(env.clients[host], "v1", "Namespace", project.namespace) is None, \
            "%s: the project namespace was created for a refused bundle" % host
    final = [r for r in run.results if r.get("failed") and task(r, "Report what did not sync")][0]["msg"]
    key = "%s/%s" % (project.namespace, SOURCE)
    for host in ATTACHED:
        assert any(line.startswith("%s on %s: Failed" % (key, host)) and "Gadget" in line for line in final), final
        assert any(line.startswith("federated secrets of %s on %s" % (project.namespace, host))
                   and "every source of project %s placed here was refused" % project.namespace in line
                   for line in final), final
    secret_status = get_or_none(env.management, "types.kubefed.io/v1beta1", "FederatedSecret", SECRET,
                                project.namespace)["status"]
    assert sorted((n, c["status"]) for n, c in clusters_by_name(secret_status).items()) == \
        [(host, "Failed") for host in sorted(ATTACHED)]

    # Fixed in git: the next sync writes the secrets and the source.
    env.git.commit(project.repo, files={"app/gadget.yaml": None})
    ok(playbook("sync", inventory))
    for host in ATTACHED:
        assert project.get(host, "v1", "Secret", SECRET) is not None
        assert project.get(host, "v1", "ConfigMap", "plain") is not None


def test_bundles_of_runs_against_other_management_clusters_are_not_shared(env, tmp_path):
    project = plain_project(env, {"app/plain.yaml": PLAIN_CONFIGMAP})
    cache = {"GITOPS_FEDERATION_CACHE": str(tmp_path / "cache")}
    first = project.inventory()
    ok(playbook("sources", first))
    run = ok(playbook("sync", first, env=cache))
    planned = [r for r in run.results if task(r, "Read, lease, fetch and render; plan every attached cluster's work")]
    assert [r["changed"] for r in planned[0]["renders"]] == [True]

    # The same project and source declared on another management cluster (another inventory's), same cache.
    # Management on attached-2's cluster, attached-1 the only attached cluster.
    other = project.inventory(host_vars={MANAGEMENT: {"kubeconfig": env.hosts[ATTACHED[1]].kubeconfig}})
    with open(other) as handle:
        document = yaml.safe_load(handle)
    del document["all"]["children"]["attached"]["hosts"][ATTACHED[1]]
    with open(other, "w") as handle:
        yaml.safe_dump(document, handle)
    ok(playbook("sources", other))
    run = ok(playbook("sync", other, env=cache))
    planned_other = [r for r in run.results
                     if task(r, "Read, lease, fetch and render; plan every attached cluster's work")]
    renders = planned_other[0]["renders"]
    assert [r["changed"] for r in renders] == [True], "the render took the file another management cluster's run left"
    bundles = sorted(glob.glob(str(tmp_path / "cache" / "bundles" / "*" / project.namespace / SOURCE / "*.yaml")))
    assert len(bundles) == 2, bundles


def test_sync_in_check_mode_writes_nothing_anywhere(env, tmp_path):
    project = env.project()
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    cache = tmp_path / "cache"
    run = ok(playbook("sync", inventory, check=True, env={"GITOPS_FEDERATION_CACHE": str(cache)}))
    reconciled = [r for r in run.results if task(r, "Reconcile the sources of this cluster")]
    key = "%s/%s" % (project.namespace, SOURCE)
    for result in reconciled:  # what a sync would do, by dry-run
        assert result["changed"] is True and result["report"]["sources"][key]["status"] == "Applied", result
    for host in ATTACHED:
        assert get_or_none(env.clients[host], "v1", "Namespace", project.namespace) is None, host
    assert not (project.source().get("status") or {}).get("clusters"), "check mode recorded a status"
    leases = env.management.resources.get(api_version="coordination.k8s.io/v1", kind="Lease").get(
        namespace=project.namespace).to_dict()["items"]
    assert leases == [], "check mode took or left a Lease"
    assert not glob.glob(str(cache / "bundles" / "**" / "*.yaml"), recursive=True), "check mode wrote the bundle cache"
    planned = [r for r in run.results if task(r, "Read, lease, fetch and render; plan every attached cluster's work")]
    scratch = planned[0]["plan"]["scratch_dir"]
    assert scratch and not os.path.exists(scratch), "the check-mode scratch bundles were left behind"


def test_a_kind_installed_after_discovery_was_cached_is_found_by_the_next_sync(env, tmp_path):
    project = plain_project(env, {"app/plain.yaml": PLAIN_CONFIGMAP})
    inventory = project.inventory()
    cache = {"GITOPS_FEDERATION_CACHE": str(tmp_path / "cache")}
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory, env=cache))
    assert len(glob.glob(str(tmp_path / "cache" / "discovery" / "*.json"))) == 3, "one entry per API server"

    # The platform installs a CRD on the attached clusters; the source starts using it, within the cache's life.
    group = "%s.example.com" % unique_name("g")
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gizmos." + group},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"kind": "Gizmo", "plural": "gizmos", "singular": "gizmo", "listKind": "GizmoList"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    path = tmp_path / "crd.json"
    path.write_text(json.dumps(crd))
    for host in ATTACHED:
        env.kubectl(host, "apply", "-f", str(path))
        env.kubectl(host, "wait", "--for=condition=Established", "crd/gizmos." + group)
    env.git.commit(project.repo, files={"app/gizmo.yaml": "apiVersion: %s/v1\nkind: Gizmo\nmetadata:\n  name: one\n"
                                                         "spec:\n  size: 1\n" % group})
    ok(playbook("sync", inventory, env=cache))
    for host in ATTACHED:
        assert project.get(host, group + "/v1", "Gizmo", "one") is not None, host
