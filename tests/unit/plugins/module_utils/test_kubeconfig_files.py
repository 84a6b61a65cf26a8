"""The certificates and keys of a kubeconfig's *-data fields: written to a private directory, removed after."""

import base64
import os
import stat
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.gitops.federation.plugins.module_utils import private_dirs
from ansible_collections.gitops.federation.plugins.module_utils.k8s import client as k8s_client

KEY = b"-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nnot-a-real-cert\n-----END CERTIFICATE-----\n"


def kubeconfig_with_embedded_keys():
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://c.example:6443",
                                               "certificate-authority-data": base64.b64encode(CERT).decode()}}],
        "users": [{"name": "u", "user": {"client-certificate-data": base64.b64encode(CERT).decode(),
                                         "client-key-data": base64.b64encode(KEY).decode()}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }


@pytest.fixture
def tmpdir_of_the_run(tmp_path, monkeypatch):
    """The controller's TMPDIR for one module run; nothing of an earlier run in this process."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    k8s_client.remove_kubeconfig_files()
    yield tmp_path
    k8s_client.remove_kubeconfig_files()


def files_under(path):
    return sorted(os.path.relpath(os.path.join(top, name), str(path))
                  for top, unused, names in os.walk(str(path)) for name in names)


@pytest.mark.parametrize("as_file", [False, True], ids=["mapping", "file"])
def test_embedded_keys_go_to_a_private_directory_removed_when_the_module_ends(
        tmpdir_of_the_run, tmp_path_factory, as_file):
    kubeconfig = kubeconfig_with_embedded_keys()
    if as_file:
        path = tmp_path_factory.mktemp("inventory") / "kubeconfig"
        path.write_text(__import__("json").dumps(kubeconfig))
        kubeconfig = str(path)
    configuration = k8s_client._configuration({"kubeconfig": kubeconfig})
    directory = os.path.dirname(configuration.key_file)
    base = os.path.join(str(tmpdir_of_the_run), "gitops-federation-%d" % os.geteuid(), "kubeconfig")
    assert os.path.dirname(directory) == base
    with open(configuration.key_file, "rb") as handle:
        assert handle.read() == KEY
    for private in (os.path.dirname(base), base, directory):  # no one else on the controller can read them
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o700, private
    assert os.path.dirname(configuration.cert_file) == directory
    assert os.path.dirname(configuration.ssl_ca_cert) == directory

    k8s_client.remove_kubeconfig_files()
    assert os.listdir(str(tmpdir_of_the_run)) == [], files_under(tmpdir_of_the_run)


def test_a_killed_runs_directory_is_removed_by_the_next_run_and_a_running_ones_is_kept(tmpdir_of_the_run):
    base = os.path.join(str(tmpdir_of_the_run), "gitops-federation-%d" % os.geteuid(), "kubeconfig")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = os.path.join(base, "%d-%s-abc" % (dead.pid, "12345"))
    running = os.path.join(base, "%d-%s-def" % (os.getppid(), private_dirs.process_start_time(os.getppid())))
    for directory in (killed, running):
        os.makedirs(directory, mode=0o700)
        with open(os.path.join(directory, "tmpkey"), "wb") as handle:
            handle.write(KEY)
    configuration = k8s_client._configuration({"kubeconfig": kubeconfig_with_embedded_keys()})
    assert not os.path.exists(killed)
    assert os.path.exists(running)
    assert sorted(os.listdir(base)) == sorted([os.path.basename(running),
                                               os.path.basename(os.path.dirname(configuration.key_file))])
    k8s_client.remove_kubeconfig_files()
    assert os.listdir(base) == [os.path.basename(running)]  # another process's directory stays, with its base


def test_the_in_worker_action_removes_them_when_its_module_returns(tmpdir_of_the_run):
    from ansible_collections.gitops.federation.plugins.plugin_utils.in_worker import remove_kubeconfig_temp_files
    configuration = k8s_client._configuration({"kubeconfig": kubeconfig_with_embedded_keys()})
    assert os.path.exists(configuration.key_file)
    remove_kubeconfig_temp_files()
    assert os.listdir(str(tmpdir_of_the_run)) == []
