"""Run the collection's modules and playbooks for real, through ansible-playbook.

Results come from the ansible.posix json stdout callback, so tests see exactly what a playbook sees.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

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


def descendants(pid):
    """Every live process below pid (Ansible's workers call setsid: a process group does not hold them)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc):
    """SIGKILL ansible-playbook and every process it started, as a controller that dies (OOM, node lost)."""
    tree = [proc.pid] + descendants(proc.pid)
    for pid in tree:  # stopped first, so that none starts another process meanwhile
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _run(argv, environment, timeout, during):
    """(returncode, stdout, stderr); during(proc), when given, is called while the command runs."""
    if during is None:
        proc = subprocess.run(argv, capture_output=True, text=True, env=environment, timeout=timeout, cwd=ROOT)
        return proc.returncode, proc.stdout, proc.stderr
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=environment, cwd=ROOT)
        deadline = time.monotonic() + timeout
        try:
            during(proc)
            proc.wait(max(1, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                kill_tree(proc)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read()


def run_playbook(path, inventory=None, extra_vars=None, check=False, diff=False, verbosity=0, env=None,
                 callback="ansible.posix.json", timeout=900, args=(), during=None):
    """Run ansible-playbook; during(proc), when given, runs meanwhile (to act on the run, kill_tree it...)."""
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
    returncode, stdout, stderr = _run(argv, environment, timeout, during)
    results = []
    if callback == "ansible.posix.json":
        try:
            # The report is the last top-level JSON document; verbose display lines come before it.
            start = stdout.rfind("\n{\n") + 1 if not stdout.startswith("{") else 0
            report = json.loads(stdout[start:])
            for play in report.get("plays", []):
                for task in play.get("tasks", []):
                    for host, result in task.get("hosts", {}).items():
                        result = dict(result, _host=host, _task=task["task"]["name"])
                        results.append(result)
        except ValueError:
            pass
    return PlaybookRun(returncode, stdout, stderr, results)


def run_module(module, args, check=False, diff=False, verbosity=0, env=None, play_vars=None, during=None):
    """Run one module on localhost (connection local); return (result dict, PlaybookRun)."""
    play = [{
        "hosts": "localhost", "connection": "local", "gather_facts": False, "vars": play_vars or {},
        "tasks": [{"name": "under test", module: args, "ignore_errors": True}],
    }]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(play, handle)
        path = handle.name
    try:
        run = run_playbook(path, check=check, diff=diff, verbosity=verbosity, env=env, during=during)
    finally:
        os.unlink(path)
    if not run.results and during is None:
        raise AssertionError(f"ansible-playbook produced no result (rc={run.returncode}):\n{run.output[-4000:]}")
    return (run.results[0] if run.results else None), run
