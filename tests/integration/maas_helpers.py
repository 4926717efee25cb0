"""Helpers for tests that speak to netboot's MAAS API the way gomaasapi does: curl from a
lab client namespace, urlencoded bodies, a hand-built OAuth PLAINTEXT header with realm
"MAAS API" (gomaasapi's ``oauth.go``)."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse


def gomaasapi_auth(apikey: str) -> str:
    consumer, token, secret = apikey.split(":")
    return (
        'OAuth realm="MAAS API", '
        f'oauth_consumer_key="{consumer}", oauth_token="{token}", '
        f'oauth_signature_method="PLAINTEXT", oauth_signature="&{secret}", '
        f'oauth_timestamp="{int(time.time())}", oauth_nonce="{secrets.token_hex(8)}", '
        'oauth_version="1.0"'
    )


class MaasCurl:
    """Requests from a lab host with curl; returns (status, parsed body)."""

    def __init__(self, host, base: str, apikey: str | None) -> None:
        self.host = host
        self.base = base.rstrip("/") + "/MAAS/api/2.0/"
        self.apikey = apikey

    def call(self, method: str, path: str, op: str | None = None, data=None, auth=True):
        url = self.base + path
        if op:
            url += ("&" if "?" in url else "?") + "op=" + op
        args = ["curl", "-sS", "--max-time", "30", "-X", method, "-w", "\n%{http_code}"]
        if auth and self.apikey:
            args += ["-H", f"Authorization: {gomaasapi_auth(self.apikey)}"]
        if data is not None:
            args += [
                "-H",
                "Content-Type: application/x-www-form-urlencoded",
                "--data-binary",
                urllib.parse.urlencode(data, doseq=True),
            ]
        result = self.host.run([*args, url], timeout=60)
        assert result.returncode == 0, result.stderr
        text, code = result.stdout.decode().rsplit("\n", 1)
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return int(code), body
