# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module drift_report, run in Ansible's worker process when it would run on the controller (plugin_utils/in_worker.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gitops.federation.plugins.plugin_utils.in_worker import InWorkerAction


class ActionModule(InWorkerAction):
    pass
