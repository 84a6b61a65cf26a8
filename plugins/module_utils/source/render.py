# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a directory of a checkout into a validated bundle of Kubernetes objects.

A directory with a kustomization file goes through ``kustomize build``; any other directory is read
recursively (``.yaml``, ``.yml``, ``.json``; multi-document YAML; hidden files and directories skipped;
files in path order). ``substitute`` then replaces ``${VAR}`` as Flux's postBuild does, every object is
validated, and the bundle is one multi-document YAML file with a sha256 digest.

Limits (``git_fetch.Limits``, the option ``limits``): no manifest file above ``max_file_size``, no more than
``max_files`` of them, and at most ``max_render_size`` bytes read per render (the files' sizes are checked
before any is read; kustomize's output goes to a file capped by RLIMIT_FSIZE), so a huge bundle is refused
with an error naming the limit instead of exhausting the controller's memory.

Nothing is read from outside the checkout: ``path`` and every symlink reachable from it must resolve inside
it; every local kustomization reference reachable from ``path`` must too, and remote ones (URLs, git
repositories) are refused, naming the kustomization file and the entry. kustomize runs with
``--load-restrictor LoadRestrictionsRootOnly`` (files only from within each kustomization's directory) and a
minimal environment: ``HOME`` a private empty directory, no SSH agent, no credential helper, no ``GIT_*``,
proxy or token variables of the controller, and git transports disabled (``GIT_ALLOW_PROTOCOL``), so it can
neither fetch remote bases nor use the operator's credentials.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import hashlib
import os
import re
import shutil
import tempfile

try:
    import pathspec
    HAS_PATHSPEC = True
except ImportError:  # reported when a source sets ignore
    pathspec = None
    HAS_PATHSPEC = False

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import Limits, minimal_env
from ansible_collections.gitops.federation.plugins.module_utils.source.process import (
    ProcessTimeout, file_size_cap, run_bounded)
from ansible_collections.gitops.federation.plugins.module_utils.source.manifest_yaml import (
    dump_all,
    expand_lists,
    load_documents,
    typed_scalar,
)


class PlainScalar(str):
    """An unquoted YAML scalar that holds '${': after substitution its text is typed again, as YAML would type
    it (``replicas: ${N}`` becomes a number), while quoted scalars stay strings, as with Flux."""


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MANIFEST_EXTENSIONS = (".yaml", ".yml", ".json")
SUBSTITUTE_ANNOTATION = "kustomize.toolkit.fluxcd.io/substitute"
MAX_REPORTED_ERRORS = 20
# Kustomization fields whose entries name files or other kustomizations (local paths, or remote for kustomize).
KUSTOMIZE_REFERENCE_FIELDS = ("resources", "bases", "components", "crds", "transformers", "generators",
                              "validators", "configurations")
LOAD_RESTRICTOR = "LoadRestrictionsRootOnly"
# How kustomize recognises a remote reference (kustomize's repospec and HTTP loader): a URL, its git:: and gh:
# forms, scp-like user@host:path, and github.com/... without a scheme.
_REMOTE_REFERENCE_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git::|gh:|[^/:@\s]+@[^/:\s]+:|github\.com/)")
_VAR_NAME_RE = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
# '$${' is the escape for a literal '${'; otherwise ${NAME}, ${NAME:=default} or ${NAME:-default}.
_SUBSTITUTION_RE = re.compile(r"\$\$\{|\$\{([_a-zA-Z][_a-zA-Z0-9]*)(?:(:=|:-)([^}]*))?\}")


class Manifest:
    """One rendered object and where it came from (for error messages)."""

    __slots__ = ("obj", "origin")

    def __init__(self, obj, origin):
        self.obj = obj
        self.origin = origin

    @property
    def identity(self):
        obj = self.obj if isinstance(self.obj, dict) else {}
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        text = "%s/%s" % (obj.get("kind") or "?", metadata.get("name") or "?")
        return "%s/%s" % (metadata["namespace"], text) if metadata.get("namespace") else text


class RenderResult:
    def __init__(self, objects, method):
        self.objects = objects
        self.method = method  # "kustomize" or "plain"


# -- path safety ---------------------------------------------------------------------------------------------

def _inside(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_path(root, path):
    """The real directory ``path`` (relative to the repository root) names, refusing anything that leaves it.

    A leading ``/`` means the repository root, as in Flux. ``..`` above the root and symlinks resolving
    outside the checkout are refused.
    """
    root_real = os.path.realpath(root)
    given = path if path not in (None, "") else "."
    relative = given.lstrip("/") or "."
    lexical = os.path.normpath(os.path.join(root_real, relative))
    if not _inside(lexical, root_real):
        raise FederationError("path %r leaves the repository: it must name a directory inside it, relative to "
                              "the repository root, without '..' above the root" % given, path=given)
    parts = os.path.relpath(lexical, root_real).split(os.sep)
    if ".git" in parts:
        raise FederationError("path %r points into the .git directory" % given, path=given)
    # Walk component by component so the error can name the symlink that escapes.
    current = root_real
    for part in parts if parts != ["."] else []:
        current = os.path.join(current, part)
        if os.path.islink(current) and not _inside(os.path.realpath(current), root_real):
            raise FederationError("path %r leaves the repository through the symlink %s -> %s"
                                  % (given, os.path.relpath(current, root_real), os.readlink(current)), path=given)
    real = os.path.realpath(lexical)
    if not os.path.exists(real):
        raise FederationError("path %r does not exist in the repository" % given, path=given)
    if not os.path.isdir(real):
        raise FederationError("path %r is not a directory" % given, path=given)
    return real


def check_symlinks(root, top):
    """Refuse any symlink under ``top`` (``.git`` excluded) that resolves outside the checkout ``root``."""
    root_real = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in dirnames + filenames:
            candidate = os.path.join(dirpath, name)
            if os.path.islink(candidate) and not _inside(os.path.realpath(candidate), root_real):
                raise FederationError("the symlink %s points outside the repository (to %s); refused"
                                      % (os.path.relpath(candidate, root_real), os.readlink(candidate)),
                                      path=os.path.relpath(candidate, root_real))


def kustomization_file(directory):
    for name in KUSTOMIZATION_FILES:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _check_kustomize_references(root_real, directory, seen=None):
    """Refuse what kustomize could read outside the checkout from ``directory``: local references of any
    reachable kustomization that resolve outside it, remote references (URLs, git repositories), and escaping
    symlinks in the directories of those kustomizations.

    kustomize itself confines files to a kustomization's root (LoadRestrictionsRootOnly) but loads other
    kustomization directories from anywhere, and fetches remote ones with whatever git and network it finds.
    """
    seen = set() if seen is None else seen
    if directory in seen:
        return
    seen.add(directory)
    check_symlinks(root_real, directory)
    path = kustomization_file(directory)
    if path is None:
        return
    with open(path, "rb") as handle:
        documents = load_documents(handle.read(), os.path.relpath(path, root_real))
    document = documents[0].value if documents else None
    if not isinstance(document, dict):
        return
    for field in KUSTOMIZE_REFERENCE_FIELDS:
        entries = document.get(field) or []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, str) or "\n" in entry:
                continue  # inline transformer configurations are not references
            if _REMOTE_REFERENCE_RE.match(entry.strip()):
                raise FederationError("%s refers to the remote %s %r; remote kustomize bases and resources are "
                                      "refused (they would be fetched without the source's credentials): vendor "
                                      "them into the repository, or make them a source of their own"
                                      % (os.path.relpath(path, root_real), field, entry),
                                      file=os.path.relpath(path, root_real))
            target = os.path.normpath(os.path.join(directory, entry))
            if not _inside(target, root_real) or not _inside(os.path.realpath(target), root_real):
                raise FederationError("%s refers to %r in %s, outside the repository; refused"
                                      % (os.path.relpath(path, root_real), entry, field),
                                      file=os.path.relpath(path, root_real))
            if os.path.isdir(target):
                _check_kustomize_references(root_real, os.path.realpath(target), seen)


# -- kustomize -----------------------------------------------------------------------------------------------

def find_kustomize(kustomize_path=None):
    """kustomize_path, else kustomize on PATH, else the collection's tooling cache."""
    if kustomize_path:
        path = os.path.expanduser(kustomize_path)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise FederationError("kustomize_path %s is not an executable file" % kustomize_path)
        return path
    found = shutil.which("kustomize")
    if found:
        return found
    cache = (os.environ.get("GITOPS_FEDERATION_CACHE")
             or os.path.join(os.path.expanduser("~"), ".cache", "gitops-federation"))
    cached = sorted(p for p in glob.glob(os.path.join(cache, "bin", "*", "kustomize")) if os.access(p, os.X_OK))
    if cached:
        return cached[-1]
    raise FederationError("kustomize is needed to render a directory with a kustomization file but was not "
                          "found: install it on PATH or set kustomize_path")


def kustomize_build(root, directory, kustomize_path=None, timeout=None, limits=None):
    """The YAML text ``kustomize build`` prints for ``directory``; its stderr is in the error.

    The output goes to a file in a private directory, capped one byte above limits.max_render_size by
    RLIMIT_FSIZE, so an endless or huge output stops kustomize instead of filling memory or disk.
    """
    limits = Limits.from_option(limits)
    binary = find_kustomize(kustomize_path)
    relative = os.path.relpath(directory, os.path.realpath(root))
    home = tempfile.mkdtemp(prefix="gitops-federation-kustomize-")
    cap = limits.max_render_size + 1

    try:
        env = minimal_env()
        # HOME is private and empty: no ~/.gitconfig, ~/.ssh, ~/.netrc or kustomize plugins of the operator.
        # No git transport is allowed, so a remote base that got past the check cannot be cloned either.
        env.update(HOME=home, XDG_CONFIG_HOME=home, GIT_ALLOW_PROTOCOL="none", GIT_SSH_COMMAND="false")
        with open(os.path.join(home, "build.yaml"), "w+b") as output:
            try:
                returncode, unused, err = run_bounded(
                    [binary, "build", "--load-restrictor", LOAD_RESTRICTOR, directory], cwd=root, env=env,
                    timeout=timeout, stdout=output, preexec_fn=file_size_cap(cap))
            except OSError as error:
                raise FederationError("cannot run kustomize %s: %s" % (binary, error.strerror))
            except ProcessTimeout:
                raise FederationError("kustomize build %s did not finish within %ss (option timeout)"
                                      % (relative, timeout))
            size = os.fstat(output.fileno()).st_size
            if size > limits.max_render_size:
                raise limits.exceeded("kustomize build %s" % relative, "max_render_size",
                                      "its output has more than %d bytes" % limits.max_render_size)
            output.seek(0)
            out = output.read()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if returncode != 0:
        stderr = err.decode("utf-8", "replace").strip() or "no error output"
        raise FederationError("kustomize build %s failed: %s" % (relative, stderr), path=relative)
    return out.decode("utf-8", "replace")


# -- reading manifests ---------------------------------------------------------------------------------------

def load_yaml_documents(text, name, plain_scalar=None):
    """Manifests of a manifest file, parsed as kubectl parses it (see manifest_yaml); empty documents are
    skipped. Errors give file and line."""
    return [Manifest(document.value, "%s document %d" % (name, document.index))
            for document in load_documents(text, name, plain_scalar)]


def manifest_files(root_real, directory):
    """Manifest files under directory in a stable order: hidden entries skipped, symlinks inside followed once."""
    found, seen = [], set()

    def walk(current):
        real = os.path.realpath(current)
        if real in seen:
            return
        seen.add(real)
        for name in sorted(os.listdir(current)):
            if name.startswith("."):
                continue
            candidate = os.path.join(current, name)
            if os.path.islink(candidate) and not _inside(os.path.realpath(candidate), root_real):
                raise FederationError("the symlink %s points outside the repository (to %s); refused"
                                      % (os.path.relpath(candidate, root_real), os.readlink(candidate)),
                                      path=os.path.relpath(candidate, root_real))
            if os.path.isdir(candidate):
                walk(candidate)
            elif name.lower().endswith(MANIFEST_EXTENSIONS) and os.path.isfile(candidate):
                found.append(candidate)

    walk(directory)
    return found


def check_sizes(root_real, directory, paths, limits):
    """Refuse manifest files past the limits before any is read: the count, each size and their total."""
    relative = os.path.relpath(directory, root_real)
    if len(paths) > limits.max_files:
        raise limits.exceeded("the path %s" % relative, "max_files", "%d manifest files" % len(paths))
    total = 0
    for path in paths:
        size = os.stat(path).st_size
        if size > limits.max_file_size:
            raise limits.exceeded("the file %s" % os.path.relpath(path, root_real), "max_file_size",
                                  "%d bytes" % size)
        total += size
        if total > limits.max_render_size:
            raise limits.exceeded("the path %s" % relative, "max_render_size",
                                  "its manifest files have more than %d bytes" % limits.max_render_size)


def read_plain_directory(root_real, directory, plain_scalar=None, limits=None):
    manifests = []
    paths = manifest_files(root_real, directory)
    check_sizes(root_real, directory, paths, Limits.from_option(limits))
    for path in paths:
        name = os.path.relpath(path, root_real)
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8")
        except UnicodeDecodeError as err:
            raise FederationError("%s is not UTF-8 text (byte %d)" % (name, err.start), file=name)
        except (IOError, OSError) as err:
            raise FederationError("cannot read %s: %s" % (name, err.strerror), file=name)
        # like kubectl, the content decides: JSON when it starts with '{', YAML otherwise
        manifests.extend(load_yaml_documents(text, name, plain_scalar))
    return manifests


# -- substitution --------------------------------------------------------------------------------------------

def normalize_variables(substitute):
    """substitute as {name: text}; names as Flux allows them, scalar values only."""
    variables = {}
    for name, value in (substitute or {}).items():
        if not isinstance(name, str) or not _VAR_NAME_RE.match(name):
            raise FederationError("substitute: %r is not a valid variable name (letters, digits and _, not "
                                  "starting with a digit)" % (name,))
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif value is None:
            value = ""
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            raise FederationError("substitute: the value of %s must be a string or number, not %s"
                                  % (name, type(value).__name__))
        variables[name] = value
    return variables


def substitute_text(text, variables, missing):
    """text with ${VAR}, ${VAR:=default} and ${VAR:-default} replaced; '$${' becomes a literal '${'.

    A variable that is empty or not set takes the default; one without a default that is not set is added
    to ``missing`` and left as it is.
    """
    def replace(match):
        if match.group(1) is None:
            return "${"
        name, operator, default = match.group(1), match.group(2), match.group(3)
        value = variables.get(name)
        if operator:
            return value if value else default
        if value is None:
            missing.add(name)
            return match.group(0)
        return value

    return _SUBSTITUTION_RE.sub(replace, text)


def _typed(text):
    """A substituted plain scalar typed as kubectl types plain scalars (int, float, bool, null or str)."""
    try:
        return typed_scalar(text)
    except ValueError as err:  # .nan, .inf: JSON cannot carry them
        raise FederationError("substitute: the value %r cannot be sent to the API server: %s" % (text, err))


def _substitute_value(value, variables, missing):
    if isinstance(value, dict):
        # keys stay strings: a typed key (``1:``) is never what a Kubernetes object needs
        return dict((str(substitute_text(k, variables, missing)) if isinstance(k, str) else k,
                     _substitute_value(v, variables, missing)) for k, v in value.items())
    if isinstance(value, list):
        return [_substitute_value(item, variables, missing) for item in value]
    if isinstance(value, PlainScalar):
        return _typed(substitute_text(value, variables, missing))
    if isinstance(value, str) and "${" in value:
        return substitute_text(value, variables, missing)
    return value


def _plain_strings(value):
    """value with PlainScalar marks turned back into str (the dumper only knows str)."""
    if isinstance(value, dict):
        return dict((_plain_strings(k), _plain_strings(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_plain_strings(item) for item in value]
    return str(value) if isinstance(value, PlainScalar) else value


def substitute_manifests(manifests, substitute):
    """Flux postBuild substitution, object by object, in every string (keys too) of the object.

    Unquoted scalars are typed again after substitution (``replicas: ${N:=2}`` gives the number 2), quoted
    ones stay strings. Values never add YAML structure. An object annotated
    ``kustomize.toolkit.fluxcd.io/substitute: disabled`` is left alone. A variable without a value or a
    default is an error, so a typo never deploys an empty string.
    """
    variables = normalize_variables(substitute)
    result, errors = [], []
    for manifest in manifests:
        obj = manifest.obj
        metadata = obj.get("metadata") if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) else {}
        annotations = metadata.get("annotations") if isinstance(metadata.get("annotations"), dict) else {}
        if annotations.get(SUBSTITUTE_ANNOTATION) == "disabled":
            result.append(Manifest(_plain_strings(obj), manifest.origin))
            continue
        missing = set()
        substituted = _substitute_value(obj, variables, missing)
        if missing:
            errors.append("%s (%s): %s" % (manifest.identity, manifest.origin, ", ".join(sorted(missing))))
        result.append(Manifest(substituted, manifest.origin))
    if errors:
        raise FederationError(
            "substitute: variables without a value in %s. Add them to substitute, give a default with "
            "${VAR:=value}, or escape a literal with $${VAR}" % "; ".join(errors[:MAX_REPORTED_ERRORS]),
            errors=errors)
    return result


# -- validation ----------------------------------------------------------------------------------------------

def expand_manifest_lists(manifests):
    """Items of lists (``v1/List``, ``ConfigMapList``...) as Manifests of their own (manifest_yaml.expand_lists,
    kubectl's expansion), each named after its list's file and document."""
    expanded = []
    for manifest in manifests:
        items = expand_lists([manifest.obj], manifest.origin)
        if len(items) == 1 and items[0] is manifest.obj:
            expanded.append(manifest)
        else:
            expanded.extend(Manifest(item, "%s item %d" % (manifest.origin, index))
                            for index, item in enumerate(items, start=1))
    return expanded


def object_problem(obj):
    """Why obj is not a usable Kubernetes object, or None."""
    if not isinstance(obj, dict):
        return "is not a Kubernetes object (a %s, not a mapping)" % type(obj).__name__
    missing = [field for field in ("apiVersion", "kind") if not isinstance(obj.get(field), str) or not obj[field]]
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        missing.append("metadata.name")
    if missing:
        return "has no %s" % ", ".join(missing)
    return None


def validate(manifests):
    """Raise one error listing every invalid object (file, document and what is missing)."""
    errors = []
    for manifest in manifests:
        problem = object_problem(manifest.obj)
        if problem:
            label = manifest.origin if manifest.identity == "?/?" else "%s (%s)" % (manifest.origin, manifest.identity)
            errors.append("%s %s" % (label, problem))
    if errors:
        shown = "; ".join(errors[:MAX_REPORTED_ERRORS])
        more = " (and %d more)" % (len(errors) - MAX_REPORTED_ERRORS) if len(errors) > MAX_REPORTED_ERRORS else ""
        raise FederationError("invalid manifests: %s%s" % (shown, more), errors=errors)


# -- the whole step ------------------------------------------------------------------------------------------

class IgnoreRules:
    """The source's ``ignore`` patterns, read with .gitignore's own rules (pathspec's GitIgnoreSpec, as Flux's
    source-controller reads them): last matching pattern wins, ``!`` re-includes, a trailing ``/`` matches
    directories only, a pattern with a ``/`` is anchored at the repository root, ``*`` stays within one path
    segment and ``**`` crosses them."""

    def __init__(self, text):
        self.lines = [line.strip() for line in (text or "").splitlines()]
        self.rules = [line for line in self.lines if line and not line.startswith("#")]
        if self.rules and not HAS_PATHSPEC:
            raise FederationError("the source's ignore option needs the Python library pathspec on the controller "
                                  "(pip install -r requirements.txt of the collection)")
        self.spec = pathspec.GitIgnoreSpec.from_lines(self.lines) if self.rules else None

    def ignored(self, relative, is_dir):
        if self.spec is None:
            return False
        relative = relative.replace(os.sep, "/")
        return bool(self.spec.match_file(relative + "/" if is_dir else relative))


def remove_ignored(root, ignore):
    """Delete what the ``ignore`` patterns exclude from a checkout, before rendering; return the removed paths.

    The checkout is the git cache's work tree, which is forced back to the commit on every run.
    """
    rules = IgnoreRules(ignore)
    removed = []
    if not rules.rules:
        return removed
    root_real = os.path.realpath(root)
    for current, directories, files in os.walk(root_real):
        for name in sorted(directories):
            relative = os.path.relpath(os.path.join(current, name), root_real)
            if relative == ".git":
                directories.remove(name)
            elif rules.ignored(relative, True):
                shutil.rmtree(os.path.join(current, name))
                directories.remove(name)
                removed.append(relative + "/")
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(current, name), root_real)
            if rules.ignored(relative, False):
                os.remove(os.path.join(current, name))
                removed.append(relative)
    return removed


def render_directory(root, path, substitute=None, kustomize_path=None, timeout=None, ignore=None, limits=None):
    """Render ``path`` of the checkout ``root`` into validated objects (a RenderResult)."""
    limits = Limits.from_option(limits)
    root_real = os.path.realpath(root)
    remove_ignored(root_real, ignore)
    directory = resolve_path(root_real, path)
    plain_scalar = PlainScalar if substitute else None
    if kustomization_file(directory):
        # Overlays name ../base: follow every local reference, not just the subtree of path.
        _check_kustomize_references(root_real, directory)
        relative = os.path.relpath(directory, root_real)
        manifests = load_yaml_documents(kustomize_build(root_real, directory, kustomize_path, timeout, limits),
                                        "kustomize build %s output" % relative, plain_scalar)
        method = "kustomize"
    else:
        manifests = read_plain_directory(root_real, directory, plain_scalar, limits)
        method = "plain"
    manifests = expand_manifest_lists(manifests)
    if substitute:
        manifests = substitute_manifests(manifests, substitute)
    validate(manifests)
    return RenderResult([m.obj for m in manifests], method)


def dump_bundle(objects):
    """One multi-document YAML text, each object starting with '---' (strings kubectl would type are quoted)."""
    return dump_all(objects)


def digest(text):
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_bundle(text, dest):
    """Write text to dest atomically (0600: bundles may hold Secrets); True when the content changed."""
    dest = os.path.abspath(os.path.expanduser(dest))
    data = text.encode("utf-8")
    try:
        with open(dest, "rb") as handle:
            if handle.read() == data:
                return False
    except (IOError, OSError):
        pass
    directory = os.path.dirname(dest)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", dir=directory)
    except OSError as err:
        raise FederationError("cannot write the bundle to dest %s: %s" % (dest, err.strerror), dest=dest)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise FederationError("cannot write the bundle to dest %s: %s" % (dest, err.strerror), dest=dest)
    return True


def bundle_changed(text, dest):
    """Whether writing text to dest would change it (check mode)."""
    try:
        with open(os.path.abspath(os.path.expanduser(dest)), "rb") as handle:
            return handle.read() != text.encode("utf-8")
    except (IOError, OSError):
        return True
