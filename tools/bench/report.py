"""Markdown tables from a bench JSON: python -m tools.bench.report docs/performance.json"""

import json
import sys


def fmt(value):
    return "-" if value is None else ("%.2f" % value if isinstance(value, float) else str(value))


def tables(report):
    lines = ["Date %s; %s CPUs (%s), %.0f GiB; load average at start %s; %s runs each, interleaved." % (
        report["date"], report["machine"]["cpus"], report["machine"]["cpu"], report["machine"]["memory_gib"],
        ", ".join("%.1f" % x for x in report["machine"]["load_average_at_start"]), report["runs"]),
        "", "Versions: " + "; ".join("%s %s" % (k, v) for k, v in sorted(report["versions"].items())), ""]
    for case in report["cases"]:
        lines += ["#### %s: %d objects, %d attached cluster%s, %d source%s" % (
            case["case"], case["objects"], case["clusters"], "" if case["clusters"] == 1 else "s", case["sources"],
            "" if case["sources"] == 1 else "s"), "",
            "| tool | step | min s | median s | requests/cluster | per object | writes/cluster | dry-runs/cluster |",
            "|---|---|---|---|---|---|---|---|"]
        kubectl = (case["tools"].get("kubectl (parallel)") or {})
        for tool, steps in case["tools"].items():
            for step in ("first", "noop", "change"):
                figures = steps.get(step)
                if not figures:
                    continue
                ratio = ""
                if tool != "kubectl (parallel)" and kubectl.get(step):
                    ratio = " (%.1f× kubectl)" % (figures["median"] / kubectl[step]["median"])
                lines.append("| %s | %s | %s | %s%s | %s | %s | %s | %s |" % (
                    tool, step, fmt(figures["min"]), fmt(figures["median"]), ratio,
                    fmt(figures.get("requests_per_cluster")), fmt(figures.get("requests_per_object")),
                    fmt(figures.get("writes_per_cluster")), fmt(figures.get("dry_runs_per_cluster"))))
        lines.append("")
    if report.get("rss"):
        lines += ["Peak RSS of the module process, first sync of %d objects: %s." % (
            report["rss"]["objects"], ", ".join("%s %.0f MiB" % (m, v["peak_rss_mib"])
                                                for m, v in sorted(report["rss"]["modules"].items()))), ""]
    if report.get("profile"):
        profile = report["profile"]
        lines += ["No-op `sync.yml` (%d objects, %d clusters) under `profile_tasks`: %.1f s" % (
            profile["objects"], profile["clusters"], profile["seconds"]), "", "| task | s |", "|---|---|"]
        lines += ["| %s | %.2f |" % (name, took) for name, took in profile["tasks"]]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(tables(json.load(handle)))
