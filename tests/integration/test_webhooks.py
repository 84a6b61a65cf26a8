"""Sync on push, for real: a real Gitea (built from the Go module proxy), its webhook registered by the
webhooks playbook, real signed deliveries to the scm_push listener run by the real ansible-rulebook (Java rule
engine), the sync playbook applying to two real attached clusters.

cluster-1 is the management cluster (``mgmt``); cluster-2 and cluster-3 are ``attached-1`` and ``attached-2``.
One project, one Gitea repository and one rulebook process serve the whole module; the tests run in file order
and each starts from what the previous one left (the last synced commit).
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time

import pytest
import yaml

from kube import get_or_none, unique_name
from playbook import ROOT, VENV_BIN, ansible_env, run_playbook
from tools.localenv.gitea import Gitea
from tools.localenv.inventory import EXAMPLE_APP
from tools.localenv.processes import free_port, log_tail

MANAGEMENT = "mgmt"
ATTACHED = ("attached-1", "attached-2")
SOURCE = "demo-app"
SECRET = "demo-git"
FK = ("types.kubefed.io/v1beta1", "FederatedKustomization")
SETTINGS = ("v1", "ConfigMap", "demo-app-settings")
SYNC_TASK = "Run gitops.federation.sync for the source"


@pytest.fixture(scope="module")
def gitea(tmp_path_factory):
    server = Gitea(str(tmp_path_factory.mktemp("gitea"))).start()
    yield server
    server.stop()


class World:
    """Clusters, Gitea, the project, the listener secret and the rulebook process."""

    def __init__(self, clusters, admin_clients, gitea, workdir):
        self.hosts = {MANAGEMENT: clusters[0], ATTACHED[0]: clusters[1], ATTACHED[1]: clusters[2]}
        self.clients = dict((host, admin_clients[cluster.name]) for host, cluster in self.hosts.items())
        self.gitea, self.workdir = gitea, workdir
        self.namespace, self.repo = unique_name("push"), unique_name("app")
        self.secret = secrets.token_urlsafe(24)
        self.port = free_port()
        self.listener = "http://127.0.0.1:%d/hooks" % self.port
        self.cache = os.path.join(workdir, "cache")
        self.rulebook = None
        self.rulebook_log = os.path.join(workdir, "rulebook.log")
        self.first_commit = gitea.create_repo(self.repo, source_dir=EXAMPLE_APP)
        project = {
            "namespace": self.namespace,
            "secrets": [{"name": SECRET, "username": gitea.username, "password": gitea.password,
                         "cluster_selector": {"matchLabels": {"env": "demo"}}}],
            "sources": [{
                "name": SOURCE, "url": gitea.http_url(self.repo), "ref": {"branch": "main"}, "secret": SECRET,
                "scm": "gitea", "path": "overlays/attached-1", "cluster_selector": {"matchLabels": {"env": "demo"}},
                "substitute": {"CLUSTER_NAME": "an attached cluster"},
                "overrides": [{"cluster_name": "attached-2", "cluster_overrides": [
                    {"op": "replace", "path": "/spec/path", "value": "overlays/attached-2"}]}],
            }],
        }
        hosts = {h: {"kubeconfig": c.kubeconfig} for h, c in self.hosts.items()}
        for host in ATTACHED:
            hosts[host]["cluster_labels"] = {"env": "demo", "name": host}
        inventory = {"all": {"vars": {"ansible_connection": "local", "gitops_projects": [project]},
                             "children": {"management": {"hosts": {MANAGEMENT: hosts.pop(MANAGEMENT)}},
                                          "attached": {"hosts": hosts}}}}
        self.inventory = os.path.join(workdir, "hosts.yml")
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(inventory, handle, sort_keys=False)

    def env(self):
        return ansible_env({"GITOPS_WEBHOOK_SECRET": self.secret, "GITOPS_FEDERATION_CACHE": self.cache})

    def playbook(self, name, extra_vars=None):
        run = run_playbook(os.path.join(ROOT, "playbooks", name + ".yml"), inventory=self.inventory,
                           extra_vars=extra_vars, env={"GITOPS_WEBHOOK_SECRET": self.secret,
                                                       "GITOPS_FEDERATION_CACHE": self.cache})
        assert run.returncode == 0, run.output[-6000:]
        return run

    # -- the rulebook ---------------------------------------------------------------------------

    def start_rulebook(self):
        variables = os.path.join(self.workdir, "rulebook-vars.yml")
        with open(variables, "w") as handle:
            yaml.safe_dump({"gitops_webhook_port": self.port, "gitops_webhook_path": "/hooks"}, handle)
        env = self.env()
        env["ANSIBLE_STDOUT_CALLBACK"] = "default"
        log = open(self.rulebook_log, "ab")
        self.rulebook = subprocess.Popen(
            [os.path.join(VENV_BIN, "ansible-rulebook"), "--rulebook", "gitops.federation.sync_on_push",
             "-i", self.inventory, "--vars", variables, "-v"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.rulebook.poll() is None, "ansible-rulebook exited:\n" + log_tail(self.rulebook_log, 60)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("the listener did not open port %d:\n%s" % (self.port, log_tail(self.rulebook_log, 60)))

    def stop_rulebook(self):
        if self.rulebook and self.rulebook.poll() is None:
            os.killpg(self.rulebook.pid, 15)
            try:
                self.rulebook.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.rulebook.pid, 9)
                self.rulebook.wait()

    def log(self):
        with open(self.rulebook_log, errors="replace") as handle:
            return handle.read()

    def wait_log(self, pattern, count=1, timeout=180):
        """Wait until pattern occurs count times in the rulebook output; return the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if len(re.findall(pattern, text)) >= count:
                return text
            assert self.rulebook.poll() is None, "ansible-rulebook exited:\n" + text[-6000:]
            time.sleep(0.5)
        raise AssertionError("%r not seen %d times in %ss; rulebook output:\n%s" % (pattern, count, timeout,
                                                                                   self.log()[-8000:]))

    # -- what the clusters say ------------------------------------------------------------------

    def greeting(self, host):
        live = get_or_none(self.clients[host], *SETTINGS, self.namespace)
        return live and live["data"].get("GREETING")

    def source(self):
        return get_or_none(self.clients[MANAGEMENT], *FK, SOURCE, self.namespace)

    def revision(self):
        return ((self.source() or {}).get("status") or {}).get("lastAppliedRevision") or ""

    def applied_events(self):
        """(first timestamp, message) of the Applied events on the source, oldest first."""
        items = self.clients[MANAGEMENT].resources.get(api_version="v1", kind="Event").get(
            namespace=self.namespace).to_dict()["items"]
        ours = [e for e in items if e["involvedObject"]["kind"] == FK[1] and e["reason"] == "Applied"]
        return sorted((e.get("firstTimestamp") or e["metadata"]["creationTimestamp"], e["message"]) for e in ours)

    def wait_applied(self, commit, greeting, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if commit in self.revision() and all(self.greeting(h) == greeting for h in ATTACHED):
                return time.monotonic()
            time.sleep(0.25)
        raise AssertionError("commit %s not applied: revision %r, greetings %r; rulebook output:\n%s"
                             % (commit, self.revision(), [self.greeting(h) for h in ATTACHED], self.log()[-8000:]))

    # -- pushes ---------------------------------------------------------------------------------

    def push_greeting(self, greeting, branch="main"):
        """Commit a new greeting (the app's ConfigMap) and push it to Gitea; return the commit."""
        path = os.path.join(EXAMPLE_APP, "base", "configmap.yaml")
        with open(path) as handle:
            text = handle.read()
        changed = re.sub(r"GREETING: .*", "GREETING: %s" % json.dumps(greeting), text)
        assert changed != text, "examples/demo-app/base/configmap.yaml has no GREETING line"
        return self.gitea.commit(self.repo, files={"base/configmap.yaml": changed}, message=greeting, branch=branch)

    def post(self, body, headers):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", "/hooks", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def world(clusters, admin_clients, gitea, tmp_path_factory):
    world = World(clusters, admin_clients, gitea, str(tmp_path_factory.mktemp("webhooks")))
    world.playbook("sources")
    world.playbook("sync")
    world.initial_greeting = world.greeting(ATTACHED[0])
    assert world.initial_greeting, "the first sync did not apply the app"
    yield world
    world.stop_rulebook()


def gitea_payload(world, commit, ref="refs/heads/main"):
    return json.dumps({"ref": ref, "before": "0" * 40, "after": commit,
                       "repository": {"clone_url": world.gitea.http_url(world.repo), "default_branch": "main",
                                      "html_url": world.gitea.http_url(world.repo)[:-4]}}).encode()


def test_webhooks_playbook_registers_the_hook_on_gitea_idempotently(world):
    first = world.playbook("webhooks", {"gitops_webhook_url": world.listener})
    results = [r for r in first.results if r["_task"].endswith("Create or update the push webhook of each source's "
                                                                "repository")]
    assert [i["action"] for i in results[0]["results"]] == ["created"], results
    hooks = world.gitea.hooks(world.repo)
    assert len(hooks) == 1
    assert hooks[0]["config"]["url"].startswith(world.listener + "?gitops-secret-id=")
    assert hooks[0]["config"]["content_type"] == "json" and hooks[0]["events"] == ["push"] and hooks[0]["active"]
    assert world.secret not in first.output and world.gitea.password not in first.output

    second = world.playbook("webhooks", {"gitops_webhook_url": world.listener})
    results = [r for r in second.results if r["_task"].endswith("Create or update the push webhook of each source's "
                                                                 "repository")]
    assert [i["action"] for i in results[0]["results"]] == ["unchanged"]
    assert not results[0]["changed"]
    assert [h["id"] for h in world.gitea.hooks(world.repo)] == [hooks[0]["id"]]


def test_a_push_to_gitea_is_applied_on_both_clusters_and_in_status(world):
    world.start_rulebook()
    commit = world.push_greeting("pushed through a webhook")
    pushed = time.monotonic()
    world.wait_applied(commit, "pushed through a webhook")
    latency = time.monotonic() - pushed
    status = world.source()["status"]
    assert commit in status["lastAppliedRevision"]
    for cluster in status["clusters"]:
        assert commit in cluster["revision"], cluster
    assert any(commit in message for _, message in world.applied_events())
    # The audit trail names what started the sync: the push, its commit and the SCM's delivery.
    assert any("[push of " in message and " at %s (gitea delivery " % commit[:12] in message
               for _, message in world.applied_events()), world.applied_events()
    text = world.log()
    assert world.secret not in text and world.gitea.password not in text
    print("push-to-applied latency (2 attached clusters): %.1fs" % latency)


def test_a_bad_or_missing_signature_gets_401_and_changes_nothing(world):
    # A real new commit on main whose webhook is not delivered (the hook is switched off while it is pushed),
    # so a forged delivery for it would change the clusters if it were accepted.
    hook = world.gitea.hooks(world.repo)[0]
    world.gitea.request("PATCH", "/repos/%s/%s/hooks/%d" % (world.gitea.username, world.repo, hook["id"]),
                        {"active": False})
    before_revision, before_events = world.revision(), world.applied_events()
    before_greeting = world.greeting(ATTACHED[0])
    commit = world.push_greeting("forged delivery")
    body = gitea_payload(world, commit)
    good = hmac.new(world.secret.encode(), body, hashlib.sha256).hexdigest()
    bad = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    base = {"Content-Type": "application/json", "X-Gitea-Event": "push", "X-Gitea-Delivery": "forged"}
    assert world.post(body, base)[0] == 401
    assert world.post(body, dict(base, **{"X-Gitea-Signature": bad}))[0] == 401
    assert world.post(body, dict(base, **{"X-Gitea-Signature": good[:-2] + "00"}))[0] == 401
    assert world.post(body, dict(base, **{"X-Hub-Signature-256": "sha256=" + good}))[0] == 401
    time.sleep(5)
    assert world.revision() == before_revision and world.applied_events() == before_events
    assert all(world.greeting(h) == before_greeting for h in ATTACHED)
    assert "forged delivery" not in world.log()

    # The webhooks playbook puts the hook back (active) ...
    run = world.playbook("webhooks", {"gitops_webhook_url": world.listener})
    assert "updated" in run.stdout
    # ... and the same delivery, correctly signed, is applied: the refusal above was the signature's doing.
    assert world.post(body, dict(base, **{"X-Gitea-Signature": good}))[0] == 202
    world.wait_applied(commit, "forged delivery")


def test_a_push_to_a_branch_no_source_follows_triggers_no_sync(world):
    syncs_before = world.log().count(SYNC_TASK)
    revision, events = world.revision(), world.applied_events()
    commit = world.push_greeting("on a feature branch", branch="feature")
    text = world.wait_log(r"push of refs/heads/feature at %s" % commit)
    # The glue reported the push and matched nothing: no sync task ran, nothing changed.
    time.sleep(2)
    text = world.log()
    assert text.count(SYNC_TASK) == syncs_before, text[-6000:]
    assert re.search(r"push of refs/heads/feature at %s.*sync nothing" % commit, text, re.S)
    assert world.revision() == revision and world.applied_events() == events


def test_two_quick_pushes_end_with_the_later_commit_in_one_or_two_syncs(world):
    syncs_before = world.log().count("push of refs/heads/main at")
    runs_before = len(re.findall(r"TASK \[gitops\.federation\.sync_on_push : %s\]" % re.escape(SYNC_TASK),
                                 world.log()))
    first = world.push_greeting("first of two")
    second = world.push_greeting("second of two")
    world.wait_applied(second, "second of two")
    text = world.wait_log(r"push of refs/heads/main at %s" % second)
    # Both deliveries were handled; give a follow-up sync (if any) the time to finish before counting.
    world.wait_log(r"push of refs/heads/main at %s" % first)
    time.sleep(3)
    text = world.log()
    assert text.count("push of refs/heads/main at") - syncs_before == 2
    runs = len(re.findall(r"TASK \[gitops\.federation\.sync_on_push : %s\]" % re.escape(SYNC_TASK), text)) - runs_before
    assert 1 <= runs <= 2, text[-8000:]
    # Never an interleaving: the newest commit is what stays applied, and no event applies the first commit
    # after the second.
    assert second in world.revision()
    assert all(world.greeting(h) == "second of two" for h in ATTACHED)
    order = [m for _, m in world.applied_events() if first in m or second in m]
    if any(first in m for m in order):
        assert max(i for i, m in enumerate(order) if first in m) < min(i for i, m in enumerate(order) if second in m)


def test_the_listener_survives_1000_malformed_requests_and_serves_a_good_one(world):
    hook_base = {"Content-Type": "application/json", "X-Gitea-Event": "push", "X-Gitea-Delivery": "junk"}
    statuses = set()
    connection = http.client.HTTPConnection("127.0.0.1", world.port, timeout=30)
    for number in range(1000):
        kind = number % 5
        body = b'{"ref": "refs/heads/main", "after": %d' % number
        headers = dict(hook_base)
        if kind == 0:  # unsigned
            pass
        elif kind == 1:  # signed but not JSON
            headers["X-Gitea-Signature"] = hmac.new(world.secret.encode(), body, hashlib.sha256).hexdigest()
        elif kind == 2:  # wrong content type
            headers["Content-Type"] = "text/plain"
        elif kind == 3:  # binary garbage, wrong signature
            body = os.urandom(64)
            headers["X-Gitea-Signature"] = "zz"
        else:  # signed JSON that is no push (no ref, no commit); bodies over the limit: see the unit tests
            body = b'{"number": %d}' % number
            headers["X-Gitea-Signature"] = hmac.new(world.secret.encode(), body, hashlib.sha256).hexdigest()
        connection.request("POST", "/hooks", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        statuses.add(response.status)
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", world.port, timeout=30)
    connection.close()
    assert statuses == {400, 401, 415}, statuses
    assert world.rulebook.poll() is None
    commit = world.push_greeting("after the junk")
    world.wait_applied(commit, "after the junk")


# -- the glue playbook alone, driven by hand-made pushes against the plain git server --------------------------


@pytest.fixture(scope="module")
def plain(clusters, admin_clients, git_servers, tmp_path_factory):
    from test_playbooks import Env
    return Env(clusters, admin_clients, git_servers, str(tmp_path_factory.mktemp("glue")))


def test_sync_on_push_playbook_syncs_matches_coalesces_and_ignores_other_branches(plain, tmp_path):
    from test_playbooks import ok, playbook
    project = plain.project()
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))
    commit = plain.git.commit(project.repo, files={"extra.txt": "x"}, message="more")
    push = {"ref": "refs/heads/main", "commit": commit, "default_branch": "main", "received_at": time.time(),
            "repository": {"urls": [plain.git.http_url(project.repo)]}, "scm": "generic", "delivery": "d1"}
    env = {"GITOPS_FEDERATION_CACHE": str(tmp_path / "cache")}
    path = os.path.join(ROOT, "playbooks", "sync_on_push.yml")

    run = run_playbook(path, inventory=inventory, extra_vars={"gitops_push": push}, env=env, callback="default")
    assert run.returncode == 0, run.output[-5000:]
    assert "sync ['demo-app']" in run.output
    assert commit in project.source()["status"]["lastAppliedRevision"]

    # The same push again: the sync that just ran started after it arrived, so it is covered.
    run = run_playbook(path, inventory=inventory, extra_vars={"gitops_push": push}, env=env, callback="default")
    assert run.returncode == 0 and "covered by the sync started at" in run.output, run.output[-3000:]
    assert SYNC_TASK not in run.output

    # A branch no source follows, and another repository: nothing.
    for other in (dict(push, ref="refs/heads/other", received_at=time.time()),
                  dict(push, repository={"urls": [plain.git.http_url("no-such-repo")]}, received_at=time.time())):
        run = run_playbook(path, inventory=inventory, extra_vars={"gitops_push": other}, env=env, callback="default")
        assert run.returncode == 0 and "sync nothing" in run.output, run.output[-3000:]
