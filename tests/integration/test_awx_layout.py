"""The AWX layout of docs/awx.md, run as AWX runs it (ansible-runner), against the real local clusters.

Two credentials are attached to the job, as the guide describes: the built-in "OpenShift or Kubernetes API
Bearer Token" credential for the management cluster (it exports K8S_AUTH_HOST, K8S_AUTH_API_KEY,
K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT) and the custom "Kubeconfig (gitops)" credential holding one
context per attached cluster (it exports K8S_AUTH_KUBECONFIG). The inventory is the guide's: host_vars/mgmt.yml
reads host/api_key/ca_cert from the environment, group_vars/attached the kubeconfig, host_vars per attached
cluster its context. Every object must land on the cluster it belongs to.
"""

import glob
import json
import os
import subprocess

import yaml

from playbook import VENV_BIN, ansible_env
from test_leaks import cluster_admin_token, read
from test_playbooks import APP_OBJECTS, ATTACHED, MANAGEMENT, SECRET, SOURCE, Env, condition

# docs/awx.md, section 3, as files of the inventory directory.
HOST_VARS_MANAGEMENT = {
    "host": "{{ lookup('ansible.builtin.env', 'K8S_AUTH_HOST') }}",
    "api_key": "{{ lookup('ansible.builtin.env', 'K8S_AUTH_API_KEY') }}",
    "ca_cert": "{{ lookup('ansible.builtin.env', 'K8S_AUTH_SSL_CA_CERT') | default(omit, true) }}",
}
GROUP_VARS_ATTACHED = {"kubeconfig": "{{ lookup('ansible.builtin.env', 'K8S_AUTH_KUBECONFIG') }}"}


def attached_kubeconfig(env, path):
    """The "Kubeconfig (gitops)" credential's file: one context per attached cluster, named after its host."""
    merged = {"apiVersion": "v1", "kind": "Config", "current-context": ATTACHED[0],
              "clusters": [], "users": [], "contexts": []}
    for host in ATTACHED:
        config = yaml.safe_load(read(env.hosts[host].kubeconfig))
        merged["clusters"].append({"name": host, "cluster": config["clusters"][0]["cluster"]})
        merged["users"].append({"name": host, "user": config["users"][0]["user"]})
        merged["contexts"].append({"name": host, "context": {"cluster": host, "user": host}})
    with open(path, "w") as handle:
        yaml.safe_dump(merged, handle)
    os.chmod(path, 0o600)
    return path


def private_data_dir(env, project, root, token):
    """A private data dir as AWX prepares one: project/, inventory/ (hosts, group_vars, host_vars), env/."""
    for sub in ("project", "inventory/group_vars", "inventory/host_vars", "env"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for name in ("sources", "sync"):
        with open(os.path.join(root, "project", name + ".yml"), "w") as handle:
            yaml.safe_dump([{"name": name, "import_playbook": "gitops.federation." + name}], handle)
    inventory = {"all": {"children": {
        "management": {"hosts": {MANAGEMENT: None}},
        "attached": {"hosts": dict((host, None) for host in ATTACHED)},
    }}}
    files = {
        "inventory/hosts.yml": inventory,
        "inventory/group_vars/all.yml": {"ansible_connection": "local", "gitops_projects": [project.spec]},
        "inventory/group_vars/attached.yml": GROUP_VARS_ATTACHED,
        "inventory/host_vars/%s.yml" % MANAGEMENT: HOST_VARS_MANAGEMENT,
    }
    for host in ATTACHED:
        files["inventory/host_vars/%s.yml" % host] = {
            "context": host, "cluster_labels": {"env": "demo", "name": host}}
    for path, content in files.items():
        with open(os.path.join(root, path), "w") as handle:
            yaml.safe_dump(content, handle, sort_keys=False)
    management = env.hosts[MANAGEMENT]
    settings = ansible_env()
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": settings["ANSIBLE_COLLECTIONS_PATH"],
        "ANSIBLE_PYTHON_INTERPRETER": settings["ANSIBLE_PYTHON_INTERPRETER"],
        "ANSIBLE_NOCOLOR": "1",
        # The Bearer Token credential (management cluster) ...
        "K8S_AUTH_HOST": management.server,
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": management.ca_file,
        # ... and the kubeconfig credential (attached clusters).
        "K8S_AUTH_KUBECONFIG": attached_kubeconfig(env, os.path.join(root, "env", "kubeconfig")),
    }
    with open(os.path.join(root, "env", "envvars"), "w") as handle:
        yaml.safe_dump(envvars, handle)
    with open(os.path.join(root, "env", "settings"), "w") as handle:
        yaml.safe_dump({"job_timeout": 600, "idle_timeout": 300}, handle)
    return root


def run_job(root, playbook_name, ident):
    environment = dict((k, v) for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_")))
    environment["PATH"] = VENV_BIN + os.pathsep + environment["PATH"]
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-runner"), "run", root, "-p", playbook_name + ".yml",
                           "--ident", ident], capture_output=True, text=True, env=environment,
                          stdin=subprocess.DEVNULL, timeout=900)
    artifacts = os.path.join(root, "artifacts", ident)
    events = []
    for path in sorted(glob.glob(os.path.join(artifacts, "job_events", "*.json"))):
        with open(path) as handle:
            events.append(json.load(handle))
    return proc, artifacts, events


def test_the_documented_awx_layout_puts_every_object_on_its_own_cluster(clusters, admin_clients, git_servers,
                                                                         tmp_path):
    env = Env(clusters, admin_clients, git_servers, str(tmp_path))
    project = env.project("awx")
    token = cluster_admin_token(env.hosts[MANAGEMENT], env.management, "awx-" + project.namespace)
    root = private_data_dir(env, project, str(tmp_path / "runner"), token)

    for name in ("sources", "sync"):
        proc, artifacts, events = run_job(root, name, "%s-%s" % (name, project.namespace))
        failures = [(e["event_data"].get("task"), e["event_data"].get("host"), e["event_data"]["res"].get("msg"))
                    for e in events if e.get("event") == "runner_on_failed"]
        assert proc.returncode == 0, (failures, proc.stdout[-4000:])
        with open(os.path.join(artifacts, "status")) as handle:
            assert handle.read().strip() == "successful"
        # What AWX stores and shows: the job's output and its events (runner's own `command` and `env/` files
        # hold the credentials' environment, as AWX's private data dir does, and are removed with it).
        for path in [os.path.join(artifacts, "stdout")] + glob.glob(os.path.join(artifacts, "job_events", "*.json")):
            if os.path.isfile(path):
                text = read(path)
                assert token not in text, "the management token leaked into %s" % path
                assert env.git.password not in text, "the git password leaked into %s" % path

    # The source and its secret are declared on the management cluster...
    assert project.source() is not None
    assert project.get(MANAGEMENT, "v1", "Secret", SECRET) is not None
    # ... and the app and the propagated secret land on each attached cluster, with that cluster's overlay ...
    for host, replicas in ((ATTACHED[0], 1), (ATTACHED[1], 2)):
        for api_version, kind, name in APP_OBJECTS:
            assert project.get(host, api_version, kind, name) is not None, "%s %s missing on %s" % (kind, name, host)
        assert project.deployment(host)["spec"]["replicas"] == replicas
        propagated = project.get(host, "v1", "Secret", SECRET)
        assert propagated is not None and "gitops.federation/owner" in propagated["metadata"]["labels"]
        assert project.inventory_configmap(host) is not None
    # ... and never on the management cluster, where a K8S_AUTH_HOST override would have sent them.
    for api_version, kind, name in APP_OBJECTS:
        assert project.get(MANAGEMENT, api_version, kind, name) is None, "%s %s was applied to the management cluster" % (
            kind, name)
    assert project.inventory_configmap(MANAGEMENT) is None
    status = project.source()["status"]
    assert condition(status, "Propagation")["status"] == "True", status
    assert sorted(c["name"] for c in status.get("clusters") or []) == sorted(ATTACHED), status
