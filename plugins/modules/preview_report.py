#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: preview_report
short_description: Summarise a check-mode sync run as a per-cluster preview (JSON and Markdown)
version_added: 0.3.0
description:
  - The last step of C(playbooks/preview.yml), on the controller. Reads the plan of
    M(gitops.federation.sync_plan) (run with a O(gitops.federation.sync_plan#module:ref_override), in check mode)
    and the results of M(gitops.federation.cluster_reconcile) on every attached cluster (check mode with diff), and
    says per source and cluster which objects would be created, changed (the fields we own that differ, Secret
    values redacted), pruned or deleted.
  - Writes the summary as JSON to O(json_path) and as a Markdown pull-request comment to O(markdown_path), and
    removes the plan's scratch directory (the check-mode bundles). Talks to no cluster.
author:
  - gitops.federation maintainers (@gitops-federation)
attributes:
  check_mode:
    support: full
    description: The report files are written in check mode too (they are the output, nothing on a cluster).
  diff_mode:
    support: none
    description: The diffs are in the report.
options:
  plan:
    description: The RV(gitops.federation.sync_plan#module:plan).
    type: dict
    required: true
  reconciled:
    description: Per attached host, its registered M(gitops.federation.cluster_reconcile) result.
    type: dict
    required: true
  ref:
    description: The ref that was previewed (as given to C(sync_plan)), for the report's title.
    type: raw
  json_path:
    description: Where to write the JSON summary (parent directory must exist); not written when omitted.
    type: path
  markdown_path:
    description: Where to write the Markdown summary (parent directory must exist); not written when omitted.
    type: path
seealso:
  - module: gitops.federation.sync_plan
  - module: gitops.federation.cluster_reconcile
"""

EXAMPLES = r"""
- name: Write the preview
  gitops.federation.preview_report:
    plan: "{{ gitops_sync.plan }}"
    reconciled: "{{ dict(groups['attached'] | zip(groups['attached'] | map('extract', hostvars)
                    | map(attribute='gitops_reconcile', default={}))) }}"
    ref: "{{ preview_ref }}"
    json_path: preview.json
    markdown_path: preview.md
  register: gitops_preview
"""

RETURN = r"""
outcome:
  description: V(no_changes), V(changes) or V(error) (a source not rendered, a cluster not reconciled).
  returned: always
  type: str
exit_code:
  description: The exit status C(playbooks/preview.yml) ends with for this outcome (0, 2 or 1).
  returned: always
  type: int
summary:
  description:
    - The JSON summary - C(outcome), C(exit_code), C(ref), C(errors) and C(sources) (per source C(source),
      C(revision), C(error), and C(clusters) with per cluster C(outcome), C(created), C(changed) (subject and
      C(fields) with C(path), C(before), C(after)), C(pruned), C(deleted), C(counts) and C(error)).
  returned: always
  type: dict
markdown:
  description: The Markdown summary.
  returned: always
  type: str
"""

import json
import shutil

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_report import (
    preview, preview_markdown, write_report)


def argspec():
    return dict(
        plan=dict(type="dict", required=True),
        reconciled=dict(type="dict", required=True),
        ref=dict(type="raw"),
        json_path=dict(type="path"),
        markdown_path=dict(type="path"),
    )


def run_module(module):
    params = module.params
    summary = preview(params["plan"], params["reconciled"], params["ref"])
    markdown = preview_markdown(summary)
    written = []
    for path, text in ((params["json_path"], json.dumps(summary, indent=2, sort_keys=True) + "\n"),
                       (params["markdown_path"], markdown)):
        if path:
            write_report(path, text)  # a FederationError naming the path fails the module (cluster_module)
            written.append(path)
    scratch = params["plan"].get("scratch_dir")
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return dict(changed=bool(written), outcome=summary["outcome"], exit_code=summary["exit_code"],
                summary=summary, markdown=markdown, written=written)


def main():
    module_main(argspec(), run_module, cluster=False)  # talks to no cluster: no connection options


if __name__ == "__main__":
    main()
