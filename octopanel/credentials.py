"""The printer's URL and API key: checked before they travel in a request, read from a key file, masked."""

import os
import stat
from typing import TYPE_CHECKING

from octopanel.errors import ConfigError
from octopanel.filecap import read_text_capped

if TYPE_CHECKING:
    from octopanel.settings import Settings

MAX_KEY_BYTES = 4096  # an OctoPrint key is 43 characters; a larger "key file" is the wrong file


def checked_url(url: str, source: str) -> str:
    """The URL with http:// added to a bare host:port; ConfigError unless it is one line of http(s)."""
    if "://" not in url:
        url = "http://" + url  # octocmd.conf files often hold a bare host:port
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):  # the scheme alone: the rest may carry credentials
        raise ConfigError(f"url must start with http:// or https://, got '{scheme}://...'", source)
    check_header_text("url", url, source)
    check_host(url, source)
    return url


def check_host(url: str, source: str) -> None:
    """Refuse, at load, a host and port that requests or the resolver would refuse at the first request (which
    reported a config mistake as 'cannot reach', exit 1). The library's own words are not repeated: they hold
    the URL with its credentials, which are masked here."""
    import ipaddress
    from urllib.parse import urlsplit

    from requests.exceptions import InvalidURL
    from requests.models import PreparedRequest

    from octopanel.printers.httpclient import mask_url

    reason = None
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        reason = "its port is not a number from 1 to 65535"
    host = parts.hostname or ""
    if reason is None and not host:
        reason = "it names no host"
    if reason is None:
        try:
            PreparedRequest().prepare_url(url, None)  # requests' IDNA (UTS 46) check of a non-ASCII host
            try:
                ipaddress.ip_address(host)
            except ValueError:
                host.encode("idna")  # the resolver's: no empty label, none over 63 characters
        except (InvalidURL, UnicodeError):
            reason = "its host name is not a valid DNS name (an empty label, one over 63 characters, or a "
            reason += "character IDNA does not allow)"
    if reason is not None:
        raise ConfigError(f"url {mask_url(url)} is not usable: {reason}; nothing was sent", source)


def check_header_text(name: str, value: str | None, source: str) -> None:
    """Refuse what requests would fail on mid-request: the URL and the key travel in the request line and headers."""
    if value is None:
        return
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError(
            f"{name} holds a control character (a line break?); nothing was sent. "
            "Write it on one line, without CR, LF or tabs",
            source,
        )
    if name == "api_key":
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(
                "api_key holds a character an HTTP header cannot carry (only Latin-1 can; an "
                "OctoPrint key is letters, digits, - and _); nothing was sent",
                source,
            ) from None


def read_secret(path: "str | os.PathLike[str]", settings: "Settings", warn: bool = True) -> str:
    secret = read_text_capped(path, MAX_KEY_BYTES, "the API key")[0].strip()
    check_header_text("api_key", secret, str(path))
    if warn:
        warn_if_readable(path, settings)
    return secret


def warn_if_readable(path: "str | os.PathLike[str]", settings: "Settings") -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        settings.warnings.append(f"{path} holds the API key and is readable by others; run: chmod 600 {path}")


def mask(secret: str | None) -> str:
    """Show enough of a key to recognise it, never enough to use it."""
    if not secret:
        return "(none)"
    return secret[:2] + "…" + secret[-2:] if len(secret) > 8 else "****"
