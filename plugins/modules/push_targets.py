#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: push_targets
short_description: The GitOps sources a git push affects (same repository, a ref the source follows)
version_added: 0.1.0
description:
  - Reads the GitOps sources (C(FederatedKustomization) + C(FederatedGitRepository)) of the given project
    namespaces on the management cluster and returns those whose repository URL and ref match a push
    received by the C(gitops.federation.scm_push) event source.
  - The repository matches when the source's URL (or any placed cluster's URL, after overrides) and one of
    the push's repository URLs name the same host and path; scheme, user, port, C(.git) and case are ignored,
    so https and ssh URLs of one repository match.
  - "The ref matches when the source follows the pushed branch (C(ref.branch), or no ref and the push is to
    the repository's default branch), the pushed tag (C(ref.tag)), or a tag whose version its C(ref.semver)
    range accepts. A source pinned to C(ref.commit) never matches."
  - Suspended sources, sources being torn down and sources with errors are returned in RV(skipped), not in
    RV(targets), as are sources of the same repository that follow another ref.
  - With O(marks_dir), a source whose sync started after the push arrived (the glue playbook marks each start
    there) is skipped too, because that sync fetched a head at least as new as the push. So pushes made while a
    sync runs coalesce into one follow-up sync.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only.
options:
  namespaces:
    description: The project namespaces whose sources may be affected.
    type: list
    elements: str
    required: true
  push:
    description:
      - The push, as the C(gitops_push) mapping of an C(scm_push) event (C(event.gitops_push) in a rulebook,
        C(ansible_eda.event.gitops_push) in a playbook it runs). Needs C(ref), C(commit) and
        C(repository.keys) or C(repository.urls); C(default_branch) and C(received_at) are used when present.
    type: dict
    required: true
  clusters:
    description:
      - The attached clusters of the inventory, so that per-cluster overrides of the URL or ref count.
        Same forms as M(gitops.federation.gitops_source_info) O(clusters).
    type: list
    elements: raw
    default: []
  marks_dir:
    description:
      - Directory on the controller where each sync start is recorded as C(<marks_dir>/<project>/<source>).
        Not given, no push is considered covered.
    type: path
  mark_targets:
    description:
      - Record now, in O(marks_dir), the sync start of every source returned in RV(targets), for the syncs that
        follow (the C(sync_on_push) role runs them right after this module). A mark taken before a sync starts
        is on the safe side - a push received between the mark and that sync's fetch is not considered covered,
        so it gets a sync of its own - and it saves a task per source.
      - Needs O(marks_dir). Nothing is recorded in check mode.
    type: bool
    default: false
notes:
  - A project namespace that does not exist has no sources, so it matches nothing.
seealso:
  - module: gitops.federation.gitops_source_info
"""

EXAMPLES = r"""
- name: Sources the push of an scm_push event affects
  gitops.federation.push_targets:
    namespaces: "{{ gitops_projects | map(attribute='namespace') }}"
    push: "{{ ansible_eda.event.gitops_push }}"
    clusters: "{{ groups['attached'] }}"
    marks_dir: "{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/gitops-federation/push-syncs"
  register: push
"""

RETURN = r"""
targets:
  description: The sources to sync, in namespace then name order.
  returned: always
  type: list
  elements: dict
  contains:
    project:
      description: The project namespace.
      type: str
    source:
      description: The source name.
      type: str
    reason:
      description: Why it matches.
      type: str
      sample: follows branch main
  sample: [{project: team-a, source: podinfo, reason: follows branch main}]
skipped:
  description: Sources of the pushed repository that are not synced, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{project: team-a, source: podinfo-stable, reason: follows branch stable}]
commit:
  description: The pushed commit.
  returned: always
  type: str
ref:
  description: The pushed ref.
  returned: always
  type: str
  sample: refs/heads/main
"""

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import (
    FEDERATED_GIT_REPOSITORY, FEDERATED_KUSTOMIZATION)
from ansible_collections.gitops.federation.plugins.module_utils.federation.gitops_sources import source_view
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import parse_inventory_clusters
from ansible_collections.gitops.federation.plugins.module_utils.federation.push_match import (
    check_push, mark_sync_start, select_targets)


def argspec():
    return dict(
        namespaces=dict(type="list", elements="str", required=True),
        push=dict(type="dict", required=True),
        clusters=dict(type="list", elements="raw", default=[]),
        marks_dir=dict(type="path"),
        mark_targets=dict(type="bool", default=False),
    )


def read_sources(store, namespace, clusters):
    kustomizations = store.list(FEDERATED_KUSTOMIZATION, namespace)
    repositories = dict((r["metadata"]["name"], r) for r in store.list(FEDERATED_GIT_REPOSITORY, namespace))
    views = []
    for kustomization in kustomizations:
        source_ref = ((((kustomization.get("spec") or {}).get("template") or {}).get("spec") or {}).get("sourceRef")
                      or {}).get("name") or kustomization["metadata"]["name"]
        views.append(source_view(kustomization, repositories.get(source_ref), clusters))
    return views


def run_module(module):
    params = module.params
    push = check_push(params["push"])
    clusters = parse_inventory_clusters(params["clusters"])
    store = module.store()
    sources = []
    for namespace in sorted(set(params["namespaces"])):
        sources.extend(read_sources(store, namespace, clusters))
    targets, skipped = select_targets(sources, params["push"], params["marks_dir"])
    if params["mark_targets"]:
        if not params["marks_dir"]:
            module.fail_json(msg="mark_targets needs marks_dir (where the sync starts are recorded)")
        if not module.check_mode:
            for target in targets:
                mark_sync_start(params["marks_dir"], target["project"], target["source"])
    module.exit_json(changed=False, targets=targets, skipped=skipped, commit=push["commit"], ref=push["ref"])


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()
