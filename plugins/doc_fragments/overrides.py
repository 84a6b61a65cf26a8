# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The ``overrides`` option of the federated objects' modules."""

    # Overrides of the template only (federated_secret); overrides.override_options() is the spec.
    DOCUMENTATION = r"""
options:
  overrides:
    description:
      - Per-cluster changes, JSON-patch style (C(spec.overrides)); what a path without target patches is said in
        the module's notes.
    type: list
    elements: dict
    suboptions:
      cluster_name:
        description: The attached cluster the operations apply to.
        type: str
        required: true
        aliases: [clusterName]
      cluster_overrides:
        description: The operations, applied in order.
        type: list
        elements: dict
        required: true
        aliases: [clusterOverrides]
        suboptions:
          op:
            description: The operation. V(add) needs the parent to exist, V(replace) and V(remove) the path itself.
            type: str
            choices: [add, replace, remove]
            default: replace
          path:
            description: RFC 6901 JSON pointer (C(~1) for C(/) and C(~0) for C(~) in keys; C(-) appends to a list).
            type: str
            required: true
          value:
            description: The value for V(add) and V(replace).
            type: raw
"""

    # Overrides of the template, or with target of the rendered objects (gitops_source).
    TARGETS = r"""
options:
  overrides:
    description:
      - Per-cluster changes, JSON-patch style (C(spec.overrides)); what a path without target patches is said in
        the module's notes.
      - With C(target) an operation patches the rendered objects it selects on that cluster (for example
        V(/spec/replicas) of the Deployment C(web)).
    type: list
    elements: dict
    suboptions:
      cluster_name:
        description: The attached cluster the operations apply to.
        type: str
        required: true
        aliases: [clusterName]
      cluster_overrides:
        description: The operations, applied in order.
        type: list
        elements: dict
        required: true
        aliases: [clusterOverrides]
        suboptions:
          op:
            description: The operation. V(add) needs the parent to exist, V(replace) and V(remove) the path itself.
            type: str
            choices: [add, replace, remove]
            default: replace
          path:
            description: RFC 6901 JSON pointer (C(~1) for C(/) and C(~0) for C(~) in keys; C(-) appends to a list).
            type: str
            required: true
          value:
            description: The value for V(add) and V(replace).
            type: raw
          target:
            description: The rendered objects to patch instead of the template.
            type: dict
            suboptions:
              group:
                description: API group of the objects (V("") for the core group); any group when omitted.
                type: str
              kind:
                description: Kind of the objects.
                type: str
                required: true
              name:
                description: Name of the objects.
                type: str
                required: true
              namespace:
                description: Namespace of the objects, when the rendered manifests set one.
                type: str
"""
