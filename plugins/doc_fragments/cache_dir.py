# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The ``cache_dir`` option of the sync modules that only keep discovery there (ClusterModule.client())."""

    DOCUMENTATION = r"""
options:
  cache_dir:
    description:
      - Directory of the collection's cache on the controller; discovery of each API server is kept in
        C(<cache_dir>/discovery) for a few minutes (keyed by server and a digest of the credentials; a kind not
        found there triggers a rediscovery), so the modules of one run discover each cluster once.
      - Without it, every run of the module discovers anew.
    type: path
"""
