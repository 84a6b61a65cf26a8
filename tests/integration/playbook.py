"""Run the collection's modules and playbooks for real, through ansible-playbook.

Results come from the ansible.posix json stdout callback, so tests see exactly what a playbook sees.
"""

import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
COLLECTIONS_PATH = os.pathsep.join([
    os.path.join(ROOT, ".build", "collections"),
    os.path.join(os.path.dirname(os.path.dirname(os.__file__)), "site-packages"),
])


class PlaybookRun:
    def __init__(self, returncode, stdout, stderr, results):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.results = results  # one dict per task (localhost result), in order

    @property
    def output(self):
        return self.stdout + self.stderr


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS_PATH,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
    })
    env.update(extra or {})
    return env


def run_playbook(path, inventory=None, extra_vars=None, check=False, diff=False, verbosity=0, env=None,
                 callback="ansible.posix.json", timeout=900, args=()):
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), path]
    argv += ["-i", inventory or "localhost,"]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if verbosity:
        argv.append("-" + "v" * verbosity)
    argv += list(args)
    environment = ansible_env(env)
    environment["ANSIBLE_STDOUT_CALLBACK"] = callback
    proc = subprocess.run(argv, capture_output=True, text=True, env=environment, timeout=timeout, cwd=ROOT)
    results = []
    if callback == "ansible.posix.json":
        try:
            # The report is the last top-level JSON document; verbose display lines come before it.
            start = proc.stdout.rfind("\n{\n") + 1 if not proc.stdout.startswith("{") else 0
            report = json.loads(proc.stdout[start:])
            for play in report.get("plays", []):
                for task in play.get("tasks", []):
                    for host, result in task.get("hosts", {}).items():
                        result = dict(result, _host=host, _task=task["task"]["name"])
                        results.append(result)
        except ValueError:
            pass
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)


def run_module(module, args, check=False, diff=False, verbosity=0, env=None, play_vars=None):
    """Run one module on localhost (connection local); return (result dict, PlaybookRun)."""
    play = [{
        "hosts": "localhost", "connection": "local", "gather_facts": False, "vars": play_vars or {},
        "tasks": [{"name": "under test", module: args, "ignore_errors": True}],
    }]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(play, handle)
        path = handle.name
    try:
        run = run_playbook(path, check=check, diff=diff, verbosity=verbosity, env=env)
    finally:
        os.unlink(path)
    if not run.results:
        raise AssertionError(f"ansible-playbook produced no result (rc={run.returncode}):\n{run.output[-4000:]}")
    return run.results[0], run
