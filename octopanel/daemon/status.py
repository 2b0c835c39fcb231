"""What the daemon shows: its one-line status (systemd, `octopanel run`) and the keypad LEDs."""

from typing import TYPE_CHECKING

from octopanel.panel.router import STATE_LEDS

if TYPE_CHECKING:
    from octopanel.daemon.executor import Executor
    from octopanel.panel.router import Panel


def status_line(connected: int, health_note: str | None, executor: "Executor", panel: "Panel") -> str:
    """E.g. 'keypad: connected (1 device) · printer: idle · mode: step 10'."""
    if connected:
        keypad = f"keypad: connected ({connected} device{'s' if connected > 1 else ''})"
    else:
        keypad = "waiting for keypad"
    if health_note is not None:
        printer = health_note
    elif executor.unreachable:
        printer = f"{executor.ctx.client.server_name} unreachable, retrying"
    else:
        state = executor.last_state
        printer = f"printer: {state.name if state else 'unknown'}"
    parts = [keypad, printer] + [f"mode: {n} {v}" for n, v in panel.modes.items()]
    return " · ".join(parts)


def led_states(mode: str, executor: "Executor", panel: "Panel") -> dict[str, bool]:
    """Each LED on or off for the keymap's `feedback.leds` mode (not 'off'): panel modes, or printer states."""
    if mode == "mode":
        return panel.leds()
    state = executor.last_state.name if executor.last_state else ""
    return {led: state in states for led, states in STATE_LEDS.items()}
