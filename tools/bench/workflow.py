"""python -m tools.bench.workflow: what the AWX workflow form of the sync costs per job and per cluster.

For the sizing guidance of docs/awx.md: starts a management and N attached bare API servers and a git server,
declares the demo project (a Deployment, a Service and a ConfigMap per cluster, plus its federated secret), then runs the workflow's jobs with
ansible-playbook (first sync, then a no-op run): the plan job, an apply job limited to 1 cluster, an apply job
on the other N-1 clusters with one fork per cluster, and the record job. Each job is timed and its CPU (user +
sys of every process of the job) and largest process (peak RSS) read with wait4. The per-cluster cost of an
apply job is the difference between the two apply jobs divided by N-2; the rest is the job's fixed cost.

    python -m tools.bench.workflow [--clusters 8] [--json out.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

from tools.localenv.binaries import bin_dir_path
from tools.localenv.clusters import LocalClusters
from tools.localenv.gitserver import GitServers
from tools.localenv.inventory import EXAMPLE_APP, demo_project

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)


def run(playbook, inventory, extra=None, limit=None, forks=5, cache=None):
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(ROOT, "playbooks", playbook + ".yml"),
            "-i", inventory, "-f", str(forks)]
    if limit:
        argv += ["-l", limit]
    if extra:
        argv += ["-e", json.dumps(extra)]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([
        os.path.join(ROOT, ".build", "collections"),
        os.path.join(os.path.dirname(os.path.dirname(os.__file__)), "site-packages")]),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_SHOW_CUSTOM_STATS="1",
        GITOPS_FEDERATION_CACHE=cache, PATH=bin_dir_path() + os.pathsep + VENV_BIN + os.pathsep + os.environ["PATH"])
    began = time.monotonic()
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        unused, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - began
        output.seek(0)
        text = output.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit("%s failed (%d):\n%s" % (playbook, code, text[-3000:]))
    measured = dict(wall=round(wall, 1), cpu=round(usage.ru_utime + usage.ru_stime, 1),
                    peak_rss_mib=usage.ru_maxrss // 1024)
    artifact = None
    if playbook == "sync_workflow_plan":
        report = json.loads(text[0 if text.startswith("{") else text.rfind("\n{\n") + 1:])
        artifact = report["global_custom_stats"]["gitops_sync_run"]
    return measured, artifact


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=8, help="attached clusters (at least 3)")
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench-workflow-")
    clusters, git = LocalClusters(os.path.join(work, "clusters")), GitServers(os.path.join(work, "git"))
    results = {"clusters": args.clusters, "load_before": os.getloadavg()[0], "steps": []}
    try:
        names = ["mgmt"] + ["attached-%d" % i for i in range(1, args.clusters + 1)]
        started = dict(zip(names, clusters.start(names)))
        git.start()
        git.create_repo("demo", source_dir=EXAMPLE_APP)
        project = demo_project(git, repo="demo", namespace="bench-workflow")
        attached = names[1:]
        inventory = os.path.join(work, "hosts.yml")
        with open(inventory, "w") as handle:
            yaml.safe_dump({"all": {
                "vars": {"ansible_connection": "local", "gitops_projects": [project],
                         "gitops_management": {"kubeconfig": started["mgmt"].kubeconfig}},
                "children": {
                    "management": {"hosts": {"mgmt": {"kubeconfig": started["mgmt"].kubeconfig}}},
                    "attached": {"hosts": dict((n, {"kubeconfig": started[n].kubeconfig,
                                                    "cluster_labels": {"env": "demo"}}) for n in attached)}}}},
                handle)
        cache = os.path.join(work, "cache")
        run("sources", inventory, cache=cache)
        for step in ("first", "no-op"):
            plan, reference = run("sync_workflow_plan", inventory, cache=cache)
            extra = {"gitops_sync_run": reference}
            one, unused = run("sync_workflow_apply", inventory, extra, limit=attached[0], forks=1, cache=cache)
            rest, unused = run("sync_workflow_apply", inventory, extra, limit=",".join(attached[1:]),
                               forks=len(attached) - 1, cache=cache)
            record, unused = run("sync_workflow_record", inventory, extra, cache=cache)
            per_cluster = (rest["cpu"] - one["cpu"]) / (len(attached) - 2)
            results["steps"].append(dict(step=step, plan=plan, apply_1=one, apply_rest=rest, record=record,
                                         apply_cpu_per_cluster=round(per_cluster, 2),
                                         apply_cpu_fixed=round(one["cpu"] - per_cluster, 2)))
            print(json.dumps(results["steps"][-1]), flush=True)
    finally:
        git.stop()
        clusters.stop()
    results["load_after"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
