# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Skip the checkout and render of a source whose inputs did not change since its bundle was written.

A render is a pure function of the commit, the render options (path, substitute, ignore), the kustomize
binary and the collection's own rendering code. Next to each bundle the sync keeps a stamp: a digest of all
of these (no value of them) and the revision. When the remote ref still points at the same commit (the
``git ls-remote`` every run makes anyway, with the source's credentials) and the stamp matches, the bundle on
disk is the render: no checkout, no kustomize, no YAML parse and dump. Anything else renders anew.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import inspect
import json
import os

from ansible_collections.gitops.federation.plugins.module_utils.source import manifest_yaml, render

# Bump when the bundle a render writes changes for the same inputs in a way the code digest cannot see.
STAMP_FORMAT = 1
_CODE_DIGEST = []


def code_digest():
    """A digest of the rendering code (render and the YAML loader), so a collection upgrade renders anew."""
    if not _CODE_DIGEST:
        digest = hashlib.sha256()
        for module in (render, manifest_yaml):
            try:
                digest.update(inspect.getsource(module).encode("utf-8"))
            except (IOError, OSError, TypeError):
                digest.update(b"unknown:" + module.__name__.encode("utf-8"))
        # The ignore rules are pathspec's: another version of it may read them otherwise.
        digest.update(str(getattr(render.pathspec, "__version__", None)).encode("utf-8"))
        _CODE_DIGEST.append(digest.hexdigest())
    return _CODE_DIGEST[0]


def kustomize_identity(kustomize_path=None):
    """Path, size and mtime of the kustomize binary a render would use (None when there is none)."""
    try:
        path = render.find_kustomize(kustomize_path)
        info = os.stat(path)
    except Exception:  # no kustomize: plain directories still render
        return None
    return [os.path.realpath(path), info.st_size, int(info.st_mtime)]


def stamp_key(commit, options, kustomize_path=None):
    """The digest of everything a render depends on; options: path, substitute, ignore, limits."""
    inputs = [STAMP_FORMAT, commit, options.get("path") or ".", options.get("substitute"), options.get("ignore"),
              options.get("limits"),
              kustomize_identity(kustomize_path), code_digest()]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def stamp_path(bundle):
    return bundle + ".stamp"


def cached_render(bundle, key):
    """(revision, bundle text) when bundle was written from inputs with this key, else None."""
    try:
        with open(stamp_path(bundle)) as handle:
            stamp = json.load(handle)
        if not isinstance(stamp, dict) or stamp.get("key") != key:
            return None
        with open(bundle, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (IOError, OSError, ValueError):
        return None
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != stamp.get("sha256"):
        return None  # edited or truncated since: render anew
    return stamp.get("revision"), text


def write_stamp(bundle, key, revision, text):
    """Record which inputs the bundle was rendered from (0600, atomically; no input value is written)."""
    path = stamp_path(bundle)
    tmp = path + ".tmp"
    data = dict(key=key, revision=revision, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def forget(bundle):
    """Drop the stamp (the bundle is being rewritten from another render)."""
    try:
        os.remove(stamp_path(bundle))
    except OSError:
        pass
