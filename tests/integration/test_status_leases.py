"""Issue 17, items 5, 8, 16 and 17 against real kube-apiservers.

- 17.5  secret propagation refuses an empty set the management cluster did not confirm;
- 17.8  a long per-cluster sync keeps its source's Lease (renewed in the background), and reports a lease
        another run took;
- 16    a refused 25-object bundle leaves a small FederatedKustomization and short `kubectl get -o wide` lines,
        the full list in one Event;
- 17.17 the printed columns (READY, SUSPENDED, PROPAGATION, MESSAGE) after create, sync, suspend and resume.

cluster-1 is the management cluster, cluster-2 and cluster-3 are attached clusters. Modules run through
ansible-playbook; assertions read the clusters with kubectl and the kubernetes client.
"""

import datetime
import json
import subprocess
import threading
import time

import pytest
import yaml

from kube import ensure_namespace, get_or_none, unique_name
from playbook import run_module, run_playbook
from tools.localenv.binaries import binary

from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_run import cluster_results  # noqa: I100

REVISION = "main@sha1:4b76adcc78cc5a231fa5d8e7cf2f764df10c7568"
REVISION_2 = "main@sha1:" + "c" * 40
PASSWORD = "hunter2-status-leases-Pa55"


@pytest.fixture(scope="module")
def management(clusters):
    return clusters[0]


@pytest.fixture(scope="module")
def attached(clusters):
    return clusters[1:]


@pytest.fixture(scope="module")
def crds_installed(management, tmp_path_factory):
    directory = tmp_path_factory.mktemp("crds")
    inventory = directory / "inventory.ini"
    inventory.write_text(f"management kubeconfig={management.kubeconfig} ansible_connection=local\n")
    playbook = directory / "crds.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "management", "gather_facts": False,
                                         "roles": [{"role": "gitops.federation.crds"}]}]))
    run = run_playbook(str(playbook), inventory=str(inventory))
    assert run.returncode == 0, run.output[-4000:]


def kubectl(cluster, *args, stdin=None, check=True):
    proc = subprocess.run([binary("kubectl"), "--kubeconfig", cluster.kubeconfig, *args], input=stdin,
                          capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def module(cluster, name, args, expect_failure=False, check=False):
    params = dict(kubeconfig=cluster.kubeconfig)
    params.update(args)
    result, run = run_module(f"gitops.federation.{name}", params, check=check)
    if expect_failure:
        assert result.get("failed"), result
    else:
        assert not result.get("failed"), result.get("msg") or run.output[-4000:]
    assert PASSWORD not in run.output
    return result


def fks(management, namespace, name="podinfo"):
    return json.loads(kubectl(management, "get", "federatedkustomizations.types.kubefed.io", "-n", namespace, name,
                              "-o", "json").stdout)


def condition(obj, ctype):
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


def table(management, namespace, *extra):
    """kubectl's printed table as a list of {COLUMN: cell} (cells sliced at the header's column starts)."""
    lines = kubectl(management, "get", "federatedkustomizations", "-n", namespace, *extra).stdout.splitlines()
    header = lines[0]
    names = header.split()
    starts = []
    position = 0
    for name in names:
        position = header.index(name, position)
        starts.append(position)
        position += len(name)
    rows = []
    for line in lines[1:]:
        cells = [line[start:(starts[i + 1] if i + 1 < len(starts) else None)].strip() for i, start in enumerate(starts)]
        rows.append(dict(zip(names, cells)))
    return lines, rows


def source_args(namespace, name="podinfo"):
    return dict(namespace=namespace, name=name, url="https://git.example.com/team/podinfo.git", ref={"branch": "main"},
                path="deploy", clusters=["cluster-2", "cluster-3"])


# -- 17.5 an empty set of federated secrets ------------------------------------------------------------------


def propagate(management, cluster, namespace, expect_failure=False, **extra):
    args = dict(kubeconfig=cluster.kubeconfig, management={"kubeconfig": management.kubeconfig},
                namespace=namespace, cluster=cluster.name)
    args.update(extra)
    result, run = run_module("gitops.federation.federated_secret_sync", args)
    assert bool(result.get("failed")) == expect_failure, result.get("msg") or run.output[-4000:]
    assert PASSWORD not in run.output
    return result


def two_federated_secrets(management, namespace):
    for name in ("git-credentials", "registry"):
        module(management, "federated_secret", dict(namespace=namespace, name=name, username="deploy",
                                                    password=PASSWORD, clusters=["cluster-2"]))


def secrets_on(admin_clients, cluster, namespace):
    return sorted(name for name in ("git-credentials", "registry")
                  if get_or_none(admin_clients[cluster.name], "v1", "Secret", name, namespace) is not None)


def test_deleting_the_last_federated_secrets_prunes_their_copies(crds_installed, management, attached, admin_clients,
                                                                  namespace):
    """The legitimate empty set: the project namespace exists on the management cluster and lists none."""
    cluster = attached[0]
    two_federated_secrets(management, namespace)
    assert propagate(management, cluster, namespace)["secrets"] == ["git-credentials", "registry"]
    for name in ("git-credentials", "registry"):
        module(management, "federated_secret", dict(namespace=namespace, name=name, state="absent"))
    pruned = propagate(management, cluster, namespace)
    assert pruned["changed"] is True and pruned["counts"]["pruned"] == 2
    assert secrets_on(admin_clients, cluster, namespace) == []


def test_a_management_cluster_without_the_project_prunes_nothing(crds_installed, management, attached, admin_clients):
    """A wrong management connection finds no FederatedSecret: refused, nothing deleted; allow_empty deletes."""
    cluster = attached[0]
    project = unique_name("p")
    for client in (admin_clients[management.name], admin_clients[cluster.name]):
        ensure_namespace(client, project)
    two_federated_secrets(management, project)
    propagate(management, cluster, project)
    assert secrets_on(admin_clients, cluster, project) == ["git-credentials", "registry"]

    # The management cluster as a wrong context would show it: no namespace of that name. (These test clusters
    # run no namespace controller: empty and finalize the deleted namespace by hand, as that controller would.)
    kubectl(management, "delete", "namespace", project, "--wait=false")
    kubectl(management, "-n", project, "delete", "federatedsecrets.types.kubefed.io,secrets", "--all")
    kubectl(management, "replace", "--raw", f"/api/v1/namespaces/{project}/finalize", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": project},
                              "spec": {"finalizers": []}}))
    deadline = time.monotonic() + 30
    while get_or_none(admin_clients[management.name], "v1", "Namespace", project) is not None:
        assert time.monotonic() < deadline, "the namespace was never removed"
        time.sleep(0.2)

    refused = propagate(management, cluster, project, expect_failure=True)
    assert refused["msg"].startswith(f"refusing to prune the 2 propagated Secrets of project {project} from cluster "
                                     f"{cluster.name}: the management cluster ")
    assert f"has no namespace {project}" in refused["msg"] and "Nothing was deleted" in refused["msg"]
    assert "allow_empty: true" in refused["msg"]
    assert secrets_on(admin_clients, cluster, project) == ["git-credentials", "registry"]

    allowed = propagate(management, cluster, project, allow_empty=True)
    assert allowed["changed"] is True and allowed["counts"]["pruned"] == 2
    assert secrets_on(admin_clients, cluster, project) == []


# -- 17.8 leases kept through long syncs -------------------------------------------------------------------------


def lease_of(management, namespace, source):
    return get_or_none_admin(management, namespace, f"gitops-sync-{source}")


def get_or_none_admin(cluster, namespace, name):
    proc = kubectl(cluster, "get", "lease", "-n", namespace, name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


class Background:
    """Run a module in a thread; .result when done."""

    def __init__(self, target):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(target,))
        self.thread.start()

    def _run(self, target):
        try:
            self.result = target()
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            self.error = err

    def join(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the background module never finished"
        if self.error:
            raise self.error
        return self.result


def waiting_sync(management, cluster, namespace, source, holder, duration):
    """cluster_sync of one ConfigMap that waits until a test-controlled field says ready, keeping a lease."""
    bundle = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gate"}, "data": {"ready": "no"}}]
    args = dict(kubeconfig=cluster.kubeconfig, owner=f"gitops/{namespace}/{source}", namespace=namespace,
                manifests=bundle, wait=True, wait_timeout=120,
                # The ConfigMap's ready key is the test's to set: server-side apply leaves another manager's value.
                health_checks=[{"kind": "ConfigMap", "current": "metadata.labels.gate == 'open'"}],
                management={"kubeconfig": management.kubeconfig},
                lease=dict(namespace=namespace, source=source, holder=holder, duration=duration))
    return lambda: run_module("gitops.federation.cluster_sync", args)


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def open_gate(cluster, namespace):
    kubectl(cluster, "-n", namespace, "label", "configmap", "gate", "gate=open", "--overwrite")


def test_a_long_sync_keeps_its_lease_and_no_other_run_takes_it(crds_installed, management, attached, namespace):
    cluster, source, holder, duration = attached[0], "slow", "run-a@test", 3
    module(management, "sync_lease", dict(namespace=namespace, source=source, holder=holder, duration=duration))
    started = time.monotonic()
    sync = Background(waiting_sync(management, cluster, namespace, source, holder, duration))
    wait_for(lambda: kubectl(cluster, "-n", namespace, "get", "configmap", "gate", check=False).returncode == 0,
             what="the sync to apply its ConfigMap")
    # Well past the lease duration since it was taken: without renewal it would have expired long ago.
    time.sleep(max(0.0, started + 2 * duration - time.monotonic()))
    other = module(management, "sync_lease", dict(namespace=namespace, source=source, holder="run-b@test",
                                                   duration=duration), expect_failure=True)
    assert "being synced by another run" in other["msg"] and holder in other["msg"]
    time.sleep(duration)
    lease = lease_of(management, namespace, source)
    assert lease["spec"]["holderIdentity"] == holder
    renewed = parse_time(lease["spec"]["renewTime"])
    assert datetime.datetime.now(datetime.timezone.utc) - renewed < datetime.timedelta(seconds=duration)
    open_gate(cluster, namespace)
    result, run = sync.join(120)
    assert not result.get("failed"), result.get("msg") or run.output[-4000:]
    assert time.monotonic() - started > 3 * duration, "the sync was not longer than the lease: proves nothing"
    assert result["lease_renewals"] >= 3
    assert [h["status"] for h in result["health"]] == ["Current"]
    lease = lease_of(management, namespace, source)
    assert lease["spec"]["holderIdentity"] == holder  # held until the record step releases it


def test_a_lease_taken_by_another_run_during_the_sync_is_reported(crds_installed, management, attached, namespace):
    cluster, source, holder, duration = attached[1], "stolen", "run-a@test", 3
    module(management, "sync_lease", dict(namespace=namespace, source=source, holder=holder, duration=duration))
    sync = Background(waiting_sync(management, cluster, namespace, source, holder, duration))
    wait_for(lambda: kubectl(cluster, "-n", namespace, "get", "configmap", "gate", check=False).returncode == 0,
             what="the sync to apply its ConfigMap")
    # Another run takes the lease (as it may once a lease expired): overwrite the holder.
    kubectl(management, "-n", namespace, "patch", "lease", f"gitops-sync-{source}", "--type=merge",
            "-p", json.dumps({"spec": {"holderIdentity": "intruder@test"}}))
    time.sleep(duration)
    open_gate(cluster, namespace)
    result, unused = sync.join(120)
    assert result.get("failed"), result
    assert f"Lease {namespace}/gitops-sync-{source} was taken by another run" in result["msg"]
    assert "intruder@test" in result["msg"] and "rerun" in result["msg"]
    assert result["change_set"], "the work done is still reported"
    assert lease_of(management, namespace, source)["spec"]["holderIdentity"] == "intruder@test"

    # A sync that starts under a lease it no longer holds does nothing at all.
    refused, unused = waiting_sync(management, cluster, namespace, source, holder, duration)()
    assert refused.get("failed") and "nothing was done" in refused["msg"], refused


# -- 16 and 17.17: status that stays small and says what happened -------------------------------------------------


def refused_bundle(path, count=25):
    objects = [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": f"settings-{index:02d}", "labels": {"app.kubernetes.io/part-of": "demo"}},
                "data": {f"bad key {index:02d}": "a key with spaces is refused by the API server"}}
               for index in range(count)]
    with open(path, "w") as handle:
        yaml.safe_dump_all(objects, handle)
    return path


def test_a_refused_bundle_leaves_a_small_status_and_the_whole_list_in_one_event(crds_installed, management, attached,
                                                                                namespace, tmp_path):
    module(management, "gitops_source", source_args(namespace))
    bundle = refused_bundle(str(tmp_path / "bundle.yaml"))
    results = []
    for cluster in attached:
        args = dict(kubeconfig=cluster.kubeconfig, owner=f"gitops/{namespace}/podinfo", namespace=namespace,
                    src=bundle, revision=REVISION)
        failed, unused = run_module("gitops.federation.cluster_sync", args)
        assert failed.get("failed") and "refused 25 objects" in failed["msg"], failed
        work = dict(key=f"{namespace}/podinfo", owner=args["owner"], state="present", revision=REVISION)
        results.append(cluster_results([dict(failed, item=work)], [], cluster.name)["sources"][work["key"]])
    full = results[0]["message"]
    assert len(full) > 3000, "the refusal is not long enough to prove anything"
    recorded = module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION,
                                                        placed=[c.name for c in attached], results=results))
    assert recorded["status_written"] is True

    obj = fks(management, namespace)
    assert len(json.dumps(obj)) < 4000, len(json.dumps(obj))
    messages = [c["message"] for c in obj["status"]["clusters"]] + [c["message"] for c in obj["status"]["conditions"]]
    assert all(len(m) <= 400 for m in messages), [len(m) for m in messages]
    for entry in obj["status"]["clusters"]:
        assert entry["status"] == "Failed"
        assert entry["message"].startswith("the API server refused 25 objects, nothing was applied: ConfigMap")
        assert "more (see Events)" in entry["message"]
    propagation = condition(obj, "Propagation")
    assert (propagation["status"], propagation["reason"]) == ("False", "PropagationFailed")
    assert propagation["message"] == ("failed on: cluster-2, cluster-3 (the API server refused 25 objects, "
                                      "nothing was applied)")

    lines, rows = table(management, namespace, "-o", "wide")
    assert all(len(line) < 250 for line in lines), [len(line) for line in lines]
    assert (rows[0]["READY"], rows[0]["PROPAGATION"]) == ("False", "False")
    assert rows[0]["MESSAGE"] == propagation["message"]

    events = json.loads(kubectl(management, "get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    failures = [e for e in events if e["reason"] == "Failed" and e["involvedObject"]["kind"] == "FederatedKustomization"]
    assert len(failures) == 1, [e["message"][:120] for e in failures]
    assert failures[0]["message"].startswith(f"Failed to apply revision {REVISION} to clusters cluster-2, cluster-3")
    assert failures[0]["message"].endswith(full)
    assert all(f"settings-{index:02d}" in failures[0]["message"] for index in range(25))


def test_printed_columns_after_create_sync_suspend_and_resume(crds_installed, management, namespace):
    placed = ["cluster-2", "cluster-3"]
    module(management, "gitops_source", source_args(namespace))
    unused, rows = table(management, namespace)
    assert rows == [{"NAME": "podinfo", "READY": "", "SUSPENDED": "false", "REVISION": "", "AGE": rows[0]["AGE"]}]

    applied = [{"cluster": c, "status": "Applied", "counts": {"created": 3}} for c in placed]
    module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION, placed=placed,
                                              results=applied))
    unused, rows = table(management, namespace, "-o", "wide")
    assert {k: rows[0][k] for k in ("READY", "SUSPENDED", "REVISION", "PROPAGATION", "MESSAGE")} == {
        "READY": "True", "SUSPENDED": "false", "REVISION": REVISION, "PROPAGATION": "True",
        "MESSAGE": f"revision {REVISION} applied to 2 clusters: cluster-2, cluster-3"}

    # Suspend as the suspend role does: the flag, then the record.
    module(management, "gitops_suspend", dict(namespace=namespace, name="podinfo", state="suspended"))
    module(management, "gitops_status", dict(namespace=namespace, name="podinfo", suspended=True))
    unused, rows = table(management, namespace, "-o", "wide")
    message = f"sync suspended: objects are left as they are ({REVISION} on cluster-2, cluster-3); resume to sync again"
    assert {k: rows[0][k] for k in ("READY", "SUSPENDED", "REVISION", "PROPAGATION", "MESSAGE")} == {
        "READY": "False", "SUSPENDED": "true", "REVISION": REVISION, "PROPAGATION": "False", "MESSAGE": message}
    obj = fks(management, namespace)
    assert [(c["type"], c["status"], c["reason"]) for c in obj["status"]["conditions"]] == [
        ("Propagation", "False", "Suspended"), ("Ready", "False", "Suspended")]
    assert {c["status"] for c in obj["status"]["clusters"]} == {"Suspended"}

    # Resume, then the sync that follows it (the resume playbook runs one at once).
    module(management, "gitops_suspend", dict(namespace=namespace, name="podinfo", state="resumed"))
    unused, rows = table(management, namespace)
    assert rows[0]["SUSPENDED"] == "false"
    synced = [{"cluster": c, "status": "Applied", "counts": {"configured": 1, "unchanged": 2}} for c in placed]
    module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION_2, placed=placed,
                                              results=synced))
    unused, rows = table(management, namespace, "-o", "wide")
    assert {k: rows[0][k] for k in ("READY", "SUSPENDED", "REVISION", "PROPAGATION")} == {
        "READY": "True", "SUSPENDED": "false", "REVISION": REVISION_2, "PROPAGATION": "True"}
    obj = fks(management, namespace)
    assert [(c["type"], c["status"], c["reason"]) for c in obj["status"]["conditions"]] == [
        ("Propagation", "True", "Propagated"), ("Ready", "True", "Succeeded")]

