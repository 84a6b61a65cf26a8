# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import only the parts of the kubernetes library the cluster client uses (about 0.5 s less per module run).

``import kubernetes`` loads every API class and about 700 model classes. ``module_utils/k8s/client.py`` needs
four parts: ``client.Configuration``, the REST layer (``client.rest``), ``client.exceptions`` and the
kubeconfig loaders (``config.kube_config``, ``config.incluster_config``). ``install()``, called by a module
before anything imports ``kubernetes``, registers light ``kubernetes``, ``kubernetes.client`` and
``kubernetes.config`` packages (the real directories, without their ``__init__`` imports) that expose exactly
those parts; ``ApiClient`` resolves to the real class on first use beyond its REST client (OIDC token
refresh). Any other attribute of the light packages imports the real library's package on demand.

Only module processes call it (each runs one module, nothing else imports kubernetes there).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os
import sys
import types


class _LightPackage(types.ModuleType):
    """A package of the real directory whose __init__ was not run; unknown attributes are imported on demand."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return importlib.import_module("%s.%s" % (self.__name__, name))
        except ImportError:
            raise AttributeError("%s has no attribute %s (light import, see lazy_kubernetes.py)" % (self.__name__, name))


def _package(name, path):
    module = _LightPackage(name)
    module.__path__ = [path]
    module.__package__ = name
    module.__file__ = os.path.join(path, "__init__.py")
    sys.modules[name] = module
    return module


def install():
    """Register the light packages unless kubernetes is already imported or not installed. Returns whether it did."""
    if "kubernetes" in sys.modules:
        return False
    try:
        from importlib.util import find_spec
        spec = find_spec("kubernetes")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.origin:
        return False
    root = os.path.dirname(spec.origin)
    kubernetes = _package("kubernetes", root)
    client = _package("kubernetes.client", os.path.join(root, "client"))
    config = _package("kubernetes.config", os.path.join(root, "config"))
    kubernetes.client, kubernetes.config = client, config
    try:
        configuration = importlib.import_module("kubernetes.client.configuration")
        rest = importlib.import_module("kubernetes.client.rest")
        exceptions = importlib.import_module("kubernetes.client.exceptions")
        client.Configuration, client.rest, client.exceptions = configuration.Configuration, rest, exceptions
        client.ApiException = exceptions.ApiException

        class ApiClient(object):
            """The REST client of a Configuration; anything else is the real ApiClient's, created on first use."""

            def __init__(self, configuration=None, *args, **kwargs):
                self.configuration = configuration or client.Configuration.get_default_copy()
                self.rest_client = rest.RESTClientObject(self.configuration)
                self._args, self._kwargs, self._real = args, kwargs, None

            def __getattr__(self, name):
                if name.startswith("_"):
                    raise AttributeError(name)
                if self._real is None:
                    from kubernetes.client.api_client import ApiClient as RealApiClient
                    self._real = RealApiClient(self.configuration, *self._args, **self._kwargs)
                return getattr(self._real, name)

        client.ApiClient = ApiClient
        kube_config = importlib.import_module("kubernetes.config.kube_config")
        incluster = importlib.import_module("kubernetes.config.incluster_config")
        config.ConfigException = importlib.import_module("kubernetes.config.config_exception").ConfigException
        for name in ("KUBE_CONFIG_DEFAULT_LOCATION", "load_kube_config", "load_kube_config_from_dict",
                     "list_kube_config_contexts", "new_client_from_config"):
            setattr(config, name, getattr(kube_config, name))
        config.load_incluster_config = incluster.load_incluster_config
    except Exception:  # any surprise in another library release: fall back to the ordinary import
        for name in [n for n in sys.modules if n == "kubernetes" or n.startswith("kubernetes.")]:
            del sys.modules[name]
        return False
    return True
