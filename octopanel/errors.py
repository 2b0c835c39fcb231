"""One error hierarchy; each class knows the exit code it stands for."""


class OctopanelError(Exception):
    """Base of every error the user should see as a message, never a traceback."""

    exit_code = 1


class UsageError(OctopanelError):
    """The command line or an action line is wrong (exit 2)."""

    exit_code = 2


class ConfigError(OctopanelError):
    """A config or keymap file is wrong; carries file, line and key path."""

    exit_code = 2

    def __init__(self, message: str, file: str | None = None, line: int | None = None, path: str | None = None) -> None:
        self.file, self.line, self.path, self.message = file, line, path, message
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        if path:
            where += f"{path}: "
        super().__init__(where + message)


class SafetyError(OctopanelError):
    """octopanel itself refused to send something unsafe (exit 1: the printer's state forbids it)."""

    exit_code = 1


class PrinterError(OctopanelError):
    """OctoPrint answered with an error or could not be reached."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None, response_text: str | None = None) -> None:
        self.status, self.response_text = status, response_text
        super().__init__(message)


class Busy(PrinterError):
    """409: the printer is busy or in the wrong state; carries OctoPrint's own message."""


class KeyRejected(PrinterError):
    """403, or 400 'CSRF validation failed' on POST: the API key was not accepted."""


class Unreachable(PrinterError):
    """Connection refused, DNS failure or timeout."""


class NotFound(PrinterError):
    """404: unknown file, system command or endpoint."""


class BadRequest(PrinterError):
    """400/415: OctoPrint did not understand the request."""


class ServerError(PrinterError):
    """5xx or a body that is not the JSON promised."""
