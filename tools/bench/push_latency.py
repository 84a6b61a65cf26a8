"""Push-to-applied latency of sync on push, measured on local clusters with a real SCM and the real rulebook.

    python -m tools.bench.push_latency [--clusters 2,6] [--runs 3] [--out docs/performance-push.json]

For each cluster count M: local API servers (management + M attached), a Gitea (webhooks registered by the
`webhooks` playbook), `ansible-rulebook` running the `sync_on_push` rulebook with the collection's `scm_push`
listener. Each run commits a new ConfigMap and pushes it; the latency is from `git push` returning to the new
ConfigMap being readable on every attached cluster (polled every 0.1 s on all clusters at once).
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import yaml

from tools.bench.bench import ROOT, VENV_BIN, Bench, machine, versions
from tools.localenv.binaries import binary
from tools.localenv.gitea import Gitea
from tools.localenv.processes import free_port

def configmap(name, value):
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                           "data": {"value": value}})


class PushWorld:
    """One project whose source follows a Gitea repository, synced to M attached clusters on push."""

    def __init__(self, bench, gitea, attached, workdir):
        self.bench, self.gitea, self.attached, self.workdir = bench, gitea, attached, workdir
        self.namespace = bench.name("push")
        self.repo = bench.name("app")
        self.secret = "bench-webhook-secret-%d" % os.getpid()
        self.port = free_port()
        gitea.create_repo(self.repo, files={"base.yaml": configmap("base", "v0")})
        project = {"namespace": self.namespace,
                   "secrets": [{"name": "git", "username": gitea.username, "password": gitea.password,
                                "cluster_selector": {"matchLabels": {"env": "bench"}}}],
                   "sources": [{"name": "app", "url": gitea.http_url(self.repo), "ref": {"branch": "main"},
                                "secret": "git", "scm": "gitea", "path": ".",
                                "cluster_selector": {"matchLabels": {"env": "bench"}}}]}
        self.inventory = bench.inventory(attached, [project])
        self.env = dict(bench.env, GITOPS_WEBHOOK_SECRET=self.secret)
        self.rulebook = None

    def playbook(self, name, extra=None):
        return self.bench.playbook("gitops.federation." + name, self.inventory, extra,
                                   forks=max(5, len(self.attached) + 1), env=self.env)

    def start(self):
        self.playbook("sources")
        self.playbook("sync")
        self.playbook("webhooks", {"gitops_webhook_url": "http://127.0.0.1:%d/hooks" % self.port})
        variables = os.path.join(self.workdir, "rulebook-vars-%d.yml" % self.port)
        with open(variables, "w") as handle:
            yaml.safe_dump({"gitops_webhook_port": self.port, "gitops_webhook_path": "/hooks"}, handle)
        self.log = os.path.join(self.workdir, "rulebook-%d.log" % self.port)
        with open(self.log, "ab") as log:
            self.rulebook = subprocess.Popen(
                [os.path.join(VENV_BIN, "ansible-rulebook"), "--rulebook", "gitops.federation.sync_on_push",
                 "-i", self.inventory, "--vars", variables],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.rulebook.poll() is not None:
                raise RuntimeError("ansible-rulebook exited: %s" % open(self.log).read()[-3000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("the listener did not open port %d" % self.port)

    def stop(self):
        if self.rulebook and self.rulebook.poll() is None:
            os.killpg(self.rulebook.pid, signal.SIGTERM)
            try:
                self.rulebook.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.rulebook.pid, signal.SIGKILL)
                self.rulebook.wait()

    def readable(self, host, name):
        return subprocess.run(
            [binary("kubectl"), "--kubeconfig", self.bench.clusters[host].kubeconfig, "get", "configmap", name,
             "-n", self.namespace, "-o", "name"], capture_output=True).returncode == 0

    def push_and_wait(self, run, timeout=180):
        """Seconds from the push returning until the new ConfigMap is readable on every attached cluster."""
        name = "pushed-%d" % run
        self.gitea.commit(self.repo, files={name + ".yaml": configmap(name, "run %d" % run)}, message=name)
        pushed = time.monotonic()
        seen = {}

        def watch(host):
            while time.monotonic() - pushed < timeout:
                if self.readable(host, name):
                    seen[host] = time.monotonic() - pushed
                    return
                time.sleep(0.1)

        threads = [threading.Thread(target=watch, args=(h,)) for h in self.attached]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if len(seen) != len(self.attached):
            raise RuntimeError("push %s not applied on %s within %ss; rulebook output:\n%s" % (
                name, sorted(set(self.attached) - set(seen)), timeout, open(self.log).read()[-4000:]))
        return max(seen.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", default="2,6", help="attached cluster counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "performance-push.json"))
    parser.add_argument("--collections", default=os.path.join(ROOT, ".build", "collections"))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *unused: sys.exit(143))
    counts = [int(x) for x in args.clusters.split(",") if x.strip()]
    workdir = tempfile.mkdtemp(prefix="gitops-push-bench-")
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "machine": machine(), "versions": versions(), "runs": args.runs, "cases": []}
    bench = gitea = None
    try:
        bench = Bench(workdir, max(counts), os.path.abspath(args.collections))
        gitea = Gitea(os.path.join(workdir, "gitea")).start()
        for m in counts:
            world = PushWorld(bench, gitea, ["attached-%d" % i for i in range(1, m + 1)], workdir)
            try:
                world.start()
                seconds = []
                for run in range(args.runs):
                    seconds.append(round(world.push_and_wait(run), 2))
                    print("  push-to-applied M=%d run %d: %.2fs" % (m, run + 1, seconds[-1]), flush=True)
                    time.sleep(1)  # the rulebook's previous sync has returned; next push starts afresh
            finally:
                world.stop()
            ordered = sorted(seconds)
            report["cases"].append(dict(case="push-to-applied", clusters=m, seconds=seconds, min=ordered[0],
                                        median=ordered[len(ordered) // 2]))
            with open(args.out, "w") as handle:
                json.dump(report, handle, indent=1, sort_keys=True)
    finally:
        if gitea is not None:
            gitea.stop()
        if bench is not None:
            bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
