# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the collection's modules inside Ansible's worker process when they would run on the controller anyway.

Every module of this collection talks to Kubernetes API servers over HTTPS, so the playbooks run it with
``connection: local`` and the controller's own Python. Executed the ordinary way, each task then starts a new
interpreter, unpacks the AnsiballZ payload and compiles ``ansible.module_utils.basic`` and the collection's
``module_utils`` from source (zipimport keeps no bytecode): about 0.6 s of CPU before the first request, for
each of the three module tasks of a sync and each attached cluster.

Ansible runs each task of each host in its own forked worker process. When the module would run on this
very machine, with this very interpreter, as this user, this action plugin runs the module's own ``main()``
in that worker instead: imported from the installed collection (bytecode cached), with the arguments and the
result going through the same serialization and the same result processing as a module run (argument
validation, ``no_log`` masking, ``invocation``, warnings). Nothing else changes; the module files stay the
modules, and any other case (another connection or interpreter, ``become``, ``async``,
``GITOPS_FEDERATION_IN_WORKER=0``) runs the module the ordinary way. The same pattern is used by
``ansible.netcommon`` for network modules ("direct execution").

Monkeypatching ``ansible.module_utils.basic`` and setting the task's ``environment`` are confined to the worker
process: the worker exits after this one task.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import json
import os
import sys
import traceback

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

IN_WORKER_ENV = "GITOPS_FEDERATION_IN_WORKER"
MODULE_PACKAGE = "ansible_collections.gitops.federation.plugins.modules"
# The serialization profile of ordinary (new-style Python) modules.
PROFILE = "legacy"


def in_worker_disabled(environ=None):
    """True when the operator turned the in-worker execution off (GITOPS_FEDERATION_IN_WORKER=0/false/no)."""
    value = (environ if environ is not None else os.environ).get(IN_WORKER_ENV, "")
    return value.strip().lower() in ("0", "false", "no", "off")


def same_interpreter(interpreter, executable=None):
    """Whether the module's interpreter is the Python running Ansible (so the worker can run the module)."""
    if not interpreter:
        return False
    executable = executable or sys.executable
    try:
        return os.path.realpath(interpreter) == os.path.realpath(executable) or interpreter == executable
    except (TypeError, ValueError):
        return False


def supported_by_this_ansible():
    """ansible-core 2.19+: module serialization profiles and the AnsibleModule result hook."""
    try:
        from ansible.module_utils import basic
        from ansible.module_utils.common import json as module_json
    except ImportError:
        return False
    return all(hasattr(basic, name) for name in ("_ANSIBLE_ARGS", "_ANSIBLE_PROFILE")) and \
        hasattr(basic.AnsibleModule, "_record_module_result") and hasattr(module_json, "get_module_encoder")


class InWorkerAction(ActionBase):
    """The action of a module of this collection: in the worker when possible, else the ordinary module run."""

    _VALID_ARGS = frozenset()  # the module validates its own arguments

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(InWorkerAction, self).run(tmp, task_vars)
        del tmp
        reason = self._why_not_in_worker(task_vars)
        if reason:
            display.vvvv("%s runs as a module process: %s" % (self._task.action, reason))
            result.update(self._execute_module(task_vars=task_vars))
            return result
        display.vvv("%s runs in the worker process" % self._task.action)
        result.update(self._run_in_worker(task_vars))
        return result

    # -- when -------------------------------------------------------------------------------------------------

    def _why_not_in_worker(self, task_vars):
        """None when the module can run in this process, else why not."""
        if in_worker_disabled():
            return "%s is off" % IN_WORKER_ENV
        if not supported_by_this_ansible():
            return "this ansible-core has no in-worker hooks (2.19 or later has them)"
        if getattr(self._connection, "transport", None) not in ("local", "ansible.builtin.local"):
            return "the connection is %s, not local" % getattr(self._connection, "transport", None)
        if self._task.async_val:
            return "async"
        if self._play_context.become:
            return "become"
        interpreter = task_vars.get("ansible_python_interpreter")
        try:
            interpreter = self._templar.template(interpreter) if interpreter else None
        except Exception as err:  # an interpreter we cannot work out here: let the module run decide
            return "ansible_python_interpreter: %s" % to_text(err)
        if not same_interpreter(interpreter):
            return "ansible_python_interpreter (%s) is not the Python running Ansible" % interpreter
        return None

    # -- how --------------------------------------------------------------------------------------------------

    def _run_in_worker(self, task_vars):
        # The task's `environment` (K8S_AUTH_* for instance) is what the module process would have had.
        environment = {}
        self._compute_environment_string(environment)
        os.environ.update(dict((to_text(k), to_text(v)) for k, v in environment.items()))
        module_args = dict(self._task.args)
        self._update_module_args(self._task.action, module_args, task_vars)
        stdout = run_module_main(self._module_name(), module_args)
        data = self._parse_returned_data(dict(stdout=stdout, stderr=""), PROFILE)
        for key in [k for k in data if k.startswith("_ansible_") and k != "_ansible_no_log"]:
            del data[key]
        return data

    def _module_name(self):
        # The action may be called by its short name inside the collection or by its FQCN.
        return self._task.action.rsplit(".", 1)[-1]


def remove_kubeconfig_temp_files():
    """Remove the files the kubernetes client wrote a kubeconfig's embedded certificates and keys to.

    A module process removes them at exit (atexit); an Ansible worker ends with os._exit, so without this
    every in-worker task would leave a private key behind.
    """
    client = sys.modules.get("ansible_collections.gitops.federation.plugins.module_utils.k8s.client")
    if client is not None:
        client.remove_kubeconfig_files()


def run_module_main(name, module_args):
    """Run the module ``name`` of this collection in this process; returns what it would print (its JSON)."""
    from ansible.module_utils import basic
    from ansible.module_utils.common import json as _json
    from ansible.module_utils.common import warnings as module_warnings

    encoder = _json.get_module_encoder(PROFILE, _json.Direction.CONTROLLER_TO_MODULE)
    basic._ANSIBLE_ARGS = json.dumps(dict(ANSIBLE_MODULE_ARGS=module_args), cls=encoder).encode("utf-8")
    basic._ANSIBLE_PROFILE = PROFILE
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()
    printed = []

    def record(module, result):
        out = _json.get_module_encoder(PROFILE, _json.Direction.MODULE_TO_CONTROLLER)
        printed.append(json.dumps(result, cls=out))

    basic.AnsibleModule._record_module_result = record
    try:
        module = importlib.import_module("%s.%s" % (MODULE_PACKAGE, name))
        module.main()
    except SystemExit:
        pass
    except Exception as err:  # what a module process would have printed as a traceback
        if not printed:
            printed.append(json.dumps(dict(failed=True, msg="MODULE FAILURE: %s: %s" % (type(err).__name__, err),
                                           exception=traceback.format_exc())))
    finally:
        remove_kubeconfig_temp_files()
    if not printed:
        return json.dumps(dict(failed=True, msg="MODULE FAILURE: %s returned no result" % name))
    return printed[-1]
