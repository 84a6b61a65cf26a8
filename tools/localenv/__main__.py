"""Command line for local environments: ``python -m tools.localenv <command>`` (see ``--help``)."""

import argparse
import os
import sys
import time

from .clusters import LocalClusters
from .gitserver import GitServers
from .processes import LocalEnvError

DEFAULT_DIR = os.environ.get(
    "GITOPS_FEDERATION_LOCALENV",
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".build", "localenv"),
)


def _cluster_names(args):
    if args.names:
        return [n.strip() for n in args.names.split(",") if n.strip()]
    return [f"cluster-{i}" for i in range(1, args.count + 1)]


def _print_memory(env):
    """Resident memory per cluster and process (etcd is shared by all clusters)."""
    for name, processes in env.memory_report().items():
        detail = ", ".join(f"{process} {rss / 2**20:.0f}" for process, rss in processes.items())
        print(f"  {name:<14} {sum(processes.values()) / 2**20:4.0f} MiB ({detail})")


def clusters_up(args):
    started = time.monotonic()
    env = LocalClusters(os.path.join(args.dir, "clusters"))
    names = _cluster_names(args)
    workloads = names if args.workloads else ()
    clusters = env.start(names, workloads=workloads)
    what = "etcd + apiservers" + (" + controller-manager, scheduler, kwok" if args.workloads else "")
    print(f"started {len(clusters)} clusters in {time.monotonic() - started:.1f}s "
          f"({what}: {env.memory_bytes() / 2**20:.0f} MiB resident)")
    _print_memory(env)
    print(f"kubeconfigs in {env.workdir}:")
    for cluster in clusters:
        print(f"  {cluster.name:<14} {cluster.server:<26} {cluster.kubeconfig}")
    print(f"  all contexts   {env.all_kubeconfig}")


def clusters_down(args):
    env = LocalClusters.load(os.path.join(args.dir, "clusters"))
    count = len(env.clusters)
    env.stop()
    print(f"stopped {count} clusters")


def git_up(args):
    servers = GitServers(os.path.join(args.dir, "git")).start()
    print(f"git over HTTP: {servers.http_base}/<repo>.git (user {servers.username}, password in {servers.state_path})")
    print(f"git over SSH:  {servers.ssh_base}/<repo>.git (deploy key {servers.deploy_key}, "
          f"known_hosts {servers.known_hosts})")


def git_down(args):
    GitServers.load(os.path.join(args.dir, "git")).stop()
    print("stopped git servers")


def demo_up(args):
    """Clusters management/attached-1/attached-2, git servers, the example app pushed, an inventory written."""
    from .inventory import EXAMPLE_APP, demo_project, write_inventory

    env = LocalClusters(os.path.join(args.dir, "clusters"))
    # The attached clusters run workloads (Deployments become Available); the management cluster only stores CRs.
    env.start(["mgmt", "attached-1", "attached-2"], workloads=["attached-1", "attached-2"] if args.workloads else ())
    servers = GitServers(os.path.join(args.dir, "git")).start()
    servers.create_repo("demo-app", source_dir=EXAMPLE_APP)
    path = write_inventory(os.path.join(args.dir, "inventory.yml"), env.clusters, [demo_project(servers, wait=args.workloads)], management="mgmt")
    print(f"clusters: {', '.join(c.name for c in env.clusters)} (kubeconfigs in {env.workdir}); resident memory:")
    _print_memory(env)
    print(f"git: {servers.http_url('demo-app')} holds examples/demo-app")
    print(f"inventory: {path}")


def demo_down(args):
    clusters_down(args)
    git_down(args)


def apiserver_stop(args):
    env = LocalClusters.load(os.path.join(args.dir, "clusters"))
    stopped = env.stop_apiserver(args.name)
    print(f"stopped kube-apiserver of {args.name}" if stopped else f"kube-apiserver of {args.name} was not running")


def apiserver_start(args):
    env = LocalClusters.load(os.path.join(args.dir, "clusters"))
    started = env.start_apiserver(args.name)
    print(f"started kube-apiserver of {args.name}" if started else f"kube-apiserver of {args.name} was running")


def git_repo(args):
    """Create repository NAME from a directory, or commit the directory's content as its new tree."""
    servers = GitServers.load(os.path.join(args.dir, "git"))
    if os.path.exists(os.path.join(servers.repos_dir, f"{args.name}.git")):
        sha = servers.commit(args.name, source_dir=args.source, replace=True, message=args.message)
    else:
        sha = servers.create_repo(args.name, source_dir=args.source)
    print(f"{servers.http_url(args.name)} {sha}")


def status(args):
    env = LocalClusters.load(os.path.join(args.dir, "clusters"))
    for cluster in env.clusters:
        workloads = f"workloads on {len(cluster.nodes)} kwok node(s)" if cluster.workloads else "no workloads"
        print(f"{cluster.name:<14} {cluster.server:<26} {cluster.kubeconfig}  ({workloads})")
    if env.clusters:
        print(f"resident memory: {env.memory_bytes() / 2**20:.0f} MiB")
        _print_memory(env)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.localenv", description=__doc__)
    parser.add_argument("--dir", default=DEFAULT_DIR, help="state directory (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("clusters-up", help="start N real control planes (etcd + kube-apiserver)")
    up.add_argument("--count", type=int, default=3)
    up.add_argument("--names", help="comma-separated cluster names (overrides --count)")
    up.add_argument("--workloads", action="store_true",
                    help="also run kube-controller-manager, kube-scheduler and kwok (a fake Node) in every cluster, "
                         "so Deployments roll out and Pods become Ready")
    up.set_defaults(func=clusters_up)
    commands.add_parser("clusters-down", help="stop the clusters").set_defaults(func=clusters_down)
    commands.add_parser("git-up", help="start the HTTP and SSH git servers").set_defaults(func=git_up)
    commands.add_parser("git-down", help="stop the git servers").set_defaults(func=git_down)
    commands.add_parser("status", help="list running clusters").set_defaults(func=status)
    demo = commands.add_parser("demo-up", help="clusters, git servers, example repository and inventory for the demo")
    demo.add_argument("--no-workloads", dest="workloads", action="store_false",
                      help="attached clusters without controller-manager, scheduler and kwok (Pods never run)")
    demo.set_defaults(func=demo_up)
    commands.add_parser("demo-down", help="stop what demo-up started").set_defaults(func=demo_down)
    down = commands.add_parser("apiserver-stop", help="stop one cluster's kube-apiserver (an outage; data is kept)")
    down.add_argument("name")
    down.set_defaults(func=apiserver_stop)
    back = commands.add_parser("apiserver-start", help="start a stopped kube-apiserver again (same port and data)")
    back.add_argument("name")
    back.set_defaults(func=apiserver_start)
    repo = commands.add_parser("git-repo", help="create a repository from a directory, or commit it as its new tree")
    repo.add_argument("name")
    repo.add_argument("--source", required=True, help="directory whose content becomes the branch's tree")
    repo.add_argument("--message", default="update")
    repo.set_defaults(func=git_repo)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except LocalEnvError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
