"""HTTP GET with the behaviour public APIs need: a timeout per attempt, retries with backoff on 5xx and
timeouts, HTTP 429 honoured through its Retry-After header, a truncated body detected (fewer bytes than
Content-Length), and no network told apart from a failing server."""

from __future__ import annotations

import datetime as dt
import email.utils
import errno
import http.client
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

from feeds.errors import FeedError, FeedOffline

SECRET_PARAMS = ("key", "api_key", "apikey", "token", "access_token", "secret")


@dataclass(frozen=True)
class HttpPolicy:
    timeout_s: float = 30.0  # per attempt (connect and each read)
    attempts: int = 4  # in all, the first included
    backoff_s: float = 2.0  # after a 5xx or a timeout: backoff_s, 2x, 4x ...
    max_retry_after_s: float = 120.0  # a 429 asking for a longer wait gives up at once, saying so


def redact(url: str) -> str:
    """The URL without secrets (query parameters such as key= or token=), for manifests and messages."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, "REDACTED" if k.lower() in SECRET_PARAMS else v)
             for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, safe=":/")))


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _offline(reason: object) -> bool:
    if isinstance(reason, socket.gaierror):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


def get(source: str, url: str, headers: dict[str, str] | None = None, policy: HttpPolicy = HttpPolicy(),
        sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = lambda _: None) -> bytes:
    """The body of GET `url`. Raises FeedOffline without a network, FeedError when the server keeps failing,
    rate-limits beyond `policy.max_retry_after_s`, refuses the request or sends a truncated body."""
    shown = redact(url)
    last = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        wait = policy.backoff_s * 2 ** (attempt - 1)
        request = urllib.request.Request(url, headers={"User-Agent": "tokens2chips-refresh", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=policy.timeout_s) as response:
                declared = response.headers.get("Content-Length")
                try:
                    body = response.read()
                except http.client.IncompleteRead as exc:
                    raise FeedError(source, f"truncated body from {shown}: got {len(exc.partial):,} of "
                                    f"{declared or 'the declared'} bytes; nothing stored") from None
                if declared is not None and declared.isdigit() and len(body) < int(declared):
                    raise FeedError(source, f"truncated body from {shown}: got {len(body):,} of {int(declared):,} "
                                    "bytes; nothing stored")
                return body
        except urllib.error.HTTPError as exc:
            if exc.code == 429:
                asked = retry_after_seconds(exc.headers.get("Retry-After"))
                if asked is not None and asked > policy.max_retry_after_s:
                    raise FeedError(source, f"rate limited by {shown} (HTTP 429) and asked to retry after "
                                    f"{asked:.0f} s, more than the {policy.max_retry_after_s:.0f} s this refresh "
                                    "waits; try again later") from None
                wait = asked if asked is not None else wait
                last = f"HTTP 429 (rate limited; Retry-After {exc.headers.get('Retry-After') or 'not given'})"
            elif 500 <= exc.code < 600:
                last = f"HTTP {exc.code} {exc.reason}"
            elif exc.code in (401, 403):
                raise FeedError(source, f"HTTP {exc.code} from {shown}: the request was refused; check the API key "
                                "(OPENROUTER_API_KEY for openrouter)") from None
            else:
                raise FeedError(source, f"HTTP {exc.code} {exc.reason} from {shown}") from None
        except urllib.error.URLError as exc:
            if _offline(exc.reason):
                raise FeedOffline(source, f"no network ({exc.reason}); nothing fetched") from None
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                last = f"timed out after {policy.timeout_s:g} s"
            else:
                last = f"connection failed ({exc.reason})"
        except (TimeoutError, socket.timeout):
            last = f"timed out after {policy.timeout_s:g} s"
        except (ConnectionError, http.client.HTTPException) as exc:
            last = f"connection failed ({type(exc).__name__}: {exc})"
        if attempt < policy.attempts:
            log(f"{source}: attempt {attempt} of {policy.attempts} failed ({last}); retrying in {wait:.0f} s")
            sleep(wait)
    raise FeedError(source, f"gave up on {shown} after {policy.attempts} attempts; last: {last}; nothing stored")
