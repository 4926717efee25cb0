"""Helpers for tests that speak to netboot's MAAS API the way gomaasapi does: curl from a
lab client namespace, urlencoded bodies, a hand-built OAuth PLAINTEXT header with realm
"MAAS API" (gomaasapi's ``oauth.go``)."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request


def gomaasapi_auth(apikey: str) -> str:
    consumer, token, secret = apikey.split(":")
    return (
        'OAuth realm="MAAS API", '
        f'oauth_consumer_key="{consumer}", oauth_token="{token}", '
        f'oauth_signature_method="PLAINTEXT", oauth_signature="&{secret}", '
        f'oauth_timestamp="{int(time.time())}", oauth_nonce="{secrets.token_hex(8)}", '
        'oauth_version="1.0"'
    )


def machine_op(base: str, key: str, sid: str, op: str, **form: str) -> tuple[int, dict | bytes]:
    """POST machines/<sid>/?op=<op> with an urlencoded form, from this process (for an
    appliance on 127.0.0.1); (status, JSON body) or (status, raw body) on an error."""
    req = urllib.request.Request(
        f"{base}/MAAS/api/2.0/machines/{sid}/?op={op}",
        data=urllib.parse.urlencode(form).encode(),
        method="POST",
    )
    req.add_header("Authorization", gomaasapi_auth(key))
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


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
