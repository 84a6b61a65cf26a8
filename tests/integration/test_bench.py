"""A small run of `make bench` (tools/bench), so the benchmark cannot rot. No timing is asserted."""

import json
import os
import subprocess
import sys

from playbook import ROOT, ansible_env


def test_a_small_bench_run_measures_every_tool_and_writes_its_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "tools.bench", "--objects", "", "--clusters", "", "--compare", "20x1",
                           "--multi", "0", "--profile", "20x1", "--crds", "2x1", "--runs", "1", "--rss", "20",
                           "--out", str(out)],
                          cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cpus"] and report["versions"]["kube-apiserver"]
    case, crds = report["cases"]
    assert (case["objects"], case["clusters"]) == (20, 1)
    assert sorted(case["tools"]) == sorted(["sync.yml", "cluster_sync", "kubectl (parallel)", "kubectl (sequential)",
                                            "kubernetes.core.k8s"])
    for tool, steps in case["tools"].items():
        assert sorted(steps) == ["change", "first", "noop"], tool
        for step, figures in steps.items():
            assert len(figures["seconds"]) == 1 and figures["median"] > 0, (tool, step)
            assert figures["requests_per_cluster"] > 0, (tool, step)
    # Counted by the API server: a no-op of the engine writes nothing; a first sync writes every object.
    assert case["tools"]["cluster_sync"]["noop"]["writes_per_cluster"] == 0
    assert case["tools"]["kubectl (parallel)"]["first"]["writes_per_cluster"] >= 20
    # The CRD-heavy case: the engine applies CRDs and their custom resources in one run, kubectl in two passes.
    assert (crds["case"], crds["crds"], crds["objects"]) == ("CRD-heavy", 2, 42)
    assert sorted(crds["tools"]) == ["cluster_sync (CRDs)", "kubectl (CRDs, 2 passes)"]
    for tool, steps in crds["tools"].items():
        assert steps["first"]["writes_per_cluster"] >= 42, tool
    assert crds["tools"]["cluster_sync (CRDs)"]["noop"]["writes_per_cluster"] == 0
    assert report["profile"]["tasks"], "profile_tasks printed no task times"
    assert set(report["rss"]["modules"]) == {"cluster_sync", "cluster_reconcile"}
    assert all(m["peak_rss_mib"] > 0 for m in report["rss"]["modules"].values())
    assert not os.path.exists(report["workdir"]), "the bench left its clusters, git server or cache behind"


def test_a_small_push_latency_run_measures_push_to_applied(tmp_path):
    """tools/bench/push_latency.py: Gitea, the webhooks playbook, ansible-rulebook and one attached cluster."""
    out = tmp_path / "push.json"
    proc = subprocess.run([sys.executable, "-m", "tools.bench.push_latency", "--clusters", "1", "--runs", "1",
                           "--out", str(out)], cwd=ROOT, env=ansible_env(), capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (case,) = json.loads(out.read_text())["cases"]
    assert case["case"] == "push-to-applied" and case["clusters"] == 1
    assert len(case["seconds"]) == 1 and case["seconds"][0] > 0
