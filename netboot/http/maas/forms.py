"""Decode MAAS API request parameters: query string plus a urlencoded or multipart body.

gomaasapi sends ``application/x-www-form-urlencoded``; python-libmaas sends
``multipart/form-data`` whose parts are base64 Content-Transfer-Encoded (Django decodes
that; so must we). The stdlib ``email`` parser does the MIME work. Repeated keys are
lists (``machines=a&machines=b``). Pure: bytes in, ``Form`` out, BadForm on garbage.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

MAX_BODY_BYTES = 32 << 20


class BadForm(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Form:
    """Parameters by name, each a list of raw values (bytes) in request order."""

    values: dict[str, list[bytes]] = field(default_factory=dict)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def names(self) -> Iterable[str]:
        return self.values.keys()

    def raw(self, key: str) -> list[bytes]:
        return self.values.get(key, [])

    def texts(self, key: str) -> list[str]:
        out = []
        for value in self.values.get(key, []):
            try:
                out.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadForm(key, "is not valid UTF-8") from None
        return out

    def text(self, key: str, default: str | None = None) -> str | None:
        values = self.texts(key)
        return values[-1] if values else default

    def flag(self, key: str) -> bool:
        value = (self.text(key) or "").strip().lower()
        if value in ("", "0", "false", "no", "off"):
            return False
        if value in ("1", "true", "yes", "on"):
            return True
        raise BadForm(key, f"{value!r} is not a boolean")

    def as_text_lists(self) -> dict[str, list[str]]:
        return {key: self.texts(key) for key in self.values}


def _add(values: dict[str, list[bytes]], key: str, value: bytes) -> None:
    values.setdefault(key, []).append(value)


def parse_query(query: bytes) -> dict[str, list[bytes]]:
    values: dict[str, list[bytes]] = {}
    try:
        pairs = parse_qsl(query.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadForm("(query)", "query string is not ASCII") from None
    for key, value in pairs:
        _add(values, key, value.encode("utf-8"))
    return values


def parse_form(query: bytes, content_type: str | None, body: bytes) -> Form:
    """Query parameters first, then the body's, in one Form."""
    values = parse_query(query)
    if len(body) > MAX_BODY_BYTES:
        raise BadForm("(body)", f"larger than {MAX_BODY_BYTES} bytes")
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        return Form(values)
    if ctype == "application/x-www-form-urlencoded" or ctype == "":
        for key, value in parse_query(body).items():
            values.setdefault(key, []).extend(value)
    elif ctype == "multipart/form-data":
        for key, value in _multipart(content_type or "", body):
            _add(values, key, value)
    else:
        raise BadForm("(body)", f"unsupported content type {ctype!r}")
    return Form(values)


def _multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadForm("(body)", "multipart body without parts (boundary missing?)")
    out = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name and not part.keys() and not part.get_payload():
            continue  # libmaas sends one empty part when there are no parameters
        if not name:
            raise BadForm("(body)", "multipart part without a form-data name")
        payload = part.get_payload(decode=True)  # undoes base64 / quoted-printable
        out.append((str(name), payload if isinstance(payload, bytes) else b""))
    return out
