# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests parsed exactly as kubectl parses them.

kubectl reads ``-f`` files with k8s.io/apimachinery's YAMLOrJSONDecoder: a stream whose first character is
``{`` is JSON, anything else is cut into documents at every line that starts with ``---`` and each piece goes
through sigs.k8s.io/yaml (go-yaml v2, then JSON). PyYAML's YAML 1.1 differs in many places (``22:22`` is
not base 60, ``=`` is not a ``!!value``, ``y``/``n`` are booleans, ``0o755`` and ``08`` are numbers,
timestamps stay strings, aliases are copies, ``<<`` overwrites in order...). This module reproduces the
go-yaml resolution on top of libyaml's events (PyYAML's C parser, so the scanning stays fast) and builds the
values kubectl would send: numbers as the API machinery types them after the JSON round trip (integers
within int64, floats otherwise), map keys as JSON strings.

One deliberate difference: a key repeated in one mapping is an error naming the file and line, where kubectl
silently keeps the last value (kustomize and Flux refuse it too).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json
import marshal
import math
import re
import struct
from decimal import Decimal

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

try:
    import yaml
    from yaml.events import (AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent,
                             SequenceStartEvent, StreamEndEvent)

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as err:  # reported by the modules with missing_required_lib
    HAS_YAML = False
    YAML_IMPORT_ERROR = err
HAS_LIBYAML = False

if HAS_YAML:
    try:
        # libyaml: an order of magnitude faster on bundles of thousands of objects
        from yaml.cyaml import CParser as _Parser, CSafeDumper as _BaseDumper
        HAS_LIBYAML = True
    except ImportError:  # pragma: no cover - PyYAML without libyaml
        HAS_LIBYAML = False

        class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
            def __init__(self, stream):
                yaml.reader.Reader.__init__(self, stream)
                yaml.scanner.Scanner.__init__(self)
                yaml.parser.Parser.__init__(self)

            def dispose(self):
                pass
        _BaseDumper = yaml.SafeDumper

_TAG = "tag:yaml.org,2002:"
STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG = (_TAG + "str", _TAG + "int", _TAG + "float", _TAG + "bool",
                                                   _TAG + "null")
TIMESTAMP_TAG, BINARY_TAG, MERGE_TAG = _TAG + "timestamp", _TAG + "binary", _TAG + "merge"
_RESOLVABLE_TAGS = frozenset((STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG, TIMESTAMP_TAG))

_INT64_MIN, _INT64_LIMIT, _UINT64_LIMIT = -(1 << 63), 1 << 63, 1 << 64


class _UInt64(int):
    """An integer go-yaml holds as uint64 (2**63 to 2**64-1): a value becomes a float, a key is refused."""


# go-yaml v2 resolve.go: the first character says what a plain scalar may be.
_HINT = dict.fromkeys("+-", "S")
_HINT.update(dict.fromkeys("0123456789", "D"))
_HINT.update(dict.fromkeys("yYnNtTfFoO~", "M"))
_HINT["."] = "."
_PLAIN_MAP = {}
for _words, _value in ((("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
                       (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
                       (("", "~", "null", "Null", "NULL"), None),
                       ((".nan", ".NaN", ".NAN"), float("nan")),
                       ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
                       (("-.inf", "-.Inf", "-.INF"), float("-inf"))):
    _PLAIN_MAP.update(dict.fromkeys(_words, _value))
_MISSING = object()
# strconv.ParseInt(s, 0, 64) after go-yaml removed every '_'
_GO_INT = re.compile(r"([+-]?)(?:0[bB]([01]+)|0[oO]([0-7]+)|0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))\Z")
_GO_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
# strconv.ParseFloat of a scalar starting with '.': underscores only between digits
_GO_DOT_FLOAT = re.compile(r"\.[0-9](?:_?[0-9])*(?:[eE][-+]?[0-9](?:_?[0-9])*)?\Z")
_GO_BINARY_REST = re.compile(r"([+-]?)([01]+)\Z")
# the layouts go-yaml tries for !!timestamp (time.Parse: 1 or 2 digit month/day/hour/minute/second)
_GO_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
                           r"(?:(?:[Tt]|( ))([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?"
                           r"(?:(?(4)|(?:Z|[+-][0-9]{2}:[0-9]{2}))))?\Z")
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_SCALAR, _MAP, _SEQ = 1, 2, 3
_ANCHOR_IN_PROGRESS = object()


class ManifestYAMLError(FederationError):
    """A manifest kubectl would not parse either (or, for duplicate keys, that we refuse)."""


def _go_int(sign, magnitude, unsigned_ok):
    if sign == "-":
        return -magnitude if magnitude <= _INT64_LIMIT else None
    if magnitude < _INT64_LIMIT:
        return magnitude
    if unsigned_ok and not sign and magnitude < _UINT64_LIMIT:
        return _UInt64(magnitude)
    return None


def _resolve_number(text):
    """go-yaml's reading of a plain scalar starting with a digit or a sign: int, float or the text itself."""
    plain = text.replace("_", "") if "_" in text else text
    match = _GO_INT.match(plain)
    if match:
        sign, binary, octal, hexadecimal, leading_zero, decimal = match.groups()
        if binary:
            magnitude = int(binary, 2)
        elif octal:
            magnitude = int(octal, 8)
        elif hexadecimal:
            magnitude = int(hexadecimal, 16)
        elif leading_zero:
            magnitude = int(leading_zero, 8)
        else:
            magnitude = int(decimal)
        value = _go_int(sign, magnitude, True)
        if value is not None:
            return value
    if _GO_YAML_FLOAT.match(plain):
        value = float(plain)
        if not math.isinf(value):  # ParseFloat overflows with an error: the scalar stays a string
            return value
    if plain.startswith("0b"):  # go-yaml's own 0b branch also takes a sign after the prefix
        match = _GO_BINARY_REST.match(plain[2:])
        if match:
            value = _go_int(match.group(1), int(match.group(2), 2), not match.group(1))
            if value is not None:
                return value
    return text


def resolve_plain(text):
    """The value go-yaml gives an untagged plain scalar (before the JSON conversion)."""
    hint = _HINT.get(text[:1]) if text else "M"
    if hint is None:
        return text
    value = _PLAIN_MAP.get(text, _MISSING)
    if value is not _MISSING:
        return value
    if hint == "M":
        return text
    if hint == ".":
        if _GO_DOT_FLOAT.match(text):
            value = float(text.replace("_", ""))
            if not math.isinf(value):
                return value
        return text
    return _resolve_number(text)


def _is_timestamp(text):
    match = _GO_TIMESTAMP.match(text)
    if not match:
        return False
    year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS[month - 1]:
        return False
    if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return False
    if match.group(5) is not None:
        return int(match.group(5)) < 24 and int(match.group(6)) < 60 and int(match.group(7)) < 60
    return True


def _tag_name(value):
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def _resolve_tagged(tag, text):
    """go-yaml's reading of a scalar with an explicit tag; raises ValueError where go-yaml fails."""
    if tag not in _RESOLVABLE_TAGS:
        if tag == BINARY_TAG:
            try:
                data = base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("!!binary value contains invalid base64 data")
            # Go keeps the bytes; JSON then replaces each invalid UTF-8 byte with U+FFFD
            return re.sub("[\udc80-\udcff]", "\ufffd", data.decode("utf-8", "surrogateescape"))
        return text  # !foo, !, !!value, !!merge, !!set...: the text itself
    if tag == STR_TAG:
        return text
    if tag == TIMESTAMP_TAG and text[:1].isdigit() and _is_timestamp(text):
        return text  # kept as written, like every timestamp
    value = resolve_plain(text)
    resolved = _tag_name(value)
    if resolved == tag[len(_TAG):]:
        return value
    if tag == FLOAT_TAG and resolved == "int" and not isinstance(value, _UInt64):
        return float(value)
    raise ValueError("cannot decode !!%s `%s` as a !!%s" % (resolved, text, tag[len(_TAG):]))


def json_value(value):
    """A scalar as the API machinery holds it after sigs.k8s.io/yaml's JSON round trip (int64, else float).

    Raises ValueError for NaN and infinities, which JSON cannot carry.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is float:
        if math.isnan(value) or math.isinf(value):
            shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
            raise ValueError("json: unsupported value: %s" % shown)
        if value.is_integer() and abs(value) < 1e21:
            # Go writes it with its shortest digits ("1234567891234568000"), then reads an int64 if it can
            digits = int(Decimal(repr(value)))
            if _INT64_MIN <= digits < _INT64_LIMIT:
                return digits
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if kind is int and _INT64_MIN <= value < _INT64_LIMIT:
            return value
        return float(value)
    return value  # str subclasses (substitution marks)


def _go_float32_g(value):
    """strconv.FormatFloat(value, 'g', -1, 32), as sigs.k8s.io/yaml turns a float key into a string."""
    if math.isnan(value):
        return ".nan"
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        single = math.copysign(float("inf"), value)
    if math.isinf(single):
        return ".inf" if single > 0 else "-.inf"
    if single == 0:
        return "-0" if math.copysign(1.0, single) < 0 else "0"
    for precision in range(9):
        text = "%.*e" % (precision, single)
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, exponent = text.split("e")
    negative = mantissa.startswith("-")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exponent = int(exponent)
    if exponent < -4 or exponent >= 6:  # shortest 'g' switches to an exponent from 1e+06 on
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return "%s%se%s%02d" % ("-" if negative else "", body, "-" if exponent < 0 else "+", abs(exponent))
    if exponent >= 0:
        whole = digits[:exponent + 1].ljust(exponent + 1, "0")
        fraction = digits[exponent + 1:]
    else:
        whole, fraction = "0", "0" * (-exponent - 1) + digits
    return ("-" if negative else "") + whole + ("." + fraction if fraction else "")


def _key_string(value, kind):
    """A map key as sigs.k8s.io/yaml writes it in JSON; raises ValueError where it refuses the key."""
    if kind != _SCALAR:
        raise ValueError("invalid map key: a %s" % ("mapping" if kind == _MAP else "sequence"))
    if isinstance(value, str):
        return value
    if value is None:
        raise ValueError("unsupported map key: null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _UInt64):
        raise ValueError("unsupported map key of type uint64: %d" % value)
    if isinstance(value, int):
        return str(value)
    return _go_float32_g(value)


def _copy(value):
    """A deep copy of a parsed value: go-yaml decodes an alias again, so every use is an object of its own."""
    try:
        return marshal.loads(marshal.dumps(value))
    except ValueError:  # str subclasses (substitution marks)
        if isinstance(value, dict):
            return dict((k, _copy(v)) for k, v in value.items())
        if isinstance(value, list):
            return [_copy(v) for v in value]
        return value


def _allowed_alias_ratio(decode_count):
    """go-yaml v2's limit against alias bombs (decode.go allowedAliasRatio)."""
    if decode_count <= 400000:
        return 0.99
    if decode_count >= 4000000:
        return 0.10
    return 0.99 - 0.89 * (float(decode_count - 400000) / 3600000)


class _Frame:
    __slots__ = ("container", "kind", "anchor", "start", "key", "merge", "explicit", "kinds", "line", "flow")

    def __init__(self, container, kind, anchor, start, line):
        self.container = container
        self.kind = kind
        self.anchor = anchor
        self.start = start
        self.line = line
        self.key = _MISSING
        self.merge = False
        self.explicit = None  # keys written explicitly, once a merge also wrote some
        self.kinds = None  # node kinds of a sequence that is a merge value


def _merge(target, value, kind, kinds):
    """``<<: value`` as go-yaml v2 does it: written into the mapping where it appears, over what is there."""
    if kind == _MAP:
        target.update(value)
    elif kind == _SEQ and all(k == _MAP for k in kinds):
        for item in reversed(value):  # earlier maps take precedence
            target.update(item)
    else:
        raise ValueError("map merge requires map or sequence of maps as the value")


def _flow_scalar_problem(event, text):
    """Why go-yaml's older scanner would cut this plain scalar of a flow collection elsewhere than libyaml, or None.

    go-yaml v2 ends a plain scalar at '?' inside ``[]``/``{}``; libyaml 0.2 keeps the '?' and ends it
    before a ':' followed by one of ``,?[]{}``, which go-yaml keeps.
    """
    if "?" in event.value:
        return "'?' inside the unquoted %r in a flow collection is read differently by kubectl; quote it" % (
            event.value)
    end = event.end_mark.index
    if text[end:end + 1] == ":" and text[end + 1:end + 2] in (",", "?", "[", "]", "{", "}") and text[end + 1:end + 2]:
        return "':' right after the unquoted %r in a flow collection is read differently by kubectl; quote it" % (
            event.value)
    return None


_TAG_IN_SOURCE = re.compile(r"(?:&\S+\s+)?(!\S*)")


def _tag_problem(event, text):
    """Why go-yaml would read this node's tag differently from libyaml, or None.

    go-yaml v2 takes the characters ``,[]{}`` into a tag; libyaml 0.2 ends the tag there.
    """
    match = _TAG_IN_SOURCE.match(text, event.start_mark.index)
    if match and any(c in match.group(1) for c in ",[]{}"):
        return "the tag %r runs into a flow indicator, which kubectl reads differently; add a space" % (
            match.group(1))
    return None


def _build_document(parser, plain_scalar, source):
    """The value of the document whose DocumentStartEvent was just consumed. Raises _LineError."""
    anchors = {}
    stack = []
    flow = 0
    decode_count, alias_count = 1, 0
    while True:
        event = parser.get_event()
        cls = event.__class__
        if cls is ScalarEvent:
            decode_count += 1
            tag, text = event.tag, event.value
            line = event.start_mark.line
            try:
                if tag is None:
                    if event.implicit[0]:
                        value = resolve_plain(text)
                        if plain_scalar is not None and value is text and "${" in text:
                            value = plain_scalar(text)
                    else:
                        value = text
                else:
                    value = _resolve_tagged(tag, text)
                    problem = _tag_problem(event, source)
                    if problem:
                        raise ValueError(problem)
            except ValueError as err:
                raise _LineError(line, str(err))
            if flow and not event.style:
                problem = _flow_scalar_problem(event, source)
                if problem:
                    raise _LineError(line, problem)
            kind = _SCALAR
            if event.anchor is not None:
                anchors[event.anchor] = (value, _SCALAR, 1)
            merge_key = text == "<<" and (event.implicit[0] or tag == MERGE_TAG)
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            decode_count += 1
            mapping = cls is MappingStartEvent
            if event.tag is not None:
                problem = _tag_problem(event, source)
                if problem:
                    raise _LineError(event.start_mark.line, problem)
            if event.flow_style:
                flow += 1
            frame = _Frame({} if mapping else [], _MAP if mapping else _SEQ, event.anchor, decode_count,
                           event.start_mark.line)
            frame.flow = bool(event.flow_style)
            if event.anchor is not None:
                anchors[event.anchor] = _ANCHOR_IN_PROGRESS
            if not mapping and stack and stack[-1].merge and stack[-1].key is not _MISSING:
                frame.kinds = []
            stack.append(frame)
            continue
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            frame = stack.pop()
            if frame.flow:
                flow -= 1
            value, kind, line, merge_key = frame.container, frame.kind, event.start_mark.line, False
            if frame.anchor is not None:
                anchors[frame.anchor] = (value, kind, decode_count - frame.start + 1)
                value = _copy(value)  # the anchored original stays untouched for later aliases
        elif cls is AliasEvent:
            line = event.start_mark.line
            target = anchors.get(event.anchor)
            if target is None:
                raise _LineError(line, "unknown anchor '%s' referenced" % event.anchor)
            if target is _ANCHOR_IN_PROGRESS:
                raise _LineError(line, "anchor '%s' value contains itself" % event.anchor)
            value, kind, size = target
            value = _copy(value) if kind != _SCALAR else value
            decode_count += 1 + size
            alias_count += size
            if (alias_count > 100 and decode_count > 1000
                    and float(alias_count) / decode_count > _allowed_alias_ratio(decode_count)):
                raise _LineError(line, "document contains excessive aliasing")
            merge_key = False
        else:  # pragma: no cover - the parser yields nothing else inside a document
            raise _LineError(event.start_mark.line, "unexpected %s" % cls.__name__)

        if not stack:
            try:
                return json_value(value) if kind == _SCALAR else value
            except ValueError as err:
                raise _LineError(line, str(err))
        parent = stack[-1]
        try:
            if parent.kind == _SEQ:
                parent.container.append(json_value(value) if kind == _SCALAR else value)
                if parent.kinds is not None:
                    parent.kinds.append(kind)
            elif parent.key is _MISSING:
                if merge_key and kind == _SCALAR:
                    parent.merge, parent.key = True, None
                    continue
                key = _key_string(value, kind)
                seen = parent.explicit if parent.explicit is not None else parent.container
                if key in seen:
                    raise ValueError("duplicate key %r in one mapping (kubectl would silently keep the last value)"
                                     % key)
                if parent.explicit is not None:
                    parent.explicit.add(key)
                parent.key = key
            elif parent.merge:
                if parent.explicit is None:
                    parent.explicit = set(parent.container)
                _merge(parent.container, value, kind, frame.kinds if kind == _SEQ and cls is not AliasEvent else ())
                parent.merge, parent.key = False, _MISSING
            else:
                parent.container[parent.key] = json_value(value) if kind == _SCALAR else value
                parent.key = _MISSING
        except ValueError as err:
            raise _LineError(line, str(err))


class _LineError(Exception):
    def __init__(self, line, problem):
        super(_LineError, self).__init__(problem)
        self.line = line
        self.problem = problem


def split_documents(text, name):
    """The documents kubectl's YAMLReader cuts ``text`` into: (first line number, text) pairs.

    Every line starting with ``---`` ends a document (a first such line opens it instead); only a comment
    may follow the dashes.
    """
    pieces, buffer, first = [], [], 1
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if line.startswith("---"):
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                raise ManifestYAMLError("invalid YAML in %s line %d: only a comment may follow the document "
                                        "separator, not %r" % (name, number, rest), file=name, line=number)
            if buffer:
                pieces.append((first, "\n".join(buffer) + "\n"))
                buffer = []
                continue
        if not buffer:
            first = number
        buffer.append(line)
    if buffer:
        pieces.append((first, "\n".join(buffer) + "\n"))
    return pieces


def _parse_piece(piece, plain_scalar):
    """The first document of one piece (go-yaml's Unmarshal reads no further), or _MISSING when empty."""
    parser = _Parser(piece)
    try:
        parser.get_event()  # stream start
        if parser.check_event(StreamEndEvent):
            return _MISSING
        parser.get_event()  # document start
        value = _build_document(parser, plain_scalar, piece)
        parser.get_event()  # document end
        return value
    finally:
        parser.dispose()


class Document:
    """One document of a manifest file: its value, its number (as kubectl counts them) and first line."""

    __slots__ = ("value", "index", "line")

    def __init__(self, value, index, line):
        self.value = value
        self.index = index
        self.line = line


def _error(name, line, column, problem, context=None):
    where = "%s line %d" % (name, line) if line else name
    if column:
        where += ", column %d" % column
    return ManifestYAMLError("invalid YAML in %s: %s%s" % (where, problem, " (%s)" % context if context else ""),
                             file=name, line=line)


def _json_documents(text, name):
    """The objects of a JSON stream (what kubectl does with input starting with '{'), or None for YAML."""
    def pairs(items):
        result = {}
        for key, value in items:
            if key in result:
                raise ValueError("duplicate key %r in one object" % key)
            result[key] = value
        return result

    def reject(constant):
        raise ValueError("%s is not JSON" % constant)

    decoder = json.JSONDecoder(object_pairs_hook=pairs, parse_constant=reject)
    documents, position, end = [], 0, len(text)
    while True:
        while position < end and text[position].isspace():
            position += 1
        if position >= end:
            return documents
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError as err:
            if not documents:
                return None  # not JSON after all: kubectl tries YAML
            if len(documents) == 1:
                # kubectl goes on with YAML after one JSON object, from the next line
                newline = text.find("\n", position)
                rest = text[newline + 1:] if newline >= 0 and not text[position:newline].strip() else text[position:]
                first_line = text.count("\n", 0, end - len(rest)) + 1
                return documents + [Document(d.value, d.index + 1, d.line + first_line - 1)
                                    for d in _yaml_documents(rest, name, None)]
            line = getattr(err, "lineno", None)
            raise _error(name, line, getattr(err, "colno", None), getattr(err, "msg", str(err)))
        try:
            value = _json_tree(value)
        except ValueError as err:
            raise _error(name, text.count("\n", 0, position) + 1, None, str(err))
        documents.append(Document(value, len(documents) + 1, 1))


def _json_tree(value):
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _json_tree(item)
        return value
    if isinstance(value, list):
        return [_json_tree(item) for item in value]
    return json_value(value)


def _yaml_documents(text, name, plain_scalar):
    documents = []
    for index, (first_line, piece) in enumerate(split_documents(text, name), start=1):
        try:
            value = _parse_piece(piece, plain_scalar)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            raise _error(name, first_line + mark.line if mark else None, mark.column + 1 if mark else None,
                         err.problem or str(err), err.context)
        except yaml.YAMLError as err:
            raise _error(name, first_line, None, str(err))
        except _LineError as err:
            raise _error(name, first_line + err.line, None, err.problem)
        if value is not _MISSING and value is not None:
            documents.append(Document(value, index, first_line))
    return documents


def load_documents(text, name, plain_scalar=None):
    """The non-empty documents of a manifest file, each a Document, parsed as kubectl parses ``-f`` input.

    ``name`` is used in errors (which give the file and line). ``plain_scalar``, a str subclass, marks plain
    scalars that hold ``${`` (postBuild substitution types them again afterwards).
    """
    if not HAS_YAML:
        raise ManifestYAMLError("PyYAML is required to read %s" % name, file=name)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ManifestYAMLError("%s is not UTF-8 text (byte %d)" % (name, err.start), file=name)
    if text.lstrip()[:1] == "{":
        documents = _json_documents(text, name)
        if documents is not None:
            return documents
    return _yaml_documents(text, name, plain_scalar)


def load_all(text, name):
    """The values of the non-empty documents of ``text``."""
    return [document.value for document in load_documents(text, name)]


def load_file(path, name=None):
    """The values of the non-empty documents of the file at ``path`` (``name`` in errors, default the path)."""
    name = name or path
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as err:
        raise ManifestYAMLError("cannot read %s: %s" % (name, err.strerror or err), file=name)
    return load_all(data, name)


def typed_scalar(text):
    """A plain scalar's text typed as kubectl would type it (for values substituted into plain scalars)."""
    return json_value(resolve_plain(text))


# -- kubectl's expansion of lists ----------------------------------------------------------------------------

def list_items(obj):
    """The items kubectl applies in place of ``obj`` when it is a list, else None.

    The API machinery treats any object with a top-level ``items`` field as a list (``v1/List``,
    ``ConfigMapList``...); an item with neither kind nor apiVersion takes the list's apiVersion and its kind
    without the ``List`` suffix. Lists inside lists are expanded too.
    """
    if not isinstance(obj, dict) or "items" not in obj:
        return None
    items = obj["items"]
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError("items of a %s must be a list" % (obj.get("kind") or "list"))
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ""
    api_version = obj.get("apiVersion") if isinstance(obj.get("apiVersion"), str) else ""
    item_kind = kind[:-len("List")] if kind.endswith("List") else kind
    expanded = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("an item of a %s is not an object" % (kind or "list"))
        if not (isinstance(item.get("kind"), str) and item["kind"]) and not (
                isinstance(item.get("apiVersion"), str) and item["apiVersion"]):
            item = dict(item, kind=item_kind, apiVersion=api_version)
        nested = list_items(item)
        expanded.extend([item] if nested is None else nested)
    return expanded


def expand_lists(objects, origin=None):
    """objects with every list replaced by its items (kubectl's FlattenListVisitor); origin names the file or
    document in errors."""
    flat = []
    for obj in objects:
        try:
            items = list_items(obj)
        except ValueError as err:
            raise FederationError("%s: %s" % (origin, err) if origin else str(err))
        flat.extend([obj] if items is None else items)
    return flat


# -- writing bundles that read back the same -----------------------------------------------------------------

if HAS_YAML:
    class Dumper(_BaseDumper):
        """A safe dumper that quotes every string kubectl's parser would read as something else."""

        def resolve(self, kind, value, implicit):
            if kind is yaml.ScalarNode:
                if not implicit[0]:
                    return STR_TAG
                if value == "<<":
                    return MERGE_TAG
                resolved = resolve_plain(value)
                return STR_TAG if resolved is value else _TAG + _tag_name(resolved)
            return super(Dumper, self).resolve(kind, value, implicit)
else:  # pragma: no cover
    Dumper = None


def dump_all(objects):
    """One multi-document YAML text, each document starting with '---', that load_documents reads back."""
    if not objects:
        return ""
    return yaml.dump_all(objects, Dumper=Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True,
                         explicit_start=True)
