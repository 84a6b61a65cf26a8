"""Federated resources against real kube-apiservers: CRDs, federated secrets, GitOps sources, status and events.

cluster-1 is the management cluster, cluster-2 and cluster-3 are attached clusters. Every module runs through
ansible-playbook; assertions read the clusters with kubectl and the kubernetes client, not with the code under test.
"""

import base64
import json
import os
import subprocess
import tempfile

import pytest
import yaml

from kube import get_or_none
from playbook import ROOT, run_module, run_playbook
from tools.localenv.binaries import binary

CRDS = os.path.join(ROOT, "roles", "crds", "files", "crds.yaml")
REVISION = "main@sha1:4b76adcc78cc5a231fa5d8e7cf2f764df10c7568"
PASSWORD = "hunter2-federated-Pa55"
TOKEN = "ghp_federatedBearerToken0123456789"


def b64(text):
    return base64.b64encode(text.encode()).decode()


SECRET_MARKERS = (PASSWORD, b64(PASSWORD), TOKEN, b64(TOKEN))


@pytest.fixture(scope="module")
def management(clusters):
    return clusters[0]


@pytest.fixture(scope="module")
def attached(clusters):
    return clusters[1:]


@pytest.fixture(scope="module")
def crds_installed(management, tmp_path_factory):
    """The CRDs installed on the management cluster with the crds role (run twice: the second is a no-op)."""
    inventory = tmp_path_factory.mktemp("crds") / "inventory.ini"
    inventory.write_text(f"management kubeconfig={management.kubeconfig} ansible_connection=local\n")
    playbook = tmp_path_factory.mktemp("crds") / "crds.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "management", "gather_facts": False,
                                         "roles": [{"role": "gitops.federation.crds"}]}]))
    runs = [run_playbook(str(playbook), inventory=str(inventory)) for unused in range(2)]
    for run in runs:
        assert run.returncode == 0, run.output[-4000:]
    return runs


def kubectl(cluster, *args, stdin=None, check=True):
    proc = subprocess.run([binary("kubectl"), "--kubeconfig", cluster.kubeconfig, *args], input=stdin,
                          capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def module(management, name, args, check=False, diff=False, expect_failure=False):
    params = dict(kubeconfig=management.kubeconfig)
    params.update(args)
    result, run = run_module(f"gitops.federation.{name}", params, check=check, diff=diff)
    if expect_failure:
        assert result.get("failed"), result
    else:
        assert not result.get("failed"), result.get("msg") or run.output[-4000:]
    assert_no_secret(run.output)
    return result


def assert_no_secret(text):
    for marker in SECRET_MARKERS:
        assert marker not in text, "a secret value leaked"


def custom(management, kind, namespace, name):
    plural = {"FederatedSecret": "federatedsecrets", "FederatedGitRepository": "federatedgitrepositories",
              "FederatedKustomization": "federatedkustomizations"}[kind]
    proc = kubectl(management, "get", f"{plural}.types.kubefed.io", "-n", namespace, name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def condition(obj, ctype):
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


def source_args(namespace, name="podinfo", **extra):
    args = dict(namespace=namespace, name=name, url="https://git.example.com/team/podinfo.git",
                ref={"branch": "main"}, path="deploy", secret="git-credentials", clusters=["cluster-2", "cluster-3"])
    args.update(extra)
    return args


# -- CRDs -------------------------------------------------------------------------------------------------------

def test_crds_role_installs_idempotently(crds_installed, management):
    first, second = crds_installed
    assert not any(r.get("failed") for r in first.results + second.results)
    applied = [r for r in first.results + second.results if "counts" in r]
    # The first run creates the CRDs, or finds them when another test module of this session installed them.
    assert applied[0]["counts"]["created"] + applied[0]["counts"]["unchanged"] == 3
    assert applied[0]["changed"] == (applied[0]["counts"]["created"] == 3)
    assert applied[1]["changed"] is False
    assert applied[1]["counts"]["unchanged"] == 3
    assert not any(r["changed"] for r in second.results)
    names = kubectl(management, "get", "crd", "-l", "app.kubernetes.io/part-of=gitops-federation", "-o", "name").stdout
    assert sorted(names.split()) == [
        "customresourcedefinition.apiextensions.k8s.io/federatedgitrepositories.types.kubefed.io",
        "customresourcedefinition.apiextensions.k8s.io/federatedkustomizations.types.kubefed.io",
        "customresourcedefinition.apiextensions.k8s.io/federatedsecrets.types.kubefed.io"]


INVALID = [
    ("FederatedGitRepository", {"template": {"spec": {"ref": {"branch": "main"}}}},
     "spec.template.spec.url: Required value"),
    ("FederatedGitRepository", {"template": {"spec": {"url": "https://example.com/r.git", "ref": "main"}}},
     "spec.template.spec.ref: Invalid value: \"string\""),
    ("FederatedGitRepository", {"template": {"spec": {"url": "https://example.com/r.git",
                                                      "ref": {"branch": "main", "tag": "v1"}}}},
     "ref takes at most one of branch, tag, semver and commit"),
    ("FederatedGitRepository", {"template": {"spec": {"url": "https://user:pw@example.com/r.git"}}},
     "spec.template.spec.url: Invalid value"),
    ("FederatedGitRepository", {"template": {"spec": {"url": "https://example.com/r.git", "scm": "svn"}}},
     "spec.template.spec.scm: Unsupported value: \"svn\""),
    ("FederatedKustomization", {"template": {"spec": {"path": "deploy"}}},
     "spec.template.spec.sourceRef: Required value"),
    ("FederatedKustomization", {"template": {"spec": {"sourceRef": {"kind": "Bucket", "name": "x"}}}},
     "spec.template.spec.sourceRef.kind: Unsupported value: \"Bucket\""),
    ("FederatedKustomization", {"template": {"spec": {"sourceRef": {"kind": "GitRepository", "name": "x"},
                                                      "path": "../../etc"}}},
     "spec.template.spec.path: Invalid value: \"string\": path must stay inside the repository"),
    ("FederatedKustomization", {"template": {"spec": {"sourceRef": {"kind": "GitRepository", "name": "x"},
                                                      "timeout": "five minutes"}}},
     "spec.template.spec.timeout"),
    ("FederatedKustomization", {"template": {"spec": {"sourceRef": {"kind": "GitRepository", "name": "x"},
                                                      "postBuild": {"substitute": {"1BAD": "x"}}}}},
     "substitute variable names must match"),
    ("FederatedKustomization", {"template": {"spec": {"sourceRef": {"kind": "GitRepository", "name": "x"}}},
                                "overrides": [{"clusterName": "a", "clusterOverrides": [{"op": "move", "path": "/x"}]}]},
     "spec.overrides[0].clusterOverrides[0].op: Unsupported value: \"move\""),
    ("FederatedKustomization", {"template": {"spec": {"sourceRef": {"kind": "GitRepository", "name": "x"}}},
                                "overrides": [{"clusterName": "a", "clusterOverrides": [{"path": "spec/x", "value": 1}]}]},
     "spec.overrides[0].clusterOverrides[0].path"),
    ("FederatedSecret", {"template": {"type": "Opaque", "data": {"password": b64("x")}}},
     "a FederatedSecret never holds secret values"),
    ("FederatedSecret", {"template": {}, "overrides": [{"clusterName": "a", "clusterOverrides": [
        {"op": "add", "path": "/data/password", "value": b64("x")}]}]},
     "overrides never carry secret values"),
    ("FederatedSecret", {"placement": {"clusters": [{"name": "a"}, {"name": "a"}]}},
     "spec.placement.clusters[1]: Duplicate value"),
]


@pytest.mark.parametrize("kind,spec,error", INVALID, ids=[e[2][:40] for e in INVALID])
def test_api_server_rejects_invalid_specs_with_field_paths(crds_installed, management, namespace, kind, spec, error):
    manifest = yaml.safe_dump({"apiVersion": "types.kubefed.io/v1beta1", "kind": kind,
                               "metadata": {"name": "invalid", "namespace": namespace}, "spec": spec})
    proc = kubectl(management, "create", "-f", "-", stdin=manifest, check=False)
    assert proc.returncode != 0
    assert "is invalid" in proc.stderr, proc.stderr
    assert error in proc.stderr, proc.stderr
    assert custom(management, kind, namespace, "invalid") is None


# -- federated secrets ------------------------------------------------------------------------------------------

def test_federated_secret_lifecycle_is_idempotent_and_never_shows_values(crds_installed, management, admin_clients,
                                                                        namespace):
    args = dict(namespace=namespace, name="git-credentials", username="deploy", password=PASSWORD,
                bearer_token=TOKEN, ssh_public_key="ssh-ed25519 AAAApublic", cluster_selector={},
                labels={"team": "a"})
    preview = module(management, "federated_secret", args, check=True)
    assert preview["changed"] is True and preview["actions"] == {"federated_secret": "created", "secret": "created"}
    assert custom(management, "FederatedSecret", namespace, "git-credentials") is None
    assert get_or_none(admin_clients[management.name], "v1", "Secret", "git-credentials", namespace) is None
    created = module(management, "federated_secret", args, diff=True)
    assert created["changed"] is True
    assert created["actions"] == {"federated_secret": "created", "secret": "created"}
    assert created["data_keys"] == ["bearerToken", "identity.pub", "password", "username"]
    assert created["secret"]["type"] == "Opaque"
    live = get_or_none(admin_clients[management.name], "v1", "Secret", "git-credentials", namespace)
    assert live["data"]["password"] == b64(PASSWORD) and live["data"]["bearerToken"] == b64(TOKEN)
    assert live["data"]["username"] == b64("deploy")
    federated = custom(management, "FederatedSecret", namespace, "git-credentials")
    assert federated["spec"]["template"] == {"metadata": {"labels": {"team": "a"}}, "type": "Opaque"}
    assert_no_secret(json.dumps(federated))
    diff_text = json.dumps(created["diff"])
    assert "password" in diff_text and "<redacted>" in diff_text

    again = module(management, "federated_secret", args)
    assert again["changed"] is False
    assert again["actions"] == {"federated_secret": "unchanged", "secret": "unchanged"}

    rotated = dict(args, password=PASSWORD + "-rotated")
    preview = module(management, "federated_secret", rotated, check=True, diff=True)
    assert preview["changed"] is True and preview["actions"]["secret"] == "configured"
    assert "<redacted: changed>" in json.dumps(preview["diff"])
    assert get_or_none(admin_clients[management.name], "v1", "Secret", "git-credentials",
                       namespace)["data"]["password"] == b64(PASSWORD)
    updated = module(management, "federated_secret", rotated)
    assert updated["actions"] == {"federated_secret": "unchanged", "secret": "configured"}
    assert get_or_none(admin_clients[management.name], "v1", "Secret", "git-credentials",
                       namespace)["data"]["password"] == b64(PASSWORD + "-rotated")

    relabelled = module(management, "federated_secret", dict(rotated, labels={"team": "b"}))
    assert relabelled["actions"] == {"federated_secret": "configured", "secret": "unchanged"}

    retype = module(management, "federated_secret", dict(rotated, type="kubernetes.io/basic-auth"), expect_failure=True)
    assert "type cannot change" in retype["msg"]

    absent = dict(namespace=namespace, name="git-credentials", state="absent")
    assert module(management, "federated_secret", absent, check=True)["actions"] == {"federated_secret": "deleted",
                                                                                     "secret": "deleted"}
    assert custom(management, "FederatedSecret", namespace, "git-credentials") is not None
    assert get_or_none(admin_clients[management.name], "v1", "Secret", "git-credentials", namespace) is not None
    deleted = module(management, "federated_secret", absent)
    assert deleted["changed"] is True and deleted["actions"] == {"federated_secret": "deleted", "secret": "deleted"}
    assert custom(management, "FederatedSecret", namespace, "git-credentials") is None
    assert get_or_none(admin_clients[management.name], "v1", "Secret", "git-credentials", namespace) is None
    gone = module(management, "federated_secret", dict(namespace=namespace, name="git-credentials", state="absent"))
    assert gone["changed"] is False and gone["actions"] == {"federated_secret": "absent", "secret": "absent"}


def test_federated_secret_for_an_existing_secret_and_missing_secret(crds_installed, management, admin_clients,
                                                                    namespace):
    missing = module(management, "federated_secret", dict(namespace=namespace, name="byo"), expect_failure=True)
    assert f"Secret {namespace}/byo does not exist" in missing["msg"]
    admin_clients[management.name].resources.get(api_version="v1", kind="Secret").create(namespace=namespace, body={
        "metadata": {"name": "byo"}, "type": "kubernetes.io/basic-auth",
        "stringData": {"username": "u", "password": PASSWORD}})
    adopted = module(management, "federated_secret", dict(namespace=namespace, name="byo", clusters=["cluster-2"]))
    assert adopted["changed"] is True and adopted["actions"] == {"federated_secret": "created", "secret": "unchanged"}
    assert adopted["data_keys"] == ["password", "username"]
    assert custom(management, "FederatedSecret", namespace, "byo")["spec"]["template"]["type"] == "kubernetes.io/basic-auth"


# -- GitOps sources ---------------------------------------------------------------------------------------------

def test_gitops_source_lifecycle_is_idempotent(crds_installed, management, namespace):
    args = source_args(namespace, substitute={"REPLICAS": 2}, timeout="2m",
                       health_checks=[{"kind": "Deployment", "current": "status.readyReplicas == spec.replicas"}])
    preview = module(management, "gitops_source", args, check=True)
    assert preview["changed"] is True and preview["actions"]["federated_kustomization"] == "created"
    assert custom(management, "FederatedKustomization", namespace, "podinfo") is None
    created = module(management, "gitops_source", args, diff=True)
    assert created["changed"] is True
    assert created["actions"] == {"federated_git_repository": "created", "federated_kustomization": "created"}
    assert created["suspended"] is False
    repository = custom(management, "FederatedGitRepository", namespace, "podinfo")
    assert repository["spec"]["template"]["spec"] == {
        "url": "https://git.example.com/team/podinfo.git", "ref": {"branch": "main"}, "scm": "github",
        "secretRef": {"name": "git-credentials"}, "timeout": "2m"}
    kustomization = custom(management, "FederatedKustomization", namespace, "podinfo")
    spec = kustomization["spec"]["template"]["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": "podinfo"}
    assert spec["postBuild"] == {"substitute": {"REPLICAS": "2"}}
    assert kustomization["spec"]["placement"] == {"clusters": [{"name": "cluster-2"}, {"name": "cluster-3"}]}
    assert "warnings" in created and any("FederatedSecret" in w for w in created["warnings"])

    assert module(management, "gitops_source", args)["changed"] is False
    assert module(management, "gitops_source", dict(args, path="overlays/prod"), check=True)["changed"] is True
    assert custom(management, "FederatedKustomization", namespace, "podinfo")["spec"]["template"]["spec"]["path"] == "deploy"

    changed = module(management, "gitops_source", dict(args, path="overlays/prod"))
    assert changed["actions"] == {"federated_git_repository": "unchanged", "federated_kustomization": "configured"}
    assert custom(management, "FederatedKustomization", namespace, "podinfo")["metadata"]["generation"] == 2
    args["path"] = "overlays/prod"

    # An operator suspends with kubectl; a playbook that does not mention suspend leaves it suspended.
    kubectl(management, "patch", "federatedkustomization", "podinfo", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"template":{"spec":{"suspend":true}}}}')
    kept = module(management, "gitops_source", args)
    assert kept["changed"] is False and kept["suspended"] is True
    resumed = module(management, "gitops_source", dict(args, suspend=False))
    assert resumed["changed"] is True and resumed["suspended"] is False
    assert module(management, "gitops_source", dict(args, suspend=False))["changed"] is False

    # Not deletable while the status lists clusters holding its objects.
    module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION,
                                              placed=["cluster-2", "cluster-3"],
                                              results=[{"cluster": "cluster-2", "status": "Applied",
                                                        "counts": {"created": 3}}]))
    refused = module(management, "gitops_source", dict(namespace=namespace, name="podinfo", state="absent"),
                     expect_failure=True)
    assert "still has objects on 1 cluster (cluster-2" in refused["msg"] and "orphan: true" in refused["msg"]
    assert custom(management, "FederatedKustomization", namespace, "podinfo") is not None
    module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION, placed=[],
                                              results=[{"cluster": "cluster-2", "status": "Deleted",
                                                        "counts": {"deleted": 3}}]))
    assert module(management, "gitops_source", dict(namespace=namespace, name="podinfo", state="absent"),
                  check=True)["changed"] is True
    assert custom(management, "FederatedKustomization", namespace, "podinfo") is not None
    deleted = module(management, "gitops_source", dict(namespace=namespace, name="podinfo", state="absent"))
    assert deleted["changed"] is True
    assert custom(management, "FederatedKustomization", namespace, "podinfo") is None
    assert custom(management, "FederatedGitRepository", namespace, "podinfo") is None
    assert module(management, "gitops_source", dict(namespace=namespace, name="podinfo", state="absent"))["changed"] is False


def test_gitops_source_orphan_deletes_despite_applied_clusters(crds_installed, management, namespace):
    module(management, "gitops_source", source_args(namespace))
    module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION,
                                              results=[{"cluster": "cluster-3", "status": "Applied",
                                                        "counts": {"created": 1}}]))
    orphaned = module(management, "gitops_source", dict(namespace=namespace, name="podinfo", state="absent",
                                                        orphan=True))
    assert orphaned["changed"] is True and orphaned["orphaned_clusters"] == ["cluster-3"]
    assert custom(management, "FederatedKustomization", namespace, "podinfo") is None


def test_gitops_source_rejects_bad_options_clearly(crds_installed, management, namespace):
    both = module(management, "gitops_source", source_args(namespace, ref={"branch": "main", "tag": "v1"}),
                  expect_failure=True)
    assert f"ref of source {namespace}/podinfo: give at most one of" in both["msg"]
    bad_path = module(management, "gitops_source", source_args(namespace, path="../outside"), expect_failure=True)
    assert "FederatedKustomization" in bad_path["msg"] and "path must stay inside the repository" in bad_path["msg"]
    assert custom(management, "FederatedGitRepository", namespace, "podinfo") is not None  # applied before the refusal


# -- status and events ------------------------------------------------------------------------------------------

def test_recorded_sync_shows_seed_shaped_status_printer_columns_and_events(crds_installed, management, namespace):
    module(management, "gitops_source", source_args(namespace))
    results = [{"cluster": "cluster-2", "status": "Applied", "counts": {"created": 2, "configured": 1, "unchanged": 5}},
               {"cluster": "cluster-3", "status": "Applied", "counts": {"created": 8}}]
    recorded = module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION,
                                                         placed=["cluster-2", "cluster-3"], results=results), diff=True)
    assert recorded["changed"] is True and recorded["status_written"] is True

    status = yaml.safe_load(kubectl(management, "get", "federatedkustomization", "-n", namespace, "podinfo",
                                    "-o", "yaml").stdout)["status"]
    assert [c["name"] for c in status["clusters"]] == ["cluster-2", "cluster-3"]
    assert status["clusters"][0]["status"] == "Applied" and status["clusters"][0]["revision"] == REVISION
    assert status["clusters"][0]["counts"] == {"created": 2, "configured": 1, "unchanged": 5}
    assert status["clusters"][0]["lastAppliedTime"]
    assert status["observedGeneration"] == 1 and status["lastAppliedRevision"] == REVISION
    propagation = [c for c in status["conditions"] if c["type"] == "Propagation"][0]
    assert propagation["status"] == "True" and propagation["lastTransitionTime"] and propagation["lastUpdateTime"]
    assert "cluster-2, cluster-3" in propagation["message"]
    repository = custom(management, "FederatedGitRepository", namespace, "podinfo")
    assert repository["status"]["artifact"]["revision"] == REVISION
    assert condition(repository, "Ready")["status"] == "True"

    table = kubectl(management, "get", "federatedkustomization", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "SUSPENDED", "REVISION", "AGE"]
    assert table[1].split()[:4] == ["podinfo", "True", "false", REVISION]
    wide = kubectl(management, "get", "fks", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert "PROPAGATION" in wide[0] and "MESSAGE" in wide[0]

    events = json.loads(kubectl(management, "get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    ours = [e for e in events if e["involvedObject"]["kind"] == "FederatedKustomization"]
    messages = sorted(e["message"] for e in ours)
    assert messages == [
        f"Applied revision {REVISION} to cluster cluster-2: created 2, configured 1, unchanged 5",
        f"Applied revision {REVISION} to cluster cluster-3: created 8",
    ]
    kustomization = custom(management, "FederatedKustomization", namespace, "podinfo")
    for event in ours:
        assert event["reason"] == "Applied" and event["type"] == "Normal"
        assert event["involvedObject"]["uid"] == kustomization["metadata"]["uid"]
        assert event["source"]["component"] == "gitops-federation"
        assert event["reportingComponent"] == "gitops-federation"
        assert event["firstTimestamp"] and event["lastTimestamp"]
    listed = kubectl(management, "get", "events", "-n", namespace).stdout
    assert f"Applied revision {REVISION} to cluster cluster-3: created 8" in listed

    # The next sync finds nothing to do: recording it writes nothing at all.
    resource_version = kustomization["metadata"]["resourceVersion"]
    noop = [{"cluster": "cluster-2", "status": "Applied", "counts": {"unchanged": 8}},
            {"cluster": "cluster-3", "status": "Applied", "counts": {"unchanged": 8}}]
    again = module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION,
                                                     placed=["cluster-2", "cluster-3"], results=noop))
    assert again["changed"] is False and again["events"] == [] and again["status_written"] is False
    assert custom(management, "FederatedKustomization", namespace, "podinfo")["metadata"]["resourceVersion"] == resource_version
    assert len([e for e in json.loads(kubectl(management, "get", "events", "-n", namespace, "-o", "json").stdout)["items"]
                if e["involvedObject"]["kind"] == "FederatedKustomization"]) == 2


def test_failed_cluster_turns_propagation_false_and_leaves_a_warning(crds_installed, management, namespace):
    module(management, "gitops_source", source_args(namespace))
    module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION,
                                              placed=["cluster-2", "cluster-3"],
                                              results=[{"cluster": "cluster-2", "status": "Applied",
                                                        "counts": {"created": 1}},
                                                       {"cluster": "cluster-3", "status": "Applied",
                                                        "counts": {"created": 1}}]))
    before = condition(custom(management, "FederatedKustomization", namespace, "podinfo"), "Propagation")
    new_revision = "main@sha1:" + "b" * 40
    failed = module(management, "gitops_status", dict(
        namespace=namespace, name="podinfo", revision=new_revision, placed=["cluster-2", "cluster-3"],
        results=[{"cluster": "cluster-2", "status": "Applied", "counts": {"configured": 1}},
                 {"cluster": "cluster-3", "status": "Failed", "counts": {"failed": 1},
                  "message": "the API server refused 1 object"}]))
    assert failed["changed"] is True
    kustomization = custom(management, "FederatedKustomization", namespace, "podinfo")
    propagation = condition(kustomization, "Propagation")
    assert propagation["status"] == "False" and propagation["reason"] == "PropagationFailed"
    assert "failed on: cluster-3 (the API server refused 1 object)" in propagation["message"]
    assert propagation["lastTransitionTime"] >= before["lastTransitionTime"]
    assert condition(kustomization, "Ready")["status"] == "False"
    entry = [c for c in kustomization["status"]["clusters"] if c["name"] == "cluster-3"][0]
    assert entry["status"] == "Failed" and entry["revision"] == REVISION  # what it still runs
    listed = kubectl(management, "get", "events", "-n", namespace, "--field-selector", "type=Warning").stdout
    assert f"Failed to apply revision {new_revision} to cluster cluster-3 (failed 1): the API server refused" in listed
    table = kubectl(management, "get", "fks", "-n", namespace, "podinfo", "--no-headers").stdout.split()
    assert table[1] == "False"

    # The same failure again is counted on the same Event.
    module(management, "gitops_status", dict(
        namespace=namespace, name="podinfo", revision=new_revision, placed=["cluster-2", "cluster-3"],
        results=[{"cluster": "cluster-3", "status": "Failed", "counts": {"failed": 1},
                  "message": "the API server refused 1 object"}]))
    warnings = [e for e in json.loads(kubectl(management, "get", "events", "-n", namespace, "-o", "json").stdout)["items"]
                if e["type"] == "Warning"]
    assert len(warnings) == 1 and warnings[0]["count"] == 2


def test_status_check_mode_writes_nothing(crds_installed, management, namespace):
    module(management, "gitops_source", source_args(namespace))
    preview = module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION,
                                                       results=[{"cluster": "cluster-2", "status": "Applied",
                                                                 "counts": {"created": 1}}]), check=True)
    assert preview["changed"] is True and preview["events"]
    assert "status" not in custom(management, "FederatedKustomization", namespace, "podinfo")
    assert json.loads(kubectl(management, "get", "events", "-n", namespace, "-o", "json").stdout)["items"] == []


def test_suspended_and_source_errors_are_recorded(crds_installed, management, namespace):
    module(management, "gitops_source", source_args(namespace))
    module(management, "gitops_status", dict(namespace=namespace, name="podinfo", revision=REVISION,
                                              results=[{"cluster": "cluster-2", "status": "Applied",
                                                        "counts": {"created": 1}}]))
    suspended = module(management, "gitops_status", dict(namespace=namespace, name="podinfo", suspended=True,
                                                         placed=["cluster-2"]))
    assert [e["reason"] for e in suspended["events"]] == ["Suspended"]
    entry = custom(management, "FederatedKustomization", namespace, "podinfo")["status"]["clusters"][0]
    assert entry["status"] == "Suspended" and entry["revision"] == REVISION
    assert module(management, "gitops_status", dict(namespace=namespace, name="podinfo", suspended=True,
                                                     placed=["cluster-2"]))["changed"] is False

    errored = module(management, "gitops_status", dict(namespace=namespace, name="podinfo", placed=["cluster-2"],
                                                       source_error="authentication failed for the repository"))
    assert errored["changed"] is True
    repository = custom(management, "FederatedGitRepository", namespace, "podinfo")
    ready = condition(repository, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "FetchFailed")
    assert repository["status"]["artifact"]["revision"] == REVISION
    assert condition(custom(management, "FederatedKustomization", namespace, "podinfo"), "Ready")["reason"] == "SourceFailed"
    events = json.loads(kubectl(management, "get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    failed = [e for e in events if e["involvedObject"]["kind"] == "FederatedGitRepository"]
    assert failed and "authentication failed for the repository" in failed[0]["message"]


# -- placement, overrides and the info module ------------------------------------------------------------------

INVENTORY = [{"name": "cluster-2", "labels": {"env": "prod", "region": "eu"}},
             ["cluster-3", {"env": "prod", "region": "us"}]]


def test_info_resolves_placement_by_selector_and_overrides_per_cluster(crds_installed, management, namespace):
    module(management, "federated_secret", dict(namespace=namespace, name="git-credentials", username="deploy",
                                                password=PASSWORD, cluster_selector={"region": "eu"}))
    module(management, "gitops_source", source_args(
        namespace, clusters=["cluster-9"], cluster_selector={"matchLabels": {"env": "prod"}},
        substitute={"REPLICAS": "2"},
        overrides=[{"cluster_name": "cluster-3", "cluster_overrides": [
            {"path": "/spec/path", "value": "overlays/us"},
            {"path": "/spec/postBuild/substitute/REPLICAS", "value": "5"},
            {"path": "/spec/ref/branch", "value": "release"},
            {"path": "/spec/replicas", "value": 5, "target": {"kind": "Deployment", "name": "web"}}]}]))
    module(management, "gitops_source", source_args(namespace, name="second", clusters=["cluster-2"]))
    info = module(management, "gitops_source_info", dict(namespace=namespace, clusters=INVENTORY))
    assert info["changed"] is False
    assert info["unknown_clusters"] == ["cluster-9"]
    assert any("cluster-9" in w for w in info.get("warnings", []))
    sources = {s["name"]: s for s in info["sources"]}
    podinfo = sources["podinfo"]
    assert podinfo["placed"] == ["cluster-2", "cluster-3"] and podinfo["unknown_clusters"] == ["cluster-9"]
    assert podinfo["errors"] == [] and podinfo["owner"] == f"gitops/{namespace}/podinfo"
    renders = {tuple(r["clusters"]): r for r in podinfo["renders"]}
    assert renders[("cluster-2",)]["path"] == "deploy" and renders[("cluster-2",)]["ref"] == {"branch": "main"}
    assert renders[("cluster-3",)]["path"] == "overlays/us" and renders[("cluster-3",)]["ref"] == {"branch": "release"}
    assert renders[("cluster-3",)]["substitute"] == {"REPLICAS": "5"}
    assert podinfo["clusters"]["cluster-3"]["overrides"] == [
        {"op": "replace", "path": "/spec/replicas", "value": 5, "target": {"kind": "Deployment", "name": "web"}}]
    assert podinfo["clusters"]["cluster-2"]["overrides"] == []
    assert sources["second"]["placed"] == ["cluster-2"] and sources["second"]["unplaced"] == ["cluster-3"]
    only = module(management, "gitops_source_info", dict(namespace=namespace, name="second", clusters=INVENTORY))
    assert [s["name"] for s in only["sources"]] == ["second"]
    secret = info["secrets"][0]
    assert secret["placed"] == ["cluster-2"] and secret["data_keys"] == ["password", "username"]
    assert info["secrets_owner"] == f"gitops-secrets/{namespace}"


def test_info_reports_a_broken_override_as_a_source_error(crds_installed, management, namespace):
    module(management, "gitops_source", source_args(namespace, overrides=[{"cluster_name": "cluster-2",
                                                                          "cluster_overrides": [
        {"path": "/spec/targetNamespace", "value": "elsewhere"}]}]))
    info = module(management, "gitops_source_info", dict(namespace=namespace, clusters=INVENTORY))
    errors = info["sources"][0]["errors"]
    assert len(errors) == 1
    assert f"FederatedKustomization {namespace}/podinfo overrides[clusterName=cluster-2]" in errors[0]
    assert "path /spec/targetNamespace does not exist" in errors[0]
    assert info["sources"][0]["renders"] == []


def test_credentials_need_no_log_and_stay_masked(crds_installed, management, namespace, tmp_path):
    module(management, "federated_secret", dict(namespace=namespace, name="git-credentials", username="deploy",
                                                password=PASSWORD, cluster_selector={}))
    module(management, "gitops_source", source_args(namespace))
    refused = module(management, "gitops_source_info", dict(namespace=namespace, include_credentials=True),
                     expect_failure=True)
    assert "set no_log: true on the task" in refused["msg"]
    playbook = tmp_path / "credentials.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "read", "gitops.federation.gitops_source_info": {
            "kubeconfig": management.kubeconfig, "namespace": namespace, "include_credentials": True},
         "register": "project", "no_log": True},
        {"name": "usable", "ansible.builtin.assert": {"quiet": True, "that": [
            "project.sources[0].credentials.username == 'deploy'",
            f"project.sources[0].credentials.password == '{PASSWORD}'"]}},
    ]}]))
    run = run_playbook(str(playbook), verbosity=3)
    assert run.returncode == 0, run.output[-3000:]
    assert_no_secret(run.output)


# -- secret propagation through the engine -----------------------------------------------------------------------

def propagate(management, cluster, namespace, labels, **extra):
    args = dict(kubeconfig=cluster.kubeconfig, management={"kubeconfig": management.kubeconfig},
                namespace=namespace, cluster=cluster.name, cluster_labels=labels)
    args.update(extra)
    result, run = run_module("gitops.federation.federated_secret_sync", args, diff=True)
    assert not result.get("failed"), result.get("msg") or run.output[-4000:]
    assert_no_secret(run.output)
    return result


def test_secret_propagation_follows_placement_updates_and_overrides(crds_installed, management, attached,
                                                                    admin_clients, namespace):
    cluster2, cluster3 = attached
    labels = {"cluster-2": {"env": "prod"}, "cluster-3": {"env": "prod"}}
    base = dict(namespace=namespace, name="git-credentials", username="deploy", password=PASSWORD,
                cluster_selector={"env": "prod"}, labels={"team": "a"},
                overrides=[{"cluster_name": "cluster-3", "cluster_overrides": [
                    {"op": "add", "path": "/metadata/labels/region", "value": "us"}]}])
    module(management, "federated_secret", base)
    module(management, "federated_secret", dict(namespace=namespace, name="only-two", string_data={"k": "v"},
                                                clusters=["cluster-2"]))

    for cluster in attached:
        result = propagate(management, cluster, namespace, labels[cluster.name])
        assert result["changed"] is True
        assert result["status_results"]["git-credentials"] == {"cluster": cluster.name, "status": "Applied",
                                                               "counts": {"created": 1}}
        assert "<redacted>" in json.dumps(result["diff"])
    assert propagate(management, cluster2, namespace, labels["cluster-2"])["secrets"] == ["git-credentials", "only-two"]

    on2 = get_or_none(admin_clients[cluster2.name], "v1", "Secret", "git-credentials", namespace)
    on3 = get_or_none(admin_clients[cluster3.name], "v1", "Secret", "git-credentials", namespace)
    assert on2["data"] == {"username": b64("deploy"), "password": b64(PASSWORD)} == on3["data"]
    assert on2["metadata"]["labels"]["team"] == "a" and "region" not in on2["metadata"]["labels"]
    assert on3["metadata"]["labels"]["region"] == "us"
    assert on3["metadata"]["annotations"]["gitops.federation/owner"] == f"gitops-secrets/{namespace}"
    assert get_or_none(admin_clients[cluster3.name], "v1", "Secret", "only-two", namespace) is None

    again = propagate(management, cluster3, namespace, labels["cluster-3"])
    assert again["changed"] is False and again["counts"]["unchanged"] == 1

    # Rotating the password on the management cluster follows on the next sync.
    module(management, "federated_secret", dict(base, password=PASSWORD + "-2"))
    rotated = propagate(management, cluster3, namespace, labels["cluster-3"])
    assert rotated["changed"] is True and rotated["status_results"]["git-credentials"]["counts"] == {"configured": 1}
    assert get_or_none(admin_clients[cluster3.name], "v1", "Secret", "git-credentials",
                       namespace)["data"]["password"] == b64(PASSWORD + "-2")

    # Taking cluster-3 out of the placement deletes the Secret there.
    module(management, "federated_secret", dict(base, password=PASSWORD + "-2", cluster_selector=None,
                                                clusters=["cluster-2"]))
    removed = propagate(management, cluster3, namespace, labels["cluster-3"])
    assert removed["changed"] is True and removed["secrets"] == []
    assert removed["status_results"]["git-credentials"] == {"cluster": "cluster-3", "status": "Deleted",
                                                            "counts": {"pruned": 1}}
    assert get_or_none(admin_clients[cluster3.name], "v1", "Secret", "git-credentials", namespace) is None
    assert get_or_none(admin_clients[cluster2.name], "v1", "Secret", "git-credentials", namespace) is not None

    # Recording the propagation on the FederatedSecret.
    recorded = module(management, "gitops_status", dict(
        kind="FederatedSecret", namespace=namespace, name="git-credentials", placed=["cluster-2"],
        results=[{"cluster": "cluster-2", "status": "Applied", "counts": {"created": 1}},
                 removed["status_results"]["git-credentials"]]))
    assert recorded["changed"] is True
    federated = custom(management, "FederatedSecret", namespace, "git-credentials")
    assert [c["name"] for c in federated["status"]["clusters"]] == ["cluster-2"]
    assert condition(federated, "Propagation")["status"] == "True"
    events = json.loads(kubectl(management, "get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert sorted(e["message"] for e in events if e["involvedObject"]["kind"] == "FederatedSecret") == [
        "Applied Secret git-credentials to cluster cluster-2: created 1",
        "Deleted Secret git-credentials from cluster cluster-3: pruned 1"]
    assert_no_secret(json.dumps(events) + json.dumps(federated))

    # Teardown removes every federated secret of the project from a cluster.
    teardown = propagate(management, cluster2, namespace, labels["cluster-2"], state="absent")
    assert teardown["counts"]["deleted"] == 2
    assert get_or_none(admin_clients[cluster2.name], "v1", "Secret", "git-credentials", namespace) is None


def test_propagation_refuses_when_the_management_secret_is_missing(crds_installed, management, attached,
                                                                   admin_clients, namespace):
    module(management, "federated_secret", dict(namespace=namespace, name="orphan", string_data={"k": "v"},
                                                clusters=["cluster-2"]))
    propagate(management, attached[0], namespace, {})
    admin_clients[management.name].resources.get(api_version="v1", kind="Secret").delete(name="orphan",
                                                                                          namespace=namespace)
    args = dict(kubeconfig=attached[0].kubeconfig, management={"kubeconfig": management.kubeconfig},
                namespace=namespace, cluster="cluster-2")
    result, unused = run_module("gitops.federation.federated_secret_sync", args)
    assert result.get("failed")
    assert f"FederatedSecret {namespace}/orphan: its Secret {namespace}/orphan does not exist" in result["msg"]
    assert get_or_none(admin_clients[attached[0].name], "v1", "Secret", "orphan", namespace) is not None


# -- target overrides on rendered manifests (cluster_sync) -------------------------------------------------------

def test_cluster_sync_applies_target_overrides(crds_installed, attached, admin_clients, namespace):
    bundle = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"replicas": "2"}},
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}, "data": {"replicas": "2"}}]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump_all(bundle, handle)
    try:
        args = dict(kubeconfig=attached[1].kubeconfig, owner=f"gitops/{namespace}/podinfo", namespace=namespace,
                    src=handle.name, overrides=[{"op": "replace", "path": "/data/replicas", "value": "5",
                                                 "target": {"kind": "ConfigMap", "name": "settings"}}])
        result, run = run_module("gitops.federation.cluster_sync", args)
        assert not result.get("failed"), result.get("msg")
        client = admin_clients[attached[1].name]
        assert get_or_none(client, "v1", "ConfigMap", "settings", namespace)["data"] == {"replicas": "5"}
        assert get_or_none(client, "v1", "ConfigMap", "other", namespace)["data"] == {"replicas": "2"}
        typo = dict(args, overrides=[{"op": "replace", "path": "/data/replicas", "value": "5",
                                      "target": {"kind": "ConfigMap", "name": "setings"}}])
        failed, unused = run_module("gitops.federation.cluster_sync", typo)
        assert failed.get("failed") and "matches no rendered object" in failed["msg"]
    finally:
        os.unlink(handle.name)
