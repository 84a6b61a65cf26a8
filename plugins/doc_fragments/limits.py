# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The ``limits`` option of the modules that fetch and render sources (git_fetch.LIMITS_ARG_SPEC)."""

    DOCUMENTATION = r"""
options:
  limits:
    description:
      - What one source may cost the controller (the sync playbooks take it from the inventory variable
        C(gitops_limits)). A repository or render past a limit is refused with an error naming the limit and
        this option; nothing is checked out (file count and file size are read from the commit's tree first),
        rendered, written or applied.
      - The download is bounded by O(limits.max_fetch_size) and by the timeout of the git work (the option
        C(timeout) of M(gitops.federation.git_render), the source's C(timeout) for M(gitops.federation.sync_plan)).
    type: dict
    suboptions:
      max_files:
        description: Files in the commit's tree (the whole repository, at the resolved commit).
        type: int
        default: 20000
      max_file_size:
        description: Bytes of any one file of the commit (10 MiB).
        type: int
        default: 10485760
      max_render_size:
        description:
          - Bytes read to render the path (50 MiB) - the sum of its manifest files, or the output of
            C(kustomize build).
        type: int
        default: 52428800
      max_fetch_size:
        description:
          - Bytes of any one file C(git fetch) writes into the cache (512 MiB) - the pack it receives, or one
            object. git has no size limit of its own; it runs under RLIMIT_FSIZE, so a repository holding a huge
            file that does not compress is stopped there, and the partial download is removed.
        type: int
        default: 536870912
"""
