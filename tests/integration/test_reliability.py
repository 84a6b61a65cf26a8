"""Faults, bad input and security cases of docs/reliability.md that no other test file proves.

Black-box at the playbook level (ansible-playbook playbooks/sources.yml and sync.yml, as users run them) or at the
public module level (git_render), against the session's real kube-apiservers and git servers. Faults are real:
an apiserver process is stopped and started again, a git ref is deleted on the server, a URL points at a closed
port. Assertions read the clusters with the kubernetes client, never with the code under test.
"""

import base64
import glob
import os
import stat
import subprocess
import time

import pytest
import yaml
from kubernetes.client.rest import ApiException

from kube import get_or_none, service_account_kubeconfig, unique_name
from playbook import kill_tree, run_module
from tools.localenv.inventory import EXAMPLE_APP
from test_playbooks import (  # noqa: I100 (the playbook-level environment and helpers are shared)
    APP_OBJECTS, ATTACHED, FK, MANAGEMENT, OWNER_LABEL, SOURCE, Env, failed, failure_details, failure_messages, ok,
    playbook)
from tools.localenv.processes import free_port

FIELD_MANAGER = "gitops-federation"  # the engine's server-side apply field manager


@pytest.fixture(scope="module")
def env(clusters, admin_clients, git_servers, tmp_path_factory):
    return Env(clusters, admin_clients, git_servers, str(tmp_path_factory.mktemp("reliability")))


def owned_refs(project, host):
    """(kind, name) of every object of the app kinds in the project namespace carrying our owner label."""
    refs = []
    for api_version, kind, unused_name in APP_OBJECTS:
        resource = project.env.clients[host].resources.get(api_version=api_version, kind=kind)
        items = resource.get(namespace=project.namespace, label_selector=OWNER_LABEL).to_dict()["items"]
        refs += [(kind, item["metadata"]["name"]) for item in items
                 if "gitops.federation/inventory" not in (item["metadata"].get("labels") or {})]
    return sorted(set(refs))


def inventory_refs(project, host):
    """(kind, name) of the app kinds the on-cluster inventory of the source lists."""
    configmap = project.inventory_configmap(host)
    assert configmap is not None, "no inventory on %s" % host
    entries = yaml.safe_load(configmap["data"]["entries"])
    kinds = set(kind for unused_version, kind, unused_name in APP_OBJECTS)
    return sorted(set((e["kind"], e["name"]) for e in entries if e["kind"] in kinds))


def _our_writes(live):
    """What changes when the sync writes an object and nothing else does: its uid (deleted and created again),
    and the times of the sync's field manager's entries. Not the resourceVersion: on attached-2, which runs
    kube-controller-manager, the Deployment controller updates the status of demo-app at any time."""
    if not live:
        return None
    meta = live["metadata"]
    return meta["uid"], sorted((m.get("operation"), m.get("time")) for m in meta.get("managedFields") or []
                               if m.get("manager") == FIELD_MANAGER and not m.get("subresource"))


def app_versions(project, host):
    return dict(((kind, name), _our_writes(project.get(host, api_version, kind, name)))
                for api_version, kind, name in APP_OBJECTS)


def status_conditions(project):
    return dict((c["type"], c) for c in (project.source().get("status") or {}).get("conditions") or [])


# -- faults -----------------------------------------------------------------------------------------------------


def test_a_dead_attached_apiserver_fails_only_its_cluster_and_the_next_run_converges(env, local_clusters):
    """attached-2's kube-apiserver process is stopped (a crash: etcd keeps its data) for one sync, then restarted."""
    project = env.project("dead")
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    dead = env.hosts[ATTACHED[1]].name
    local_clusters.stop_apiserver(dead)
    try:
        run = failed(playbook("sync", inventory))
    finally:
        local_clusters.start_apiserver(dead)
    # The live cluster got everything; the failure names the dead one only.
    assert owned_refs(project, ATTACHED[0]) == sorted((k, n) for unused, k, n in APP_OBJECTS)
    messages = " ".join(failure_messages(run))
    assert ATTACHED[1] in messages, messages
    status = project.source()["status"]
    entries = dict((c["name"], c) for c in status["clusters"])
    assert entries[ATTACHED[0]]["status"] == "Applied", entries
    assert entries[ATTACHED[1]]["status"] != "Applied", entries
    propagation = status_conditions(project)["Propagation"]
    assert propagation["status"] == "False" and ATTACHED[1] in propagation["message"], propagation
    assert ATTACHED[0] + " " not in propagation["message"], propagation

    before = app_versions(project, ATTACHED[0])
    ok(playbook("sync", inventory))
    for host in ATTACHED:  # converged: each object once, all of them in the inventory, nothing else of ours
        assert owned_refs(project, host) == sorted((k, n) for unused, k, n in APP_OBJECTS), host
        assert inventory_refs(project, host) == owned_refs(project, host), host
    assert app_versions(project, ATTACHED[0]) == before, "the rerun rewrote the cluster that had already converged"
    status = project.source()["status"]
    assert all(c["status"] == "Applied" for c in status["clusters"]), status["clusters"]
    assert status_conditions(project)["Propagation"]["status"] == "True"


BULK = 600  # ConfigMaps: enough for a sync to take seconds, so that a fault lands in the middle of its writes


def _bulk_commit(env, project):
    """Add BULK ConfigMaps to the project's app (base/bulk.yaml, listed in base/kustomization.yaml)."""
    bulk = "".join("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bulk-%04d\ndata:\n  n: \"%d\"\n"
                   % (i, i) for i in range(BULK))
    with open(os.path.join(EXAMPLE_APP, "base", "kustomization.yaml")) as handle:
        kustomization = yaml.safe_load(handle)
    kustomization["resources"].append("bulk.yaml")
    env.git.commit(project.repo, files={"base/bulk.yaml": bulk, "base/kustomization.yaml": yaml.safe_dump(kustomization)})
    return sorted([(k, n) for unused, k, n in APP_OBJECTS] + [("ConfigMap", "bulk-%04d" % i) for i in range(BULK)])


def _bulk_refs(project, host):
    items = project.env.clients[host].resources.get(api_version="v1", kind="ConfigMap").get(
        namespace=project.namespace, label_selector=OWNER_LABEL).to_dict()["items"]
    return sorted(("ConfigMap", i["metadata"]["name"]) for i in items if i["metadata"]["name"].startswith("bulk-"))


def _all_refs(project, host):
    return sorted(set(owned_refs(project, host) + _bulk_refs(project, host)))


def _all_inventory_refs(project, host):
    configmap = project.inventory_configmap(host)
    assert configmap is not None, "no inventory on %s" % host
    return sorted(set((e["kind"], e["name"]) for e in yaml.safe_load(configmap["data"]["entries"])
                      if e["kind"] != "Namespace"))


def _when(condition, then, proc, timeout=300):
    """Poll condition() while proc runs; call then() once it holds. Returns whether it did before proc ended."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if condition():
            then()
            return True
        time.sleep(0.1)
    return False


def test_an_apiserver_killed_in_the_middle_of_a_sync_fails_only_its_cluster_and_the_next_run_converges(
        env, local_clusters):
    """attached-2's kube-apiserver is SIGKILLed while the sync is creating the source's objects there (requests in
    flight are cut), then started again for the next run."""
    project = env.project("crash")
    expected = _bulk_commit(env, project)
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    dead = env.hosts[ATTACHED[1]].name
    crashed = []

    def crash_mid_sync(proc):
        def crash():
            local_clusters.stop_apiserver(dead, crash=True)
            crashed.append(True)
        _when(lambda: len(_bulk_refs(project, ATTACHED[1])) >= 20, crash, proc)

    try:
        run = playbook("sync", inventory, during=crash_mid_sync)
    finally:
        local_clusters.start_apiserver(dead)
    assert crashed, "the sync ended before attached-2 was written to:\n%s" % run.output[-3000:]
    failed(run)
    written = _bulk_refs(project, ATTACHED[1])
    assert 20 <= len(written) < BULK, "not killed mid-sync: %d of %d objects were there" % (len(written), BULK)
    # The live cluster got everything; the failure and the status name the crashed one only.
    assert _all_refs(project, ATTACHED[0]) == expected
    messages = " ".join(failure_messages(run))
    assert ATTACHED[1] in messages, messages
    entries = dict((c["name"], c) for c in project.source()["status"]["clusters"])
    assert entries[ATTACHED[0]]["status"] == "Applied", entries
    assert entries[ATTACHED[1]]["status"] != "Applied", entries
    assert ATTACHED[1] in status_conditions(project)["Propagation"]["message"]

    ok(playbook("sync", inventory))
    for host in ATTACHED:  # converged: each object once, all in the inventory, nothing else of ours
        assert _all_refs(project, host) == expected, host
        assert _all_inventory_refs(project, host) == expected, host
    assert all(c["status"] == "Applied" for c in project.source()["status"]["clusters"])


def test_an_unreachable_management_cluster_fails_before_any_attached_cluster_is_touched(env):
    project = env.project("nomgmt")
    ok(playbook("sources", project.inventory()))
    kubeconfig = env.unreachable_kubeconfig(MANAGEMENT)
    with open(kubeconfig) as handle:
        server = yaml.safe_load(handle)["clusters"][0]["cluster"]["server"]
    inventory = project.inventory(host_vars={MANAGEMENT: {"kubeconfig": kubeconfig}})
    run = failed(playbook("sync", inventory))
    management = [r for r in run.results if r.get("failed") and r["_host"] == MANAGEMENT]
    assert management, run.output[-4000:]
    message = str(management[0].get("msg"))
    assert message.startswith("management cluster (API server %s): cannot reach it: cannot connect" % server), message
    assert "stopped before touching any attached cluster" in message, message
    # The attached clusters' plays do nothing and fail with nothing of their own.
    assert not [r for r in run.results if r.get("failed") and r["_host"] != MANAGEMENT], failure_details(run)
    for host in ATTACHED:
        assert get_or_none(env.clients[host], "v1", "Namespace", project.namespace) is None, host


def _broken_source_keeps_what_was_applied(env, project, inventory, break_it, why):
    before = dict((host, app_versions(project, host)) for host in ATTACHED)
    revision = project.source()["status"]["lastAppliedRevision"]
    break_it()
    run = failed(playbook("sync", inventory))
    for host in ATTACHED:  # nothing applied, nothing pruned
        assert app_versions(project, host) == before[host], host
    status = project.source()["status"]
    assert status["lastAppliedRevision"] == revision
    assert all(c["revision"] == revision for c in status["clusters"]), status["clusters"]
    text = " ".join([c.get("message") or "" for c in status.get("conditions") or []] + failure_messages(run))
    assert why in text, text
    return status


def test_a_ref_that_disappeared_applies_and_prunes_nothing_and_status_says_why(env):
    project = env.project("noref")
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))
    bare = os.path.join(env.git.repos_dir, project.repo + ".git")
    delete = lambda: subprocess.run(["git", "update-ref", "-d", "refs/heads/main"], cwd=bare, check=True)  # noqa
    _broken_source_keeps_what_was_applied(env, project, inventory, delete, "main")


def test_a_git_server_that_is_down_applies_and_prunes_nothing_and_status_says_why(env):
    project = env.project("nogit")
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))
    closed = "http://127.0.0.1:%d/%s.git" % (free_port(), project.repo)

    def server_gone():
        project.spec["sources"][0]["url"] = closed
        ok(playbook("sources", project.inventory()))

    _broken_source_keeps_what_was_applied(env, project, project.inventory(), server_gone, "127.0.0.1")


# -- bad input: limits on a repository and its render ----------------------------------------------------------


def _fast_import(bare, files, branch="main"):
    """Commit {path: (blob mark or bytes)} onto an empty branch of a bare repository with git fast-import: a tree of
    100,000 entries of one blob, or one blob of 1 GiB of zeros streamed in chunks, costs seconds, not a work tree."""
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=bare, stdin=subprocess.PIPE)
    blobs = {}
    for path, content in files.items():
        key = content if isinstance(content, tuple) else ("bytes", content)
        if key in blobs:
            continue
        blobs[key] = len(blobs) + 1
        if key[0] == "zeros":
            proc.stdin.write(b"blob\nmark :%d\ndata %d\n" % (blobs[key], key[1]))
            chunk = b"\0" * (8 * 1024 * 1024)
            left = key[1]
            while left:
                proc.stdin.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))
        else:
            proc.stdin.write(b"blob\nmark :%d\ndata %d\n" % (blobs[key], len(key[1])) + key[1])
        proc.stdin.write(b"\n")
    proc.stdin.write(b"commit refs/heads/%s\ncommitter t <t@example.com> 0 +0000\ndata 4\nbig\n" % branch.encode())
    for path, content in files.items():
        key = content if isinstance(content, tuple) else ("bytes", content)
        proc.stdin.write(b"M 100644 :%d %s\n" % (blobs[key], path.encode()))
    proc.stdin.write(b"\n")
    proc.stdin.close()
    assert proc.wait() == 0


def _huge_repo(git_servers, files):
    repo = unique_name("huge")
    bare = os.path.join(git_servers.repos_dir, repo + ".git")
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", bare], check=True)
    _fast_import(bare, files)
    return repo


CM_TEXT = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"


@pytest.mark.parametrize("case, files, limit", [
    ("100,000 files", dict(("d%03d/f%06d.yaml" % (i // 1000, i), CM_TEXT) for i in range(100000)),
     "more than 20000 files, more than the limit limits.max_files=20000"),
    ("a 54 MiB render", dict(("part-%d.yaml" % i, b"# padding\n" * (9 * 1024 * 1024 // 10)) for i in range(6)),
     "its manifest files have more than 52428800 bytes, more than the limit limits.max_render_size=52428800"),
], ids=["100000-files", "54MiB-render"])
def test_a_huge_repository_or_render_is_refused_naming_its_limit(git_servers, tmp_path, case, files, limit):
    repo = _huge_repo(git_servers, files)
    cache = tmp_path / "cache"
    started = time.monotonic()
    result, unused_run = run_module("gitops.federation.git_render", {
        "url": git_servers.http_url(repo), "username": git_servers.username, "password": git_servers.password,
        "cache_dir": str(cache), "dest": str(tmp_path / "b.yaml")})
    elapsed = time.monotonic() - started
    assert result["failed"] is True, result
    assert limit in result["msg"] and "nothing was written or applied" in result["msg"], result["msg"]
    assert "gitops_limits." in result["msg"], result["msg"]
    assert not (tmp_path / "b.yaml").exists()
    checked_out = [p for p in glob.glob(str(cache / "*" / "*")) if not p.endswith(".git")]
    if "render" not in case:  # refused from the commit's tree: nothing checked out
        assert checked_out == [], checked_out
    assert elapsed < 120, "%s took %.0fs" % (case, elapsed)


def test_a_source_past_a_limit_applies_and_prunes_nothing_and_status_names_the_limit(env):
    project = env.project("limit")
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))
    big = "# " + "x" * 1000 + "\n"
    commit = lambda: env.git.commit(project.repo, files={"overlays/attached-1/big.yaml": big * 11 * 1024})  # noqa
    _broken_source_keeps_what_was_applied(env, project, inventory, commit, "limits.max_file_size")
    # Raised by the operator (gitops_limits), the same commit syncs.
    ok(playbook("sync", inventory, extra_vars={"gitops_limits": {"max_file_size": 12 * 1024 * 1024}}))
    assert all(c["status"] == "Applied" for c in project.source()["status"]["clusters"])


# -- bad input: option injection into git -----------------------------------------------------------------------


@pytest.mark.parametrize("ref, message", [
    ({"branch": "--upload-pack=touch {marker}"}, "ref.branch"),
    ({"tag": "-c core.sshCommand=touch {marker}"}, "ref.tag"),
    ({"commit": "--output={marker}"}, "ref.commit"),
])
def test_refs_cannot_inject_options_into_git(git_servers, tmp_path, ref, message):
    repo = unique_name("inject")
    git_servers.create_repo(repo, files={"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    marker = tmp_path / "pwned"
    ref = dict((k, v.format(marker=marker)) for k, v in ref.items())
    result, unused_run = run_module("gitops.federation.git_render", {
        "url": git_servers.http_url(repo), "ref": ref, "username": git_servers.username,
        "password": git_servers.password, "cache_dir": str(tmp_path / "cache"), "dest": str(tmp_path / "b.yaml")})
    assert result["failed"] is True, result
    assert message in result["msg"], result["msg"]
    assert not marker.exists()
    assert not (tmp_path / "b.yaml").exists()


def test_a_path_starting_with_a_dash_is_a_path_not_an_option(git_servers, tmp_path):
    repo = unique_name("dashpath")
    git_servers.create_repo(repo, files={"--output/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    result, unused_run = run_module("gitops.federation.git_render", {
        "url": git_servers.http_url(repo), "path": "--output", "username": git_servers.username,
        "password": git_servers.password, "cache_dir": str(tmp_path / "cache"), "dest": str(tmp_path / "b.yaml")})
    assert result.get("failed") is not True, result
    bundle = [o for o in yaml.safe_load_all((tmp_path / "b.yaml").read_text()) if o]
    assert [o["metadata"]["name"] for o in bundle] == ["a"], bundle


# -- security: namespace-scoped credentials and TLS verification on attached clusters ---------------------------


def test_sync_works_with_credentials_scoped_to_the_project_namespace(env, tmp_path):
    """attached-2 is reached through a ServiceAccount token whose Role covers the project namespace only."""
    project = env.project("scoped")
    host = ATTACHED[1]
    kubeconfig, unused_token = service_account_kubeconfig(
        env.hosts[host], env.clients[host], project.namespace, "gitops", str(tmp_path / "scoped.kubeconfig"))
    inventory = project.inventory(host_vars={host: {"kubeconfig": kubeconfig}})
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))
    assert owned_refs(project, host) == sorted((k, n) for unused, k, n in APP_OBJECTS)
    assert project.deployment(host)["spec"]["replicas"] == 2
    entries = dict((c["name"], c) for c in project.source()["status"]["clusters"])
    assert entries[host]["status"] == "Applied", entries


def _kubeconfig_with_ca(env, host, ca_file, path):
    with open(env.hosts[host].kubeconfig) as handle:
        config = yaml.safe_load(handle)
    with open(ca_file, "rb") as handle:
        config["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(handle.read()).decode()
    with open(path, "w") as handle:
        yaml.safe_dump(config, handle)
    return path


def test_tls_is_verified_by_default_and_validate_certs_false_turns_it_off(env, tmp_path):
    """attached-2's kubeconfig trusts another cluster's CA: refused by default, accepted with validate_certs: false."""
    project = env.project("tls")
    host = ATTACHED[1]
    wrong_ca = _kubeconfig_with_ca(env, host, env.hosts[ATTACHED[0]].ca_file, str(tmp_path / "wrong-ca.kubeconfig"))
    inventory = project.inventory(host_vars={host: {"kubeconfig": wrong_ca}})
    ok(playbook("sources", inventory))
    run = failed(playbook("sync", inventory))
    assert any("certificate" in m.lower() or "ssl" in m.lower() for m in failure_messages(run)), failure_messages(run)
    assert get_or_none(env.clients[host], "v1", "Namespace", project.namespace) is None
    assert project.deployment(ATTACHED[0]) is not None  # the other cluster is not held back

    inventory = project.inventory(host_vars={host: {"kubeconfig": wrong_ca, "validate_certs": False}})
    ok(playbook("sync", inventory))
    assert project.deployment(host) is not None
    assert get_or_none(env.management, *FK, SOURCE, project.namespace) is not None


# -- the apply engine's public module under faults (cluster_sync) ----------------------------------------------


def _configmap(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {"k": name}}


def _cluster_sync(cluster, namespace, manifests, **args):
    params = dict(kubeconfig=cluster.kubeconfig, owner="gitops/%s/app" % namespace, namespace=namespace,
                  manifests=manifests)
    params.update(args)
    result, unused_run = run_module("gitops.federation.cluster_sync", params)
    return result


def _ours(client, namespace):
    items = client.resources.get(api_version="v1", kind="ConfigMap").get(
        namespace=namespace, label_selector=OWNER_LABEL).to_dict()["items"]
    return sorted(i["metadata"]["name"] for i in items if "gitops.federation/inventory" not in i["metadata"]["labels"])


def test_a_quota_rejection_names_the_object_and_the_outcome_is_stated_honestly(clusters, admin_clients, namespace):
    # A cluster that runs kube-controller-manager: its quota controller computes the quota's status, without
    # which the API server's ResourceQuota admission has nothing to count against.
    cluster = clusters[1]
    client = admin_clients[cluster.name]
    quotas = client.resources.get(api_version="v1", kind="ResourceQuota")
    quotas.create(namespace=namespace, body={
        "metadata": {"name": "few-configmaps"}, "spec": {"hard": {"count/configmaps": "3"}}})
    deadline = time.monotonic() + 120
    while not (quotas.get(name="few-configmaps", namespace=namespace).to_dict().get("status") or {}).get("hard"):
        assert time.monotonic() < deadline, "the quota controller never computed the quota's status"
        time.sleep(0.5)
    bundle = [_configmap("cm-%d" % i) for i in range(5)]
    result = _cluster_sync(cluster, namespace, bundle)
    assert result.get("failed") is True, result
    assert "quota" in result["msg"] and "ConfigMap" in result["msg"], result["msg"]
    live = _ours(client, namespace)
    reported = sorted(e["name"] for e in result.get("change_set") or [] if e.get("action") in ("created", "configured"))
    assert reported == live, (reported, live, result["msg"])  # what it says it wrote is what is there


def test_a_run_that_died_between_inventory_write_and_apply_is_adopted_and_pruned_next_time(
        clusters, admin_clients, namespace):
    """The engine records new objects in its inventory before creating them (docs/apply-engine.md), so a run killed
    mid-apply leaves an inventory listing objects that were created and objects that never were. The next run
    creates what is missing, prunes what left the bundle (created or not), and never touches a foreign object."""
    cluster = clusters[0]
    client = admin_clients[cluster.name]
    configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
    assert not _cluster_sync(cluster, namespace, [_configmap("kept")]).get("failed")
    died = _cluster_sync(cluster, namespace, [_configmap("kept"), _configmap("added"), _configmap("dropped"),
                                              _configmap("never-created")])
    assert not died.get("failed"), died
    # Killed before "added" and "never-created" were created: remove them as if they had never been.
    for name in ("added", "never-created"):
        configmaps.delete(namespace=namespace, name=name)
    configmaps.create(namespace=namespace, body=_configmap("foreign"))
    after = _cluster_sync(cluster, namespace, [_configmap("kept"), _configmap("added")])
    assert not after.get("failed"), after
    assert _ours(client, namespace) == ["added", "kept"]
    assert get_or_none(client, "v1", "ConfigMap", "foreign", namespace) is not None
    inventory = [i for i in configmaps.get(namespace=namespace, label_selector="gitops.federation/inventory=true")
                 .to_dict()["items"]][0]
    assert sorted(e["name"] for e in yaml.safe_load(inventory["data"]["entries"])) == ["added", "kept"]


# The module runs in Ansible's worker, as in the playbooks (their inventories set this interpreter).
IN_WORKER = {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}


def test_a_sync_whose_controller_is_killed_mid_apply_is_adopted_and_pruned_by_the_next_run(
        clusters, admin_clients, namespace, tmp_path):
    """A real kill: ansible-playbook and every process under it are SIGKILLed (an OOM kill, a lost AWX node) while
    the engine creates a bundle's objects. The next run, with half the bundle, creates what is missing, prunes what
    the killed run created and the bundle no longer holds, and never touches a foreign object."""
    cluster = clusters[0]
    client = admin_clients[cluster.name]
    configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
    assert not _cluster_sync(cluster, namespace, [_configmap("kept")]).get("failed")
    foreign = configmaps.create(namespace=namespace, body=_configmap("foreign")).to_dict()
    bundle = [_configmap("kept")] + [_configmap("bulk-%04d" % i) for i in range(BULK)]
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    killed = []

    def kill_mid_apply(proc):
        def kill():
            kill_tree(proc)
            killed.append(True)
        _when(lambda: len(_ours(client, namespace)) >= 1 + 20, kill, proc)

    result, run = run_module("gitops.federation.cluster_sync", dict(
        kubeconfig=cluster.kubeconfig, owner="gitops/%s/app" % namespace, namespace=namespace, manifests=bundle),
        env={"TMPDIR": str(tmpdir)}, during=kill_mid_apply, play_vars=IN_WORKER)
    assert killed, "the sync ended before it could be killed: %s" % run.output[-3000:]
    assert result is None, result  # killed: no result
    time.sleep(1)  # requests the API server had received are done
    written = _ours(client, namespace)
    assert 1 + 20 <= len(written) < 1 + BULK, "not killed mid-apply: %d of %d objects" % (len(written), 1 + BULK)
    # A killed run leaves the kubeconfig's key in its private directory (0700), for the next run to remove.
    left = [os.path.join(top, name) for top, unused, names in os.walk(str(tmpdir)) for name in names]
    assert left, "the kubeconfig's files were not where the killed run wrote them"
    for path in left:
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700, path

    kept = [_configmap("kept")] + bundle[1:1 + BULK // 2]
    result, run = run_module("gitops.federation.cluster_sync", dict(
        kubeconfig=cluster.kubeconfig, owner="gitops/%s/app" % namespace, namespace=namespace, manifests=kept),
        env={"TMPDIR": str(tmpdir)}, play_vars=IN_WORKER)
    assert not result.get("failed"), run.output[-3000:]
    expected = sorted(o["metadata"]["name"] for o in kept)
    assert _ours(client, namespace) == expected
    inventory = configmaps.get(namespace=namespace, label_selector="gitops.federation/inventory=true").to_dict()
    assert sorted(e["name"] for e in yaml.safe_load(inventory["items"][0]["data"]["entries"])) == expected
    now = configmaps.get(namespace=namespace, name="foreign").to_dict()
    assert now["metadata"]["resourceVersion"] == foreign["metadata"]["resourceVersion"], "the foreign object changed"
    assert os.listdir(str(tmpdir)) == [], "the next run did not remove the killed run's files"


def test_a_validating_admission_policy_rejection_names_the_object_and_nothing_is_written(
        clusters, admin_clients, namespace):
    """A ValidatingAdmissionPolicy (CEL, in the API server: no webhook) denies ConfigMaps labelled tier=forbidden
    in this namespace. The engine's server-side dry-run of the whole bundle meets the denial before any write."""
    cluster = clusters[1]
    client = admin_clients[cluster.name]
    policy = unique_name("no-forbidden-tier")
    client.resources.get(api_version="admissionregistration.k8s.io/v1", kind="ValidatingAdmissionPolicy").create(body={
        "metadata": {"name": policy},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                         "operations": ["CREATE", "UPDATE"],
                                                         "resources": ["configmaps"]}]},
                 "validations": [{"expression": "!has(object.metadata.labels) || !('tier' in object.metadata.labels)"
                                                " || object.metadata.labels['tier'] != 'forbidden'",
                                  "message": "tier=forbidden is not allowed here"}]}})
    client.resources.get(api_version="admissionregistration.k8s.io/v1",
                         kind="ValidatingAdmissionPolicyBinding").create(body={
        "metadata": {"name": policy},
        "spec": {"policyName": policy, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}}})
    denied = dict(_configmap("denied"), metadata={"name": "denied", "labels": {"tier": "forbidden"}})
    bundle = [_configmap("fine-1"), denied, _configmap("fine-2")]
    configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
    deadline = time.monotonic() + 60
    while True:  # the API server takes the new policy into account within a second or so
        try:
            configmaps.create(namespace=namespace, body=denied, dry_run="All")
        except ApiException as err:
            assert "tier=forbidden" in str(err.body), err.body
            break
        assert time.monotonic() < deadline, "the policy never took effect"
        time.sleep(0.5)
    result = _cluster_sync(cluster, namespace, bundle)
    assert result.get("failed") is True, result
    assert "ConfigMap/%s/denied" % namespace in result["msg"], result["msg"]
    assert "tier=forbidden is not allowed here" in result["msg"], result["msg"]
    assert "nothing was applied" in result["msg"], result["msg"]
    assert _ours(client, namespace) == [], "the valid objects of the bundle were written"
