"""The whole-session secret scan: after every test (kernel ones included), no API key in the files the suite
wrote or in the output pytest captured. Run by tests/conftest.py's pytest_sessionfinish, so that it does
not depend on the order the tests run in; tests/test_secrets.py checks the scan itself and each command.
"""

import re

DISTINCT_KEY = "zzSECRET-octopanel-4e1f9b27c6a8d305"
KEY_STORE_NAMES = {"config.yaml", "octocmd.conf", ".octocmd.conf", "users.yaml", "keys.yaml", "octoprint-api-key"}
KEY_STORE_PATTERN = re.compile(r"(api[_-]?key|apikey|secret|token|credential|key\.txt$|^key$)", re.I)
MAX_SCAN_BYTES = 50 * 1024 * 1024


def secrets(octoprint):
    return [key for key in (octoprint.api_key, octoprint.admin_key, DISTINCT_KEY) if key]


def leaks(text, keys):
    """The keys found in text, whole or as a 12-character piece (a key cut by a line break still leaks)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = []
    for key in keys:
        pieces = {key} | {key[i : i + 12] for i in range(0, max(1, len(key) - 11), 6)}
        if any(piece in text for piece in pieces):
            found.append(key[:4] + "…")
    return found


def is_key_store(path, data):
    """A file whose purpose is to hold a key: octopanel's or 8control's config, a key file, OctoPrint's data."""
    if path.name in KEY_STORE_NAMES or KEY_STORE_PATTERN.search(path.name):
        return True
    if path.suffix in (".yaml", ".yml", ".conf", ".json") and re.search(rb"api_?key|OctoAPI_KEY", data, re.I):
        return True  # a config file with a key setting, e.g. what `octopanel login` writes
    return any((parent / "data" / "appkeys").is_dir() for parent in path.parents)


def leaking_files(base, keys):
    """(files under `base` holding a key that should not, key stores holding one): 'path (key…)' each."""
    bad, stores = [], []
    for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            if path.stat().st_size > MAX_SCAN_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue  # a socket or FIFO left behind, or a file removed meanwhile
        found = leaks(data, keys)
        if found:
            (stores if is_key_store(path, data) else bad).append(f"{path.relative_to(base)} ({', '.join(found)})")
    return bad, stores


def leaking_reports(stats, keys):
    """(node ids whose captured output or failure text holds a key, how many texts were scanned)."""
    bad, texts = set(), 0
    for reports in stats.values():
        for report in reports:
            parts = [content for _title, content in getattr(report, "sections", ())]
            parts.append(getattr(report, "longreprtext", "") or "")
            for part in parts:
                texts += 1
                if leaks(part, keys):
                    bad.add(getattr(report, "nodeid", "?"))
    return sorted(bad), texts


def scan_session(base, stats, keys):
    """Every problem found, as lines for the terminal; [] when the session leaked nothing."""
    files, stores = leaking_files(base, keys)
    reports, _texts = leaking_reports(stats, keys)
    problems = [f"the API key is in a file the suite wrote: {f}" for f in files]
    problems += [f"the API key is in the captured output of {nodeid}" for nodeid in reports]
    if problems and stores:
        problems.append(f"(key stores, allowed: {stores})")
    return problems
