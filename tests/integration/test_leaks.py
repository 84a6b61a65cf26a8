"""No credential in any output: every playbook, at default verbosity, -v and -vvv, each with a failing item.

One project with an HTTPS secret (password) and an SSH secret (private key), a good source, a source that fails
to render (missing path, fetched over SSH) and, for sources.yml, a source that fails to declare (a ref with a
branch and a tag). The management cluster is reached with a ServiceAccount token (host/api_key, as the AWX
layout does), so its token is a credential to look for too. Runs use the default callback (what a terminal
shows) at default verbosity and -vvv, and the json callback at -v (every result in full, as AWX stores job
events). Files left in the cache directory (clones, bundles) are scanned as well.

Black-box on purpose: the playbooks are run and their output scanned, whatever the roles do inside.
"""

import base64
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from kube import ensure_namespace, unique_name
from playbook import run_module
from test_playbooks import ATTACHED, MANAGEMENT, SOURCE, Env, playbook
from tools.localenv.inventory import EXAMPLE_APP, demo_project

SSH_SECRET = "ssh-git"
BROKEN = "broken"
# (verbosity, callback) of the runs of each playbook.
RUNS = ((3, "default"), (1, "ansible.posix.json"), (0, "default"))


def read(path):
    with open(path) as handle:
        return handle.read()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def cluster_admin_token(cluster, client, name):
    """A token of a ServiceAccount bound to cluster-admin (the sources playbook installs CRDs)."""
    ensure_namespace(client, "kube-system")
    client.resources.get(api_version="v1", kind="ServiceAccount").create(
        body={"metadata": {"name": name}}, namespace="kube-system")
    client.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRoleBinding").create(body={
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}]})
    from kubernetes import client as k8s_client
    core = k8s_client.CoreV1Api(client.client)
    return core.create_namespaced_service_account_token(name, "kube-system", {
        "spec": {"audiences": [], "expirationSeconds": 3600}}).status.token


class LeakScan:
    """The project, its inventory, and every form of its credentials that must never be shown."""

    def __init__(self, env, workdir):
        self.env = env
        git = env.git
        self.namespace, repo = unique_name("leak"), unique_name("repo")
        git.create_repo(repo, source_dir=EXAMPLE_APP)
        spec = demo_project(git, repo=repo, namespace=self.namespace, source=SOURCE, secret="demo-git")
        spec["secrets"].append({"name": SSH_SECRET, "ssh_private_key": read(git.deploy_key),
                                "known_hosts": read(git.known_hosts), "cluster_selector": {"matchLabels": {"env": "demo"}}})
        spec["sources"].append({"name": BROKEN, "url": git.ssh_url(repo), "ref": {"branch": "main"},
                                "secret": SSH_SECRET, "path": "no-such-directory",
                                "cluster_selector": {"matchLabels": {"env": "demo"}}})
        self.spec = spec
        # sources.yml only: an entry the gitops_source module refuses (a ref is a branch or a tag, not both).
        self.bad_ref = dict(spec, sources=spec["sources"] + [{
            "name": "bad-ref", "url": git.http_url(repo), "ref": {"branch": "main", "tag": "v1"}, "secret": "demo-git"}])
        management = env.hosts[MANAGEMENT]
        self.token = cluster_admin_token(management, env.management, unique_name("leak-admin"))
        self.management_vars = {"kubeconfig": None, "host": management.server, "api_key": self.token,
                                "ca_cert": management.ca_file}
        self.cache = os.path.join(workdir, "cache")
        key_lines = [line for line in read(git.deploy_key).splitlines() if line and not line.startswith("-----")]
        # The first body line is the same in every OpenSSH ed25519 key ("openssh-key-v1", cipher none...).
        self.secrets = [git.password, b64(git.password), b64("%s:%s" % (git.username, git.password)),
                        self.token] + key_lines[1:]

    def inventory(self, spec=None, host_vars=None):
        hosts = {MANAGEMENT: self.management_vars}
        hosts.update(host_vars or {})
        path = self.env.inventory([spec or self.spec], host_vars=hosts)
        # The management host reaches its cluster with host/api_key/ca_cert only: drop its kubeconfig.
        with open(path) as handle:
            inventory = yaml.safe_load(handle)
        inventory["all"]["children"]["management"]["hosts"][MANAGEMENT].pop("kubeconfig", None)
        with open(path, "w") as handle:
            yaml.safe_dump(inventory, handle, sort_keys=False)
        return path

    def run(self, name, inventory, extra_vars=None, expect_failure=True, runs=RUNS, parallel=False):
        """Run a playbook at every verbosity of runs; assert the expected outcome and that nothing leaked.

        parallel: the runs at once (for runs that write nothing, to keep the test short).
        """
        def one(run_spec):
            verbosity, callback = run_spec
            return playbook(name, inventory, extra_vars=extra_vars, verbosity=verbosity, callback=callback,
                            env={"GITOPS_FEDERATION_CACHE": self.cache})

        if parallel:
            with ThreadPoolExecutor(len(runs)) as pool:
                results = list(pool.map(one, runs))
        else:
            results = [one(run_spec) for run_spec in runs]
        for (verbosity, callback), run in zip(runs, results):
            where = "%s.yml at verbosity %d (%s callback)" % (name, verbosity, callback)
            if expect_failure:
                assert run.returncode != 0, "%s was to fail on its bad item:\n%s" % (where, run.output[-3000:])
            else:
                assert run.returncode == 0, "%s failed:\n%s" % (where, run.output[-3000:])
            self.assert_clean(run.output, where)
        self.assert_cache_clean()
        return results

    def assert_clean(self, text, where):
        for index, value in enumerate(self.secrets):
            count = text.count(value)
            if count:
                at = text.index(value)
                context = text[max(0, at - 300):at + len(value) + 100].replace(value, "<CREDENTIAL #%d>" % index)
                raise AssertionError("credential #%d shown %d times by %s, first here:\n%s" % (index, count, where, context))

    def assert_cache_clean(self):
        for top, _, names in os.walk(self.cache):
            for filename in names:
                path = os.path.join(top, filename)
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as handle:
                        self.assert_clean(handle.read().decode("utf-8", "replace"), "file %s" % path)


@pytest.fixture(scope="module")
def leaks(clusters, admin_clients, git_servers, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("leaks"))
    return LeakScan(Env(clusters, admin_clients, git_servers, workdir), workdir)


def test_no_playbook_shows_a_credential_at_any_verbosity(leaks):
    inventory = leaks.inventory()
    source = {"source": SOURCE, "project": leaks.namespace}
    missing = {"source": "no-such-source", "project": leaks.namespace}

    # sources: the bad-ref item fails, the others are declared.
    leaks.run("sources", leaks.inventory(spec=leaks.bad_ref))
    # sync: the broken source fails to render (over SSH, with the key), demo-app syncs.
    leaks.run("sync", inventory)
    assert leaks.env.clients[ATTACHED[0]].resources.get(api_version="v1", kind="Secret").get(
        name="demo-git", namespace=leaks.namespace), "the sync did not propagate the secrets"
    # status: the broken source is reported with its failure (read-only: the three runs at once).
    leaks.run("status", inventory, expect_failure=False, parallel=True)
    # suspend/resume: an unknown source fails (nothing written: at once); the real one passes (-vvv shows most).
    for name in ("suspend", "resume"):
        leaks.run(name, inventory, extra_vars=missing, parallel=True)
        leaks.run(name, inventory, extra_vars=source, expect_failure=False, runs=RUNS[:1])
    # teardown: an unknown source fails; the real one with a placed cluster that cannot be reached fails on it.
    leaks.run("teardown", inventory, extra_vars=missing, parallel=True)
    unreachable = leaks.inventory(host_vars={"attached-closed": {
        "kubeconfig": leaks.env.unreachable_kubeconfig(ATTACHED[0])}})
    leaks.run("teardown", unreachable, extra_vars=source, runs=RUNS[:1])


def secret_manifest(name, password, token):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {"password": password}, "data": {"token": b64(token)}}


@pytest.mark.parametrize("bad_option", [
    {"foreign_namespace": "somewhere"},        # refused by the argument spec (choices)
    {"wait_timeout": "soon"},                  # refused by the argument spec (type)
    {"manifests": None, "src": "/no/such/bundle.yaml"},  # refused by the module, bundle missing
    {},                                        # accepted: the arguments echoed with a successful result
], ids=["choice", "type", "missing-src", "success"])
def test_cluster_sync_shows_no_secret_value_or_kubeconfig_credential_at_vvv(clusters, namespace, bad_option):
    cluster = clusters[1]
    kubeconfig = yaml.safe_load(read(cluster.kubeconfig))
    user = kubeconfig["users"][0]["user"]
    password, token = unique_name("pw-secret-value"), unique_name("tok-secret-value")
    listed_password = unique_name("listed-secret-value")
    manifests = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"level": "info"}},
        secret_manifest("creds", password, token),
        {"apiVersion": "v1", "kind": "List", "items": [secret_manifest("listed", listed_password, listed_password)]},
    ]
    args = dict(kubeconfig=kubeconfig, namespace=namespace, owner="leaks/" + namespace, manifests=manifests)
    args.update(bad_option)
    args = dict((key, value) for key, value in args.items() if value is not None)
    result, run = run_module("gitops.federation.cluster_sync", args, verbosity=3)
    assert bool(result.get("failed")) == bool(bad_option), run.output[-3000:]
    for value in (password, b64(password), token, b64(token), listed_password, b64(listed_password),
                  user["client-key-data"], user["client-certificate-data"]):
        assert value not in run.output, "%s... shown (%s)" % (value[:12], bad_option)
    shown = result["invocation"]["module_args"]
    if shown.get("manifests"):
        assert shown["manifests"][1]["stringData"] == {"password": "<redacted>"}


def test_early_failure_on_the_management_connection_shows_no_kubeconfig_credential(clusters, namespace):
    management = yaml.safe_load(read(clusters[0].kubeconfig))
    user = management["users"][0]["user"]
    args = dict(kubeconfig=clusters[1].kubeconfig, namespace=namespace, cluster="attached-1",
                cluster_labels="not a mapping", management={"kubeconfig": management})
    result, run = run_module("gitops.federation.federated_secret_sync", args, verbosity=3)
    assert result.get("failed"), run.output[-3000:]
    for value in (user["client-key-data"], user["client-certificate-data"]):
        assert value not in run.output


@pytest.mark.parametrize("in_worker", ["1", "0"], ids=["in-worker", "module-process"])
def test_a_kubeconfig_with_embedded_keys_leaves_no_key_file_in_the_temporary_directory(
        clusters, namespace, tmp_path, in_worker):
    """The kubernetes client writes client-key-data to a temporary file; it must be gone when the task ends."""
    kubeconfig = yaml.safe_load(read(clusters[1].kubeconfig))
    assert kubeconfig["users"][0]["user"].get("client-key-data"), "the test needs a kubeconfig with an embedded key"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    manifests = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "b"}}]
    for kubeconfig_option in (kubeconfig, clusters[1].kubeconfig):  # as a mapping and as a file
        result, run = run_module("gitops.federation.cluster_sync", dict(
            kubeconfig=kubeconfig_option, namespace=namespace, owner="leaks/" + namespace, manifests=manifests),
            env={"TMPDIR": str(tmpdir), "GITOPS_FEDERATION_IN_WORKER": in_worker}, verbosity=4,
            play_vars={"ansible_python_interpreter": "{{ ansible_playbook_python }}"})  # as the playbooks set it
        assert not result.get("failed"), run.output[-3000:]
        how = "runs in the worker process" if in_worker == "1" else "runs as a module process"
        assert how in run.output, "the module did not run as this test means: %s" % run.output[-3000:]
        assert sorted(os.listdir(str(tmpdir))) == [], "left in TMPDIR: %s" % sorted(os.listdir(str(tmpdir)))
