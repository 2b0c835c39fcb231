"""Print jobs: start, pause and resume (stateless), restart, cancel, wait for the end."""

import time

from octopanel.actions.invoke import Result
from octopanel.actions.registry import BUSY_STATES, OCTOPRINT_ONLY, Action, Param
from octopanel.errors import Busy, PrinterError, SafetyError
from octopanel.values import to_float

GROUP = "Job"
ACTIVE = BUSY_STATES | {"paused"}


def start(ctx):
    job = ctx.client.job() or {}
    if not ((job.get("job") or {}).get("file") or {}).get("name"):
        # OctoPrint answers 204 and does nothing when no file is selected: say so instead.
        raise SafetyError("no file is selected: select one with 8fselect or use 8runfile; nothing sent")
    ctx.client.job_command("start")
    return Result("print started")


def restart(ctx):
    ctx.client.job_command("restart")
    return Result("print restarted from the beginning")


def pause_raw(ctx):
    ctx.client.job_command("pause")
    return Result("pause toggle sent")


def pause(ctx):
    ctx.client.job_command("pause", "pause")
    return Result("paused")


def resume(ctx):
    ctx.client.job_command("pause", "resume")
    return Result("resumed")


def cancel(ctx):
    ctx.client.gcode(["M108", "M77"])  # break a waiting heat-up, stop the print timer
    return cancel_only(ctx)


def cancel_only(ctx):
    """Klipper's CANCEL_PRINT needs no M108 (Klipper has none) and stops its own print timer."""
    ctx.client.job_command("cancel")
    return Result("print cancelled")


def xcancel_with(cancel_job):
    def run(ctx, timeout=60.0):
        return xcancel(ctx, timeout, cancel_job)

    return run


def xcancel(ctx, timeout=60.0, cancel_job=cancel):
    tool = ctx.client.tool().get("tool0", {}).get("target")
    try:
        bed = (ctx.client.bed().get("bed") or {}).get("target")
    except Busy:
        bed = None  # OctoPrint answers 409 when the profile has no heated bed
    cancel_job(ctx)
    wait_until(ctx, lambda s: s.name not in ACTIVE, timeout, "the print to finish cancelling")
    if tool is not None:
        ctx.client.tool_target({"tool0": tool})
    if bed is not None:
        ctx.client.bed_target(bed)
    ctx.client.home()
    kept = ", ".join(f"{name} {value:g} °C" for name, value in (("tool", tool), ("bed", bed)) if value is not None)
    return Result(f"print cancelled, targets kept ({kept or 'none set'}), homed")


def waitend(ctx, timeout=None, interval=10.0):
    started = time.monotonic()

    def done(state):
        elapsed = time.monotonic() - started
        ctx.progress(f"waiting for the print to end: {state.name} ({elapsed:.0f} s)")
        if state.name in ("disconnected", "error"):
            raise PrinterError(f"the printer is {state.name}: the print will not end normally")
        return state.name not in ACTIVE

    wait_until(ctx, done, timeout, "the print to end", interval)
    ctx.progress_done()
    return Result("printer is operational", sent=False)


def wait_until(ctx, predicate, timeout, what, interval=0.2):
    deadline = None if timeout is None else time.monotonic() + timeout
    while not predicate(ctx.client.state()):
        if deadline is not None and time.monotonic() >= deadline:
            ctx.progress_done()
            raise PrinterError(f"gave up waiting for {what} after {timeout:g} s")
        ctx.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))


TIMEOUT = Param(
    "timeout", to_float, None, 0, 7 * 86400, "give up after this many seconds", flag="--timeout", takes_value=True
)


def register(reg):
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
