# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one error type.

Module code raises FederationError with a message that names the object, file or option and says
what to fix; only a module's ``main()`` turns it into ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class FederationError(Exception):
    """An error a user can act on. ``details`` become extra keys of the module's failure result."""

    def __init__(self, msg, **details):
        super(FederationError, self).__init__(msg)
        self.msg = msg
        self.details = details


def fail_module(module, err):
    """Report a FederationError through an AnsibleModule (the one place errors meet Ansible)."""
    module.fail_json(msg=err.msg, **err.details)
