"""Print jobs: start, pause and resume (stateless), restart, cancel, wait for the end."""

import time
from collections.abc import Callable

from octopanel.actions.invoke import Context, Result
from octopanel.actions.registry import OCTOPRINT_ONLY, Action, Param, Registry
from octopanel.errors import Busy, PrinterError, SafetyError
from octopanel.printers.backend import BUSY_STATES, PrinterState
from octopanel.values import to_float

GROUP = "Job"
ACTIVE = BUSY_STATES | {"paused"}


def start(ctx: Context) -> Result:
    job = ctx.client.job() or {}
    if not ((job.get("job") or {}).get("file") or {}).get("name"):
        # OctoPrint answers 204 and does nothing when no file is selected: say so instead.
        raise SafetyError("no file is selected: select one with 8fselect or use 8runfile; nothing sent")
    ctx.client.job_command("start")
    return Result("print started")


def restart(ctx: Context) -> Result:
    ctx.client.job_command("restart")
    return Result("print restarted from the beginning")


def pause_raw(ctx: Context) -> Result:
    ctx.client.job_command("pause")
    return Result("pause toggle sent")


def pause(ctx: Context) -> Result:
    ctx.client.job_command("pause", "pause")
    return Result("paused")


def resume(ctx: Context) -> Result:
    ctx.client.job_command("pause", "resume")
    return Result("resumed")


def cancel(ctx: Context) -> Result:
    ctx.client.gcode(["M108", "M77"])  # break a waiting heat-up, stop the print timer
    return cancel_only(ctx)


def cancel_only(ctx: Context) -> Result:
    """Klipper's CANCEL_PRINT needs no M108 (Klipper has none) and stops its own print timer."""
    ctx.client.job_command("cancel")
    return Result("print cancelled")


def xcancel_with(cancel_job: Callable[[Context], Result]) -> Callable[..., Result]:
    def run(ctx: Context, timeout: float = 60.0) -> Result:
        return xcancel(ctx, timeout, cancel_job)

    return run


def xcancel(ctx: Context, timeout: float = 60.0, cancel_job: Callable[[Context], Result] | None = None) -> Result:
    tool = ctx.client.tool().get("tool0", {}).get("target")
    try:
        bed = (ctx.client.bed().get("bed") or {}).get("target")
    except Busy:
        bed = None  # OctoPrint answers 409 when the profile has no heated bed
    (cancel_job or cancel)(ctx)
    wait_until(ctx, lambda s: s.name not in ACTIVE, timeout, "the print to finish cancelling")
    if tool is not None:
        ctx.client.tool_target({"tool0": tool})
    if bed is not None:
        ctx.client.bed_target(bed)
    ctx.client.home()
    kept = ", ".join(f"{name} {value:g} °C" for name, value in (("tool", tool), ("bed", bed)) if value is not None)
    return Result(f"print cancelled, targets kept ({kept or 'none set'}), homed")


def waitend(ctx: Context, timeout: float | None = None, interval: float = 10.0) -> Result:
    started = time.monotonic()

    def done(state: PrinterState) -> bool:
        elapsed = time.monotonic() - started
        ctx.progress(f"waiting for the print to end: {state.name} ({elapsed:.0f} s)")
        if state.name in ("disconnected", "error"):
            raise PrinterError(f"the printer is {state.name}: the print will not end normally")
        return state.name not in ACTIVE

    wait_until(ctx, done, timeout, "the print to end", interval)
    ctx.progress_done()
    return Result("printer is operational", sent=False)


def wait_until(
    ctx: Context,
    predicate: Callable[[PrinterState], bool],
    timeout: float | None,
    what: str,
    interval: float = 0.2,
) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while not predicate(ctx.client.state()):
        if deadline is not None and time.monotonic() >= deadline:
            ctx.progress_done()
            raise PrinterError(f"gave up waiting for {what} after {timeout:g} s")
        ctx.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))


TIMEOUT = Param(
    "timeout", to_float, None, 0, 7 * 86400, "give up after this many seconds", flag="--timeout", takes_value=True
)


def register(reg: Registry) -> None:
    reg.register(
        Action(
            "start", start, "start the selected file", GROUP, states=frozenset({"idle"}), commands=("start", "print")
        )
    )
    reg.register(
        Action(
            "restart",
            restart,
            "restart the paused print from the beginning",
            GROUP,
            states=frozenset({"paused"}),
            dangerous=True,
            backends=OCTOPRINT_ONLY,
            not_there="Klipper cannot rewind a job: cancel it and start the file again",
        )
    )
    reg.register(
        Action(
            "pause_raw",
            pause_raw,
            "the raw pause toggle: pauses or resumes, whichever the state",
            GROUP,
            dangerous=True,
        )
    )
    reg.register(
        Action(
            "pause",
            pause,
            "pause, only if printing; safe to repeat (runout sensors)",
            GROUP,
            states=frozenset({"printing", "resuming", "finishing"}),
            skip_when_not=True,
            already=frozenset({"paused", "pausing"}),
            retries=True,
        )
    )
    reg.register(
        Action(
            "resume",
            resume,
            "resume, only if paused",
            GROUP,
            states=frozenset({"paused"}),
            skip_when_not=True,
            already=frozenset({"resuming"}),
            skip_word="paused",
        )
    )
    reg.register(
        Action(
            "cancel",
            cancel,
            "M108, M77, then cancel the print",
            GROUP,
            states=ACTIVE,
            skip_when_not=True,
            dangerous=True,
            variants=(("moonraker", cancel_only),),
        )
    )
    reg.register(
        Action(
            "xcancel",
            xcancel,
            "cancel, keep the temperature targets, then home",
            GROUP,
            states=ACTIVE,
            skip_when_not=True,
            dangerous=True,
            params=(TIMEOUT,),
            variants=(("moonraker", xcancel_with(cancel_only)),),
        )
    )
    reg.register(
        Action(
            "waitend",
            waitend,
            "wait until the print has ended",
            GROUP,
            slow=True,
            params=(
                TIMEOUT,
                Param(
                    "interval", to_float, 10.0, 0.05, 3600, "seconds between polls", flag="--interval", takes_value=True
                ),
            ),
        )
    )
