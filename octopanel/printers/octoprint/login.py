"""`octopanel login URL`: obtain an API key through OctoPrint's app-keys workflow and save it (mode 0600).

Workflow: https://docs.octoprint.org/en/master/bundledplugins/appkeys.html
"""

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO
from urllib.parse import quote

from octopanel import settings
from octopanel.cli.panel import parse
from octopanel.credentials import checked_url
from octopanel.errors import KeyRejected, OctopanelError, PrinterError, ServerError
from octopanel.printers.octoprint.client import Client
from octopanel.printers.octoprint.http_body import error_message
from octopanel.printers.octoprint.urlpath import segment_problem

APP_NAME = "octopanel"
POLL_S = 1.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="octopanel login", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="OctoPrint's base URL, e.g. http://octopi.local")
    parser.add_argument("--user", help="OctoPrint user to ask a key for (default: whoever approves)")
    parser.add_argument("--config", help=f"config file to write (default: {settings.config_candidates()[0]})")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for approval")
    parser.add_argument("-v", action="count", default=0, dest="verbose")
    return parse(parser, argv)


def obtain_key(
    client: Client,
    user: str | None = None,
    timeout: float = 300.0,
    out: TextIO = sys.stderr,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Run the workflow; return the approved API key."""
    probe = client.send("GET", "plugin/appkeys/probe")
    if probe.status_code != 204:
        raise PrinterError("this OctoPrint does not offer the app-keys workflow (is the appkeys plugin enabled?)")
    body: dict[str, str] = {"app": APP_NAME}
    if user:
        body["user"] = user
    token = (client.request("POST", "plugin/appkeys/request", body) or {}).get("app_token")
    if not isinstance(token, str) or segment_problem(token) is not None:  # it goes into the next URL's path
        raise ServerError(f"OctoPrint answered the access request without a usable app token: {token!r:.60}")
    print(
        f"Approve the access request from '{APP_NAME}' in OctoPrint's web interface ({client.base}) …",
        file=out,
        flush=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = client.send("GET", f"plugin/appkeys/request/{quote(token, safe='')}")
        if resp.status_code == 200:
            return resp.json()["api_key"]
        if resp.status_code == 404:
            raise KeyRejected("the access request was denied or has expired")
        if resp.status_code != 202:
            raise PrinterError(f"unexpected answer {resp.status_code} while waiting: {error_message(resp)}")
        sleep(POLL_S)
    raise PrinterError(f"nobody approved the access request within {timeout:g} s")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        url = checked_url(args.url, "the URL argument")  # before it is used or saved
        client = Client(url, None, verbose=args.verbose)
        key = obtain_key(client, args.user, args.timeout)
        path = settings.write_user_config({"url": url, "api_key": key}, args.config)
        print(f"API key saved to {path} (mode 0600). Try: 8status")
        return 0
    except OctopanelError as exc:
        print(f"octopanel login: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
