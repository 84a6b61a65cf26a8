# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The in-worker execution of the collection's modules (plugins/plugin_utils/in_worker.py), driven through
ansible-playbook: same results, same masking, and the ordinary module process when it is turned off."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.gitops.federation.plugins.plugin_utils.in_worker import (
    in_worker_disabled, same_interpreter)

SECRET = "in-worker-test-token-8c1f"
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: A module that fails before any request (bad kubeconfig path)
      gitops.federation.gitops_source_info:
        kubeconfig: /nonexistent/kubeconfig
        namespace: team-a
      register: bad_kubeconfig
      ignore_errors: true
    - name: A module that fails on its first request, with a no_log option
      gitops.federation.gitops_source_info:
        host: https://127.0.0.1:1
        api_key: "{{ token }}"
        namespace: team-a
        request_timeout: 2
      register: unreachable
      ignore_errors: true
    - name: Connection from the task environment (K8S_AUTH_KUBECONFIG)
      gitops.federation.gitops_source_info:
        namespace: team-a
      environment:
        K8S_AUTH_KUBECONFIG: /nonexistent/from-the-environment
      register: from_environment
      ignore_errors: true
    - name: Arguments the module refuses
      gitops.federation.gitops_source_info:
        kubeconfig: /nonexistent/kubeconfig
        namespace: team-a
        no_such_option: 1
      register: unknown_option
      ignore_errors: true
    - name: What the tasks returned
      ansible.builtin.copy:
        content: "{{ {'bad_kubeconfig': bad_kubeconfig, 'unreachable': unreachable,
                      'unknown_option': unknown_option, 'from_environment': from_environment} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def run_play(tmp_path, in_worker):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    out = tmp_path / ("out-%s.json" % in_worker)
    env = dict(os.environ, GITOPS_FEDERATION_IN_WORKER="1" if in_worker else "0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(play), "-i", "localhost,", "-vvv",
         "-e", json.dumps({"token": SECRET, "out": str(out)})],
        env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return run_play(tmp_path_factory.mktemp("worker"), True), run_play(tmp_path_factory.mktemp("process"), False)


def test_modules_run_in_the_worker_and_as_processes_when_turned_off(both):
    worker_log, process_log = both[0][1], both[1][1]
    assert "gitops.federation.gitops_source_info runs in the worker process" in worker_log
    assert "AnsiballZ_gitops_source_info" not in worker_log
    assert "AnsiballZ_gitops_source_info" in process_log
    assert "runs in the worker process" not in process_log


def test_results_are_the_same_either_way(both):
    worker, process = both[0][0], both[1][0]
    for name in ("bad_kubeconfig", "unreachable", "unknown_option", "from_environment"):
        assert worker[name]["failed"] is True and process[name]["failed"] is True, name
        assert worker[name]["msg"] == process[name]["msg"], name
        assert worker[name].get("invocation") == process[name].get("invocation"), name
    assert "does not exist (option kubeconfig)" in worker["bad_kubeconfig"]["msg"]
    assert "no_such_option" in worker["unknown_option"]["msg"]
    assert "cannot reach the API server https://127.0.0.1:1" in worker["unreachable"]["msg"]


def test_no_log_options_are_masked_in_results_and_logs(both):
    worker, worker_log = both[0]
    # Ansible shows the module's arguments (`invocation`) at -vvv: the no_log option is masked there.
    assert '"api_key": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in worker_log
    assert SECRET not in json.dumps(worker)
    # The -vvv log shows the task's arguments only as the playbook wrote them (a template), never the value.
    assert SECRET not in worker_log


def test_the_task_environment_reaches_the_module(both):
    worker, process = both[0][0], both[1][0]
    for result in (worker, process):
        assert "/nonexistent/from-the-environment" in result["from_environment"]["msg"]


@pytest.mark.parametrize("value, disabled", [("0", True), ("false", True), ("No", True), ("off", True),
                                             ("1", False), ("", False), ("yes", False)])
def test_the_switch(value, disabled):
    assert in_worker_disabled({"GITOPS_FEDERATION_IN_WORKER": value}) is disabled


def test_same_interpreter():
    assert same_interpreter(sys.executable)
    assert same_interpreter(os.path.realpath(sys.executable), sys.executable)
    assert not same_interpreter("/usr/bin/python-other", sys.executable)
    assert not same_interpreter(None)
    assert not same_interpreter("")
