#!/usr/bin/env python3
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Move plugins/module_utils into its layers (k8s/, source/, apply/, federation/) and rewrite every reference.

Run once, from the repository root, after the branches in flight are merged (docs/architecture.md, "Layers",
has the same table):

    python3 tools/relayer.py            # git mv + rewrites; prints what it did
    python3 tools/relayer.py --check    # exit 1 when anything is still to do (nothing is changed)

Idempotent: a second run finds nothing to move and nothing to rewrite. What it does:

1. ``git mv plugins/module_utils/<old>.py plugins/module_utils/<new>.py`` for each entry of LAYERS (files that
   are already moved are skipped), and creates the empty ``__init__.py`` of each subpackage (ansible-test's
   empty-init rule).
2. Rewrites Python imports and dotted names in plugins/, tests/, tools/ and extensions/:
   ``...module_utils.<old>`` -> ``...module_utils.<new dotted>``, and
   ``from ...module_utils import a, b as c`` -> one ``from ...module_utils.<package> import ...`` per package.
   ``module_utils.federation`` is both an old module (federation.py) and a new package: a name imported from
   it that is not one of the package's modules is an old import and goes to ``federation.store``.
3. Rewrites file paths ``module_utils/<old>.py`` in docs/, README.md and the files of step 2 (comments,
   docstrings). changelogs/ is history and left alone.

Files it does not know (a module_utils file added after this table was written) stay where they are and are
listed at the end, so the table can be completed and the script run again.
"""

from __future__ import absolute_import, division, print_function

import argparse
import os
import re
import subprocess
import sys

PREFIX = "ansible_collections.gitops.federation.plugins.module_utils"

# old file (plugins/module_utils/<old>.py) -> new path below plugins/module_utils (without .py).
LAYERS = {
    # foundation: imported by every layer
    "errors": "errors",
    "private_dirs": "private_dirs",
    # the module base: what modules import first (builds on k8s/, reaches federation/ lazily)
    "cluster_module": "cluster_module",
    # k8s/: talking to one API server
    "auth_options": "k8s/auth_options",
    "client": "k8s/client",
    "discovery_cache": "k8s/discovery_cache",
    "lazy_kubernetes": "k8s/lazy_kubernetes",
    # source/: from a git repository to a validated bundle
    "git_fetch": "source/git_fetch",
    "render": "source/render",
    "manifest_yaml": "source/manifest_yaml",
    "process": "source/process",
    "render_cache": "source/render_cache",
    "source_refs": "source/source_refs",
    "scm_webhooks": "source/scm_webhooks",
    # apply/: one bundle onto one cluster
    "objects": "apply/objects",
    "plan": "apply/plan",
    "drift": "apply/drift",
    "engine": "apply/engine",
    "inventory": "apply/inventory",
    "change_set": "apply/change_set",
    "health": "apply/health",
    "field_diff": "apply/field_diff",
    "source_policy": "apply/source_policy",
    # federation/: the federated objects on the management cluster, and the sync across clusters
    "federation": "federation/store",
    "placement": "federation/placement",
    "overrides": "federation/overrides",
    "status": "federation/status",
    "events": "federation/events",
    "lease": "federation/lease",
    "federated_secrets": "federation/federated_secrets",
    "gitops_sources": "federation/gitops_sources",
    "secret_data": "federation/secret_data",
    "sync_record": "federation/sync_record",
    "push_match": "federation/push_match",
    "sync_run": "federation/sync_run",
    "sync_steps": "federation/sync_steps",
    "sync_windows": "federation/sync_windows",
    "sync_report": "federation/sync_report",
    "sync_handoff": "federation/sync_handoff",
    "rollout": "federation/rollout",
}

PACKAGES = sorted(set(new.split("/")[0] for new in LAYERS.values() if "/" in new))
CODE_DIRS = ("plugins", "tests", "tools", "extensions")
DOC_PATHS = ("docs", "README.md")
TEXT_ENDINGS = (".py", ".md", ".yml", ".yaml", ".txt", ".cfg", ".ini", ".j2", ".sh")
THIS_FILE = os.path.join("tools", "relayer.py")


def dotted(new):
    return new.replace("/", ".")


# Names of the modules of each new package, and of the top level, after the move.
PACKAGE_MODULES = dict((package, set(new.split("/")[1] for new in LAYERS.values() if new.startswith(package + "/")))
                       for package in PACKAGES)


def _module_path_re():
    """PREFIX.<old> not followed by another name character or by a '.<module of the new package>'."""
    olds = sorted(LAYERS, key=len, reverse=True)
    return re.compile(re.escape(PREFIX) + r"\.(" + "|".join(olds) + r")(?![\w])((?:\.\w+)?)")


MODULE_PATH_RE = _module_path_re()
FROM_PACKAGE_RE = re.compile(r"^(?P<indent>[ \t]*)from " + re.escape(PREFIX) +
                             r" import (?P<names>\([^)]*\)|[^\n]*?)(?P<comment>[ \t]*#[^\n]*)?$", re.M)
FROM_MODULE_RE = re.compile(r"^(?P<indent>[ \t]*)from " + re.escape(PREFIX) +
                            r"\.federation import (?P<names>\([^)]*\)|[^\n]*?)(?P<comment>[ \t]*#[^\n]*)?$", re.M)
FILE_PATH_RE = re.compile(r"(?<![\w/])((?:plugins/)?module_utils/)(" + "|".join(sorted(LAYERS, key=len, reverse=True)) +
                          r")\.py\b")


def rewrite_dotted(text):
    def replace(match):
        old, rest = match.group(1), match.group(2)
        new = dotted(LAYERS[old])
        if old in PACKAGES:
            # module_utils.federation.<x>: already the package when <x> is one of its modules; "from
            # module_utils.federation import" lines are rewrite_from_federation's.
            if rest and rest[1:] in PACKAGE_MODULES[old]:
                return match.group(0)
            if not rest and match.string.startswith(" import", match.end()):
                return match.group(0)
        if new == old:
            return match.group(0)
        return "%s.%s%s" % (PREFIX, new, rest)
    return MODULE_PATH_RE.sub(replace, text)


def _split_names(names):
    names = names.strip()
    if names.startswith("("):
        names = names[1:-1]
    return [n.strip() for n in names.replace("\n", " ").split(",") if n.strip()]


def rewrite_from_package(text):
    """from PREFIX import a, b as c -> one line per target package."""
    def replace(match):
        indent, comment = match.group("indent"), match.group("comment") or ""
        groups = {}
        for name in _split_names(match.group("names")):
            module = name.split(" as ")[0].strip()
            new = LAYERS.get(module, module)
            package = new.split("/")[0] if "/" in new else ""
            groups.setdefault(package, []).append(name if "/" not in new else name.replace(module, new.split("/")[1], 1))
        if set(groups) == {""}:
            return match.group(0)
        lines = []
        for package in sorted(groups):
            target = PREFIX + ("." + package if package else "")
            lines.append("%sfrom %s import %s" % (indent, target, ", ".join(groups[package])))
        lines[0] += comment
        return "\n".join(lines)
    return FROM_PACKAGE_RE.sub(replace, text)


def rewrite_from_federation(text):
    """from PREFIX.federation import NAMES: old federation.py attributes go to federation.store."""
    def replace(match):
        names = _split_names(match.group("names"))
        modules = [n for n in names if n.split(" as ")[0].strip() in PACKAGE_MODULES["federation"]]
        if len(modules) == len(names):
            return match.group(0)  # already imports modules of the package
        if modules:
            raise SystemExit("cannot tell old from new in: %s" % match.group(0))
        return match.group(0).replace(PREFIX + ".federation import", PREFIX + ".federation.store import", 1)
    return FROM_MODULE_RE.sub(replace, text)


def rewrite_paths(text):
    return FILE_PATH_RE.sub(lambda m: m.group(1) + LAYERS[m.group(2)] + ".py", text)


def tracked_files(root, paths):
    out = subprocess.run(["git", "ls-files", "-z", "--"] + list(paths), cwd=root, check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    return [f for f in out.split("\0") if f and f.endswith(TEXT_ENDINGS) and f != THIS_FILE]


def moves(root):
    """(old, new) pairs still to git mv."""
    base = os.path.join(root, "plugins", "module_utils")
    todo = []
    for old, new in sorted(LAYERS.items()):
        if old == new:
            continue
        src, dest = os.path.join(base, old + ".py"), os.path.join(base, new + ".py")
        if os.path.exists(src) and not os.path.exists(dest):
            todo.append((src, dest))
        elif os.path.exists(src) and os.path.exists(dest):
            raise SystemExit("both %s and %s exist: merge them by hand first" % (src, dest))
    return todo


def unknown_files(root):
    base = os.path.join(root, "plugins", "module_utils")
    known = set(LAYERS)
    return sorted(name[:-3] for name in os.listdir(base)
                  if name.endswith(".py") and name != "__init__.py" and name[:-3] not in known)


def rewrite(text, code):
    new = rewrite_paths(text)
    if code:
        new = rewrite_from_package(new)
        new = rewrite_from_federation(new)
        new = rewrite_dotted(new)
    return new


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report what is still to do; change nothing")
    parser.add_argument("--root", default=os.getcwd(), help="repository root (default: the current directory)")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    pending = []

    for src, dest in moves(root):
        pending.append("git mv %s %s" % (os.path.relpath(src, root), os.path.relpath(dest, root)))
        if not args.check:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            subprocess.run(["git", "mv", src, dest], cwd=root, check=True)
    for package in PACKAGES:
        init = os.path.join(root, "plugins", "module_utils", package, "__init__.py")
        if not os.path.exists(init):
            pending.append("create %s" % os.path.relpath(init, root))
            if not args.check:
                os.makedirs(os.path.dirname(init), exist_ok=True)
                open(init, "w").close()
                subprocess.run(["git", "add", init], cwd=root, check=True)

    code_files = set(tracked_files(root, CODE_DIRS))
    for path in sorted(code_files | set(tracked_files(root, DOC_PATHS))):
        full = os.path.join(root, path)
        if not os.path.exists(full):
            continue
        with open(full, encoding="utf-8") as handle:
            text = handle.read()
        new = rewrite(text, path.endswith(".py") and path in code_files)
        if new != text:
            pending.append("rewrite %s" % path)
            if not args.check:
                with open(full, "w", encoding="utf-8") as handle:
                    handle.write(new)

    for line in pending:
        print(line)
    unknown = unknown_files(root)
    if unknown:
        print("not in the table (left in place): %s" % ", ".join(unknown), file=sys.stderr)
    if args.check:
        return 1 if pending else 0
    print("%d change%s" % (len(pending), "" if len(pending) == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
