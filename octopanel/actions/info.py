"""Read-only information: configuration, API version, connection state, job."""

from urllib.parse import urlsplit

from octopanel.actions.invoke import Context, Result, dump
from octopanel.actions.registry import Action, Param, Registry
from octopanel.credentials import mask
from octopanel.printers.httpclient import mask_url
from octopanel.values import to_bool

GROUP = "Configuration and status"


def checkcfg(ctx: Context) -> Result:
    s = ctx.settings
    lines = [
        f"Printer URL:   {mask_url(s.url) if s.url else '(none)'}  [from {s.sources['url']}]",
        f"API key:       {mask(s.api_key)}  [from {s.sources['api_key']}]",
        f"Jog direction: {s.jog_direction}  [from {s.sources['jog_direction']}]",
        "Limits:        " + ", ".join(f"{k}={v}" for k, v in s.limits.items()),
    ]
    if s.klipper_allowed_while_printing:
        names = ", ".join(s.klipper_allowed_while_printing)
        lines.append(f"Mid-print:     {names} (Klipper)  [from {s.sources['klipper_allowed_while_printing']}]")
    from octopanel.printers.select import describe  # asks the printer which it is, for backend: auto

    lines[1:1] = describe(s)
    lines += [f"warning: {w}" for w in s.warnings]
    data = {
        "url": mask_url(s.url) if s.url else s.url,
        "api_key": mask(s.api_key),
        "backend": s.backend,
        "sources": dict(s.sources),
        "limits": s.limits,
    }
    return Result("\n".join(lines), data, sent=False)


def apiver(ctx: Context) -> Result:
    data = ctx.client.version()
    return Result(f"API {data.get('api')}, {data.get('text') or 'OctoPrint ' + str(data.get('server'))}", data)


def status_raw(ctx: Context) -> Result:
    data = ctx.client.connection()
    return Result(dump(data), data)


def status(ctx: Context, quiet: bool = False) -> Result:
    data = ctx.client.connection()
    state = (data.get("current") or {}).get("state", "unknown")
    host = urlsplit(ctx.settings.url or "").netloc.rpartition("@")[2]  # never the URL's user:password
    return Result(state if quiet else f"Machine: {host}\n{state}", data)


def getjob(ctx: Context) -> Result:
    data = ctx.client.job()
    return Result(dump(data), data)


def register(reg: Registry) -> None:
    reg.register(
        Action(
            "checkcfg",
            checkcfg,
            "show the printer URL, backend, API key (masked) and where each came from",
            GROUP,
            local=True,
            offline=True,
        )
    )
    reg.register(Action("apiver", apiver, "show OctoPrint's API and server version", GROUP))
    reg.register(
        Action(
            "status_raw", status_raw, "print GET /api/connection as JSON", GROUP, commands=("status_raw", "statusraw")
        )
    )
    reg.register(
        Action(
            "status",
            status,
            "show the machine and its connection state (Operational, Printing…)",
            GROUP,
            params=(Param("quiet", to_bool, False, flag="-q", help="state only"),),
        )
    )
    reg.register(Action("getjob", getjob, "print the current job (GET /api/job)", GROUP))
