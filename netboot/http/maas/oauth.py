"""OAuth 1.0a PLAINTEXT, as MAAS checks it (``maasserver/api/auth.py``).

An API key is ``consumer_key:token_key:token_secret`` with an empty consumer secret, so
the PLAINTEXT signature is ``&<token_secret>``. Header parsing and the signature are
oauthlib's. Both realms clients send ("MAAS API" from gomaasapi, "OAuth" from
python-libmaas) are accepted. Like MAAS, nonces and timestamps must be present but are
not tracked: PLAINTEXT over plain HTTP gives no replay protection in any case.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from oauthlib.oauth1.rfc5849 import signature
from oauthlib.oauth1.rfc5849.utils import parse_authorization_header, unescape

from netboot.store.nodes_ext import ApiKey

REQUIRED = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
)


class Unauthorized(Exception):
    """401: the message says what is wrong, never which part of a secret."""


def authenticate(header: str | None, lookup: Callable[[str, str], ApiKey | None]) -> ApiKey | None:
    """The ApiKey the ``Authorization`` header proves, None without OAuth credentials.

    ``lookup(consumer_key, token_key)`` finds the stored key. Raises Unauthorized for a
    malformed header, an unsupported method, an unknown key or a wrong signature.
    """
    if not header or not header.strip().lower().startswith("oauth "):
        return None
    try:
        # Values arrive percent-encoded (RFC 5849 3.5.1); gomaasapi's raw "&secret"
        # decodes to itself.
        params = {k: unescape(v) for k, v in parse_authorization_header(header)}
    except (ValueError, IndexError) as exc:
        raise Unauthorized(f"malformed OAuth header: {exc}") from None
    missing = [p for p in REQUIRED if not params.get(p)]
    if missing:
        raise Unauthorized(f"OAuth header lacks {', '.join(missing)}")
    if params["oauth_signature_method"] != "PLAINTEXT":
        raise Unauthorized("only the PLAINTEXT OAuth signature method is supported")
    key = lookup(params["oauth_consumer_key"], params["oauth_token"])
    if key is None:
        raise Unauthorized("unknown API key")
    expected = signature.sign_plaintext("", key.token_secret)
    if not hmac.compare_digest(expected.encode(), params["oauth_signature"].encode()):
        raise Unauthorized("bad OAuth signature")
    return key
