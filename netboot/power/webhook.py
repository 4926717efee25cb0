"""``webhook``: operator-configured URLs drive power (MAAS's webhook power type).

``power_on_uri`` and ``power_off_uri`` are POSTed to; ``power_query_uri`` (optional) is
fetched with GET and its body matched against ``power_on_regex`` / ``power_off_regex``
(MAAS defaults: ``status.*:.*running`` and ``status.*:.*stopped``). Credentials: HTTP
basic (``power_user`` + ``power_pass``) or a bearer token (``power_token``). Any 2xx
answer is success; 401/403 is a credentials error (not retried); 5xx and connection
errors are retried by the power queue. HTTPS certificates are verified against the
system's trust store. Every request has a deadline (``timeout``, default 30 s).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

import treq
from twisted.internet import defer, error
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed

from netboot.power import params as check
from netboot.power.base import (
    InvalidPowerParameters,
    PowerError,
    PowerParameterSpec,
    PowerState,
)

ON_REGEX = r"status.*:.*running"
OFF_REGEX = r"status.*:.*stopped"
MAX_BODY = 64 * 1024


class WebhookDriver:
    name = "webhook"
    parameters = (
        PowerParameterSpec("power_on_uri", doc="URL POSTed to power the node on"),
        PowerParameterSpec("power_off_uri", doc="URL POSTed to power the node off"),
        PowerParameterSpec(
            "power_query_uri", required=False, doc="URL whose GET body tells the power state"
        ),
        PowerParameterSpec("power_on_regex", required=False, doc=f"body regex for on ({ON_REGEX})"),
        PowerParameterSpec(
            "power_off_regex", required=False, doc=f"body regex for off ({OFF_REGEX})"
        ),
        PowerParameterSpec("power_user", required=False, doc="HTTP basic auth user"),
        PowerParameterSpec("power_pass", required=False, secret=True, doc="HTTP basic password"),
        PowerParameterSpec("power_token", required=False, secret=True, doc="bearer token"),
    )
    can_query = True

    def __init__(self, reactor: Any, timeout: float = 30.0) -> None:
        self.reactor = reactor
        self.timeout = timeout

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:
        out = dict(params)
        for key in ("power_on_uri", "power_off_uri", "power_query_uri"):
            if key in params:
                out[key] = check.http_url(key, params[key])
        for key in ("power_on_regex", "power_off_regex"):
            if key in params:
                try:
                    re.compile(params[key])
                except re.error as exc:
                    raise InvalidPowerParameters(key, f"not a regular expression: {exc}") from None
        if ("power_user" in params) != ("power_pass" in params):
            missing = "power_pass" if "power_user" in params else "power_user"
            raise InvalidPowerParameters(missing, "basic auth needs both power_user and power_pass")
        if "power_token" in params and "power_user" in params:
            raise InvalidPowerParameters("power_token", "give either a token or a user, not both")
        return out

    def bmc_key(self, params: Mapping[str, str]) -> str:
        return params.get("power_on_uri", "")

    def on(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return self._post(params, "power_on_uri", "power on")

    def off(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return self._post(params, "power_off_uri", "power off")

    @defer.inlineCallbacks
    def cycle(self, params: Mapping[str, str]):
        yield self.off(params)
        yield self.on(params)

    @defer.inlineCallbacks
    def query(self, params: Mapping[str, str]):
        p = self._checked(params)
        url = p.get("power_query_uri")
        if not url:
            return PowerState.UNKNOWN
        _, body = yield self._request(p, "GET", url, "query")
        text = body.decode("utf-8", "replace")
        if re.search(p.get("power_on_regex", ON_REGEX), text):
            return PowerState.ON
        if re.search(p.get("power_off_regex", OFF_REGEX), text):
            return PowerState.OFF
        return PowerState.UNKNOWN

    @defer.inlineCallbacks
    def _post(self, params: Mapping[str, str], key: str, what: str):
        p = self._checked(params)
        yield self._request(p, "POST", p[key], what)

    def _checked(self, params: Mapping[str, str]) -> dict[str, str]:
        try:
            return self.validate(params)
        except InvalidPowerParameters as exc:
            raise PowerError(f"webhook parameters: {exc}", retryable=False) from None

    @defer.inlineCallbacks
    def _request(self, p: Mapping[str, str], method: str, url: str, what: str):
        headers = {b"User-Agent": [b"netboot-power"]}
        if "power_token" in p:
            headers[b"Authorization"] = [b"Bearer " + p["power_token"].encode()]
        elif "power_user" in p:
            pair = f"{p['power_user']}:{p['power_pass']}".encode()
            headers[b"Authorization"] = [b"Basic " + base64.b64encode(pair)]
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        client = treq.client.HTTPClient(Agent(self.reactor, pool=pool))
        context = f"webhook {what} {method} {url}"

        @defer.inlineCallbacks
        def exchange():
            response = yield client.request(
                method, url, headers=headers, data=b"" if method == "POST" else None
            )
            chunks: list[bytes] = []

            def keep(data: bytes) -> None:
                if sum(map(len, chunks)) < MAX_BODY:
                    chunks.append(data)

            yield treq.collect(response, keep)
            return response.code, b"".join(chunks)[:MAX_BODY]

        def timed_out(_result: Any, timeout: float) -> Failure:
            # The agent turns the cancellation into ResponseFailed: name the real cause.
            return Failure(PowerError(f"{context}: no answer within {timeout:g} s"))

        d = exchange()
        d.addTimeout(self.timeout, self.reactor, onTimeoutCancel=timed_out)
        try:
            code, body = yield d
        except PowerError:
            raise
        except error.ConnectionRefusedError:
            raise PowerError(f"{context}: connection refused") from None
        except (error.ConnectError, error.DNSLookupError) as exc:
            raise PowerError(f"{context}: cannot connect ({exc.__class__.__name__})") from None
        except ResponseFailed as exc:
            raise PowerError(
                f"{context}: connection failed ({exc.reasons[0].getErrorMessage()})"
            ) from None
        except Exception as exc:  # anything else the HTTP stack raises: say what it was
            raise PowerError(f"{context}: {exc!r}", retryable=False) from None
        if code in (401, 403):
            raise PowerError(f"{context}: refused the credentials (HTTP {code})", retryable=False)
        if code >= 500:
            raise PowerError(f"{context}: HTTP {code}")
        if not 200 <= code < 300:
            raise PowerError(f"{context}: HTTP {code}", retryable=False)
        return code, body
