"""The provider's HTTP endpoints (token, device authorization), by urllib.request.

An answer is JSON. A 4xx with an OAuth2 ``error`` is the provider's verdict
(``Refused``); unreachable, timed out, 5xx, cut short or not JSON is temporary trouble (75). No
request body ever appears in a message: it holds codes, tokens and the secret.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nudger.errors import TemporaryError

TIMEOUT = 30.0


class Refused(Exception):
    """The endpoint answered with an OAuth2 error (RFC 6749 5.2, RFC 8628 3.5)."""

    def __init__(self, error: str, description: str):
        self.error, self.description = error, description
        super().__init__(f"{error}: {description}" if description else error)


def post(url: str, form: dict[str, str], doing: str) -> dict[str, Any]:
    """POST ``form`` to ``url``; the JSON answer. ``doing`` names it in errors."""
    data = urllib.parse.urlencode(form).encode("ascii")
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
        "User-Agent": "nudger"})
    host = urllib.parse.urlsplit(url).netloc
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 - https or loopback (config)
            return _json(answer.read(), host, doing)
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read()
        except (OSError, http.client.HTTPException) as cut:  # (raised here, no clause below sees it)
            raise TemporaryError(f"{doing}: {host} answered {exc.code} {exc.reason}, but the answer "
                                 f"was cut short ({type(cut).__name__}); trying again later") from None
        if exc.code >= 500 or exc.code == 429:
            raise TemporaryError(f"{doing}: {host} answered {exc.code} {exc.reason}; "
                                 "trying again later") from None
        got = _json(body, host, doing)
        raise Refused(str(got.get("error") or f"http_{exc.code}"),
                      str(got.get("error_description") or "")[:300]) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TemporaryError(f"{doing}: cannot reach {host} ({reason}); trying again later") from None
    except http.client.HTTPException as exc:  # (a status line or an answer cut short)
        raise TemporaryError(f"{doing}: {host} gave a broken HTTP answer ({type(exc).__name__}); "
                             "trying again later") from None


def _json(body: bytes, host: str, doing: str) -> dict[str, Any]:
    try:
        got = json.loads(body)
    except ValueError:
        got = None
    if not isinstance(got, dict):
        raise TemporaryError(f"{doing}: {host} gave an answer that is not JSON; trying again later")
    return got
