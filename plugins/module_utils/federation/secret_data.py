# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret data: the key names Flux and the product use, encoding, and the credentials of a source.

Keys (so existing Flux and Dispatch secrets work unchanged): ``username`` and ``password`` (HTTPS basic
auth), ``bearerToken``, ``caFile`` (CA certificate, PEM), ``identity`` (SSH private key),
``identity.pub`` and ``known_hosts``. Values never leave these functions except as Secret ``data``
written to a cluster, or as credentials handed to the render step under ``no_log``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import re

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

# module option -> Secret data key
HELPER_KEYS = (
    ("username", "username"),
    ("password", "password"),
    ("bearer_token", "bearerToken"),
    ("ca_file", "caFile"),
    ("ssh_private_key", "identity"),
    ("ssh_public_key", "identity.pub"),
    ("known_hosts", "known_hosts"),
)
HELPER_OPTIONS = tuple(option for option, unused_key in HELPER_KEYS)
# The keys the render step (git_render secret_data) understands.
CREDENTIAL_KEYS = ("username", "password", "bearerToken", "caFile", "identity", "known_hosts")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def encode(value):
    """base64 of a text value (UTF-8), as Secret data stores it."""
    if isinstance(value, bytes):
        raw = value
    else:
        raw = (value if isinstance(value, str) else str(value)).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def check_key(key, where):
    if not isinstance(key, str) or not _KEY.match(key) or len(key) > 253:
        raise FederationError("%s: %r is not a valid Secret key (letters, digits, '-', '_' and '.')" % (where, key))


def build_data(data=None, string_data=None, helpers=None):
    """Secret data (key -> base64) from the module options; later sources win per key.

    ``data`` values are base64 already (as in a Secret's ``data``), ``string_data`` values are plain
    text, ``helpers`` maps helper option names (``password``, ``ssh_private_key``...) to plain text.
    Error messages name keys, never values.
    """
    result = {}
    for key, value in (data or {}).items():
        check_key(key, "data")
        text = value if isinstance(value, str) else str(value)
        try:
            base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise FederationError("data.%s is not valid base64 (data takes encoded values; use string_data for plain "
                                  "text)" % key)
        result[key] = text
    for key, value in (string_data or {}).items():
        check_key(key, "string_data")
        result[key] = encode(value)
    for option, key in HELPER_KEYS:
        value = (helpers or {}).get(option)
        if value is not None:
            result[key] = encode(value)
    return result


def decode(value, key, where="secret"):
    try:
        return base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError, UnicodeEncodeError):
        raise FederationError("%s: key %s is not base64-encoded UTF-8 text" % (where, key))


def git_credentials(secret, where="secret"):
    """The credentials in a Secret, decoded, with git_render's secret_data key names (present keys only)."""
    data = (secret or {}).get("data") or {}
    return dict((key, decode(data[key], key, where)) for key in CREDENTIAL_KEYS if data.get(key))


def data_keys(secret):
    return sorted(((secret or {}).get("data") or {}).keys())
