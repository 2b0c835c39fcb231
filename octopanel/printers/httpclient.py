"""Plumbing shared by the HTTP backends: one keep-alive session, a deadline on every answer, typed errors."""

import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import requests
import urllib3

from octopanel.cli import Escaped
from octopanel.errors import PrinterError, Unreachable
from octopanel.printers.octoprint.deadline import install as install_deadlines
from octopanel.printers.octoprint.http_body import ERROR_MAX_BYTES, JSON_MAX_BYTES, parse_json, read_body, short_reason

REDACTED = "***"
MIN_KEY_IN_WORDS = 8  # a shorter key masked inside words would mangle them ("e***ception")
# How long either backend keeps the printer's profile (feed rates, inverted axes): a daemon runs for months and
# someone may change it meanwhile, but a jog burst should not fetch it for every detent.
PROFILE_TTL_S = 60.0
URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")  # http://user:pw@host -> http://***@host


class HttpClient:
    """One requests.Session to one server: a deadline on every answer, no redirects, the key redacted in output.
    Subclasses add one method per endpoint and raise_for_status(method, path, resp) mapping statuses to errors."""

    server_name = "the server"  # in messages: "cannot reach OctoPrint at ..." (a subclass names itself)

    def __init__(
        self,
        url: str,
        api_key: str | None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        verbose: int = 0,
        log: TextIO | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = url.rstrip("/") + "/"
        self.api_key = api_key
        self.timeout = (connect_timeout, read_timeout)
        self.verbose = verbose
        # -v shows the server's reason phrase and headers: its control characters are written escaped
        self.log = log or Escaped(sys.stderr)
        self.session = environment_session(self.base)
        self._deadlines = install_deadlines(self.session)
        if api_key:
            self.session.headers["X-Api-Key"] = api_key
        self._now = now
        self._profile: dict[str, Any] | None = None
        self._profile_at = 0.0  # when _profile was fetched

    def profile_due(self) -> bool:
        """Whether the cached printer profile is missing or older than PROFILE_TTL_S."""
        return self._profile is None or self._now() - self._profile_at >= PROFILE_TTL_S

    def keep_profile(self, profile: dict[str, Any]) -> dict[str, Any]:
        """Cache a freshly read profile, and return it."""
        self._profile, self._profile_at = profile, self._now()
        return profile

    def cached_profile(self) -> dict[str, Any]:
        assert self._profile is not None  # profile_due() said so
        return self._profile

    def close(self) -> None:
        self.session.close()

    def send(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        max_bytes: int = JSON_MAX_BYTES,
        deadline_after_send: bool = False,
        read_s: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request and return the response, its body read, whatever its status.

        The whole exchange has one deadline, read_timeout seconds (read_s for a request known to take longer;
        from when the body is sent, with deadline_after_send). Network failures and lateness raise Unreachable, an oversized body ServerError,
        a redirect PrinterError: the key is never sent on to wherever a redirect points."""
        url = self.base + path.lstrip("/")
        what = f"{method} /{path.lstrip('/')}"
        if self.verbose:
            body = "" if json_body is None else " " + json.dumps(json_body)
            print(f"> {method} {self.redact(url)}{body}", file=self.log)
        read_s = self.timeout[1] if read_s is None else max(read_s, self.timeout[1])
        timeout = (self.timeout[0], read_s)
        deadline = time.monotonic() + read_s
        if deadline_after_send:
            self._deadlines.at, self._deadlines.after_send_s = None, read_s
        else:
            self._deadlines.at, self._deadlines.after_send_s = deadline, None
        try:
            resp = self.session.request(
                method, url, json=json_body, timeout=timeout, stream=True, allow_redirects=False, **kwargs
            )
            if deadline_after_send:
                deadline = time.monotonic() + read_s
            if self.verbose:
                self.show_exchange(resp)
            self.refuse_redirect(what, resp)
            limit = max_bytes if resp.status_code < 400 else ERROR_MAX_BYTES
            resp._content = read_body(resp, deadline, limit, f"{self.server_name} at {self.redact(self.base)}, {what}")
            resp._content_consumed = True  # requests' own flag: .json() and .text now use the body read above
        except requests.Timeout as exc:
            raise Unreachable(f"{self.server_name} at {self.redact(self.base)} did not answer in time") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)):
                raise Unreachable(f"{self.server_name} at {self.redact(self.base)} did not answer in time") from exc
            raise Unreachable(
                f"cannot reach {self.server_name} at {self.redact(self.base)}: {short_reason(exc)}"
            ) from exc
        finally:
            self._deadlines.at = self._deadlines.after_send_s = None
        return resp

    def show_exchange(self, resp: requests.Response) -> None:
        print(f"< {resp.status_code} {resp.reason}", file=self.log)
        if self.verbose > 1:
            for key, value in resp.request.headers.items():
                shown = REDACTED if key.lower() == "authorization" else self.redact(value)  # type: ignore[arg-type]  # basic auth; we set str headers only
                print(f">> {key}: {shown}", file=self.log)
            for key, value in resp.headers.items():
                print(f"<< {key}: {self.redact(value)}", file=self.log)

    def refuse_redirect(self, what: str, resp: requests.Response) -> None:
        """A 3xx is an error naming the new place: following it would carry the key to another host."""
        if 300 <= resp.status_code < 400 and resp.status_code != 304:
            resp.close()
            location = self.redact(resp.headers.get("Location") or "nowhere given")
            raise PrinterError(
                f"{self.server_name} at {self.redact(self.base)} answered {what} with a redirect (HTTP "
                f"{resp.status_code}) to {location}: not followed, nothing more sent; if that is "
                f"where {self.server_name} now lives, set url to it",
                resp.status_code,
                location,
            )

    def request(self, method: str, path: str, json_body: Any = None, **kwargs: Any) -> Any:
        """Send one request; return parsed JSON (or None for an empty body); raise typed errors."""
        resp = self.send(method, path, json_body, **kwargs)
        self.raise_for_status(method, path, resp)
        return parse_json(method, path, resp)

    def redact(self, text: str) -> str:
        """Mask URL credentials and the API key; a short key only as a whole token, not inside words."""
        text = mask_url(text)
        if not self.api_key:
            return text
        if len(self.api_key) >= MIN_KEY_IN_WORDS:
            return text.replace(self.api_key, REDACTED)
        return re.sub(r"(?<![\w-])" + re.escape(self.api_key) + r"(?![\w-])", REDACTED, text)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def raise_for_status(self, method: str, path: str, resp: requests.Response) -> None:
        raise NotImplementedError  # each server's own statuses and words


def environment_session(base: str) -> requests.Session:
    """A Session that read the environment once, for `base`: proxies (with NO_PROXY), ~/.netrc, CA bundle.

    With requests' default trust_env, every request scans os.environ twice for proxies and looks for
    ~/.netrc again: half of the ~0.2 ms requests spends before a jog leaves. Every URL here shares
    `base`'s host, so one lookup gives what each request would have found."""
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(base))
    session.auth = requests.utils.get_netrc_auth(base)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


def mask_url(text: str) -> str:
    """`text` with the user:password of any URL in it masked."""
    return URL_CREDENTIALS.sub(r"\1" + REDACTED + "@", str(text))
