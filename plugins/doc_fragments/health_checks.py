# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The ``health_checks`` option (health.parse_health_checks reads it)."""

    DOCUMENTATION = r"""
options:
  health_checks:
    description:
      - Custom readiness rules per kind, as JMESPath expressions over the live objects, used when waiting for
        readiness (O(wait=true)). They replace the built-in rule for that kind.
    type: list
    elements: dict
    suboptions:
      kind:
        description: Kind the rule applies to.
        type: str
        required: true
      api_version:
        description: apiVersion the rule applies to (any when omitted).
        type: str
      current:
        description: JMESPath expression; the object is ready when it is truthy.
        type: str
        required: true
      failed:
        description: JMESPath expression; the object has failed (stop waiting) when it is truthy.
        type: str
"""
