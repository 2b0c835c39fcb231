"""Settings resolution: flags > env > octopanel YAML > ~/.octocmd.conf > /etc/octocmd.conf > systemd credential."""

import json
import os
import stat
from pathlib import Path

import pytest

from octopanel import credentials
from octopanel import settings as settings_mod
from octopanel.errors import ConfigError

ETC_OCTOCMD = Path("/etc/octocmd.conf")
ETC_OCTOPANEL = Path("/etc/octopanel/config.yaml")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty HOME and XDG_CONFIG_HOME; the real /etc files must not exist for these tests to mean anything."""
    if ETC_OCTOCMD.exists() or ETC_OCTOPANEL.exists():
        pytest.skip("this machine has /etc/octocmd.conf or /etc/octopanel/config.yaml")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("OCTOPANEL_CONFIG", raising=False)
    # load() must take OCTOPRINT_* and CREDENTIALS_DIRECTORY from its env argument, not from the process.
    monkeypatch.setenv("OCTOPRINT_URL", "http://from-the-process-env:1")
    monkeypatch.setenv("OCTOPRINT_API_KEY", "process-env-key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "nowhere"))
    return home


def write(path, text, mode=0o600):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def octocmd(home, url="10.0.0.1:5000", key="octocmd-key-0123", mode=0o600):
    data = {}
    if url is not None:
        data["OctoPrint_URL"] = url
    if key is not None:
        data["OctoAPI_KEY"] = key
    return write(home / ".octocmd.conf", json.dumps(data), mode)


def yaml_config(home, text, mode=0o600):
    return write(home / ".config" / "octopanel" / "config.yaml", text, mode)


def credential(tmp_path, key="credential-key-0123"):
    directory = tmp_path / "creds"
    write(directory / settings_mod.CREDENTIAL_NAME, key + "\n", 0o400)
    return {"CREDENTIALS_DIRECTORY": str(directory)}


# -- the order of the layers ---------------------------------------------------------------------------


def test_nothing_configured_gives_defaults_and_a_helpful_error(home):
    settings = settings_mod.load({}, None, env={})
    assert settings.url is None and settings.api_key is None
    assert settings.sources["url"] == "default" and settings.jog_direction == "profile"
    assert settings.warnings == []
    with pytest.raises(ConfigError) as info:
        settings.require_connection()
    text = str(info.value)
    assert text.startswith("no OctoPrint url and api key configured. Give one of:")
    for hint in (
        "--url URL --api-key KEY",
        "OCTOPRINT_URL and OCTOPRINT_API_KEY",
        "~/.octocmd.conf",
        str(home / ".config" / "octopanel" / "config.yaml"),
        "octoprint-api-key",
        "octopanel login URL",
    ):
        assert hint in text
    assert info.value.exit_code == 2


def test_only_the_key_missing_names_only_the_key(home):
    settings = settings_mod.load({"url": "http://x"}, None, env={})
    with pytest.raises(ConfigError, match="^no OctoPrint api key configured"):
        settings.require_connection()


def test_systemd_credential_is_the_lowest_layer(home, tmp_path):
    env = credential(tmp_path)
    settings = settings_mod.load({"url": "http://x"}, None, env=env)
    assert settings.api_key == "credential-key-0123"  # stripped of its newline
    assert settings.sources["api_key"] == f"systemd credential {tmp_path / 'creds' / settings_mod.CREDENTIAL_NAME}"
    octocmd(home, url=None, key="octocmd-key")
    assert settings_mod.load({}, None, env=env).api_key == "octocmd-key"


def test_octocmd_conf_in_home(home):
    path = octocmd(home)
    settings = settings_mod.load({}, None, env={})
    assert settings.url == "http://10.0.0.1:5000"  # a bare host:port gets a scheme
    assert settings.api_key == "octocmd-key-0123"
    assert settings.sources["url"] == settings.sources["api_key"] == str(path)
    assert settings.warnings == []


def test_octocmd_layers_reads_home_only_when_etc_is_absent(home):
    assert settings_mod.octocmd_layers(settings_mod.Settings()) == []
    path = octocmd(home, url="http://a:1", key="k" * 20)
    assert settings_mod.octocmd_layers(settings_mod.Settings()) == [
        (str(path), {"url": "http://a:1", "api_key": "k" * 20})
    ]


def test_octocmd_layers_fall_back_to_the_system_file(home, tmp_path):
    """~/.octocmd.conf wins whole (no key-by-key merge, as in 8control); the system file is read without it."""
    system = tmp_path / "etc-octocmd.conf"
    system.write_text(json.dumps({"OctoPrint_URL": "http://system:80", "OctoAPI_KEY": "s" * 20}))
    system.chmod(0o600)
    files = ("~/.octocmd.conf", str(system))
    assert settings_mod.octocmd_layers(settings_mod.Settings(), files) == [
        (str(system), {"url": "http://system:80", "api_key": "s" * 20})
    ]
    path = octocmd(home, url="http://home:1", key=None)
    assert settings_mod.octocmd_layers(settings_mod.Settings(), files) == [(str(path), {"url": "http://home:1"})]
    assert settings_mod.OCTOCMD_FILES == ("~/.octocmd.conf", "/etc/octocmd.conf")  # what 8control reads


def test_yaml_overrides_octocmd_key_by_key(home):
    octocmd(home, url="http://octocmd:5000", key="octocmd-key-0123")
    path = yaml_config(home, "url: http://yaml:5000\nmax_tool_temp: 300\n")
    settings = settings_mod.load({}, None, env={})
    assert settings.url == "http://yaml:5000" and settings.sources["url"] == str(path)
    assert settings.api_key == "octocmd-key-0123" and settings.sources["api_key"] == str(home / ".octocmd.conf")
    assert settings.limits["max_tool_temp"] == 300.0


def test_environment_overrides_yaml(home):
    yaml_config(home, "url: http://yaml:5000\napi_key: yaml-key-01234567\n")
    settings = settings_mod.load(
        {}, None, env={"OCTOPRINT_URL": "http://env:5000", "OCTOPRINT_API_KEY": "env-key-0123"}
    )
    assert (settings.url, settings.api_key) == ("http://env:5000", "env-key-0123")
    assert settings.sources["url"] == settings.sources["api_key"] == "environment"


def test_flags_override_everything(home, tmp_path):
    octocmd(home)
    yaml_config(home, "url: http://yaml:5000\napi_key: yaml-key-01234567\n")
    env = {"OCTOPRINT_URL": "http://env:5000", "OCTOPRINT_API_KEY": "env-key-0123", **credential(tmp_path)}
    settings = settings_mod.load({"url": "http://flag:5000", "api_key": "flag-key-0123", "config": None}, None, env=env)
    assert (settings.url, settings.api_key) == ("http://flag:5000", "flag-key-0123")
    assert settings.sources["url"] == settings.sources["api_key"] == "command line"


def test_flags_given_as_none_do_not_override(home):
    settings = settings_mod.load({"url": None, "api_key": None}, None, env={"OCTOPRINT_URL": "http://env:1"})
    assert settings.url == "http://env:1" and settings.sources["url"] == "environment"


def test_empty_environment_values_do_not_override(home):
    yaml_config(home, "url: http://yaml:5000\n")
    assert settings_mod.load({}, None, env={"OCTOPRINT_URL": ""}).url == "http://yaml:5000"


def test_octopanel_config_env_names_the_file(home, tmp_path, monkeypatch):
    yaml_config(home, "url: http://default-location:1\n")
    other = write(tmp_path / "elsewhere.yaml", "url: http://elsewhere:2\n")
    monkeypatch.setenv("OCTOPANEL_CONFIG", str(other))
    assert settings_mod.load({}, None, env={}).url == "http://elsewhere:2"


def test_config_argument_names_the_file_and_must_exist(home, tmp_path):
    path = write(tmp_path / "given.yaml", "url: http://given:3\n")
    assert settings_mod.load({}, str(path), env={}).sources["url"] == str(path)
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        settings_mod.load({}, str(tmp_path / "missing.yaml"), env={})


# -- validation of the YAML file ------------------------------------------------------------------------


def test_unknown_key_names_file_line_and_a_suggestion(home):
    path = yaml_config(home, "url: http://x\n\nmax_tol_temp: 250\n")
    with pytest.raises(ConfigError) as info:
        settings_mod.load({}, None, env={})
    assert str(info.value) == f"{path}:3: max_tol_temp: unknown setting (did you mean 'max_tool_temp'?)"
    assert (info.value.file, info.value.line, info.value.path) == (str(path), 3, "max_tol_temp")


def test_unknown_key_without_a_close_match(home):
    path = yaml_config(home, "zzz: 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: zzz: unknown setting$"):
        settings_mod.load({}, None, env={})


@pytest.mark.parametrize(
    "text, line, match",
    [
        ("read_timeout: 0\n", 1, "read_timeout: 0 is below the minimum 0.1"),
        ("url: http://x\nmax_tool_temp: hot\n", 2, "max_tool_temp: expected a number, got 'hot'"),
        ("min_factor: 2.5\n", 1, "min_factor: expected a whole number"),
        ("max_bed_temp: 201\n", 1, "max_bed_temp: 201 is above the maximum 200"),
        ("url: [a, b]\n", 1, "url: expected text, got list"),
        ("url: a\nurl: b\n", 2, "duplicate key 'url'"),
        ("url: a\n  b: [\n", 2, "invalid YAML"),
    ],
)
def test_bad_values_name_file_and_line(home, text, line, match):
    path = yaml_config(home, text)
    with pytest.raises(ConfigError, match=rf"^{path}:{line}: .*{match}"):
        settings_mod.load({}, None, env={})


def test_a_list_at_the_top_is_refused(home):
    path = yaml_config(home, "- url\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: expected a mapping of settings"):
        settings_mod.load({}, None, env={})


def test_an_empty_file_is_fine_and_the_daemon_section_is_left_to_the_daemon(home):
    yaml_config(home, "")
    assert settings_mod.load({}, None, env={}).url is None
    yaml_config(home, "url: http://x:1\ndaemon:\n  anything: goes\n")
    assert settings_mod.load({}, None, env={}).url == "http://x:1"


def test_an_empty_value_is_an_error_not_the_text_none(home):
    """`url:` with nothing after it is YAML null; it must not become the URL http://None."""
    path = yaml_config(home, "url:\napi_key: k\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: url: "):
        settings_mod.load({}, None, env={})


def test_jog_direction_is_checked(home):
    path = yaml_config(home, "jog_direction: backwards\n")
    with pytest.raises(
        ConfigError,
        match=rf"^{path}: jog_direction must be one of profile, 8control, raw, "
        r"got 'backwards'",
    ):
        settings_mod.load({}, None, env={})
    yaml_config(home, "jog_direction: 8control\n")
    assert settings_mod.load({}, None, env={}).jog_direction == "8control"


def test_invalid_octocmd_conf(home):
    write(home / ".octocmd.conf", "{OctoAPI_KEY: oops")
    with pytest.raises(ConfigError, match=r"\.octocmd\.conf: not valid JSON"):
        settings_mod.load({}, None, env={})
    write(home / ".octocmd.conf", "[1, 2]")
    with pytest.raises(ConfigError, match='expected {"OctoPrint_URL"'):
        settings_mod.load({}, None, env={})


# -- keys in files ---------------------------------------------------------------------------------------


def test_api_key_file_relative_to_the_config(home):
    key_file = write(home / ".config" / "octopanel" / "key.txt", "  file-key-0123456\n")
    yaml_config(home, "api_key_file: key.txt\n")
    settings = settings_mod.load({}, None, env={})
    assert settings.api_key == "file-key-0123456"
    assert settings.warnings == []
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_api_key_file_with_a_tilde_is_in_home(home):
    write(home / ".octoprint-key", "tilde-key-0123456\n")
    yaml_config(home, "api_key_file: ~/.octoprint-key\n")
    assert settings_mod.load({}, None, env={}).api_key == "tilde-key-0123456"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_readable_key_file_warns(home, mode):
    key_file = write(home / "key.txt", "file-key-0123456\n", mode)
    yaml_config(home, f"api_key_file: {key_file}\n")
    settings = settings_mod.load({}, None, env={})
    assert settings.api_key == "file-key-0123456"
    assert settings.warnings == [f"{key_file} holds the API key and is readable by others; run: chmod 600 {key_file}"]


def test_a_readable_yaml_holding_the_key_warns_but_one_without_a_key_does_not(home):
    path = yaml_config(home, "api_key: inline-key-0123\n", mode=0o644)
    assert [w for w in settings_mod.load({}, None, env={}).warnings if str(path) in w]
    yaml_config(home, "url: http://x\n", mode=0o644)
    assert settings_mod.load({}, None, env={}).warnings == []


def test_a_readable_octocmd_conf_warns(home):
    path = octocmd(home, mode=0o644)
    settings = settings_mod.load({}, None, env={})
    assert settings.warnings == [f"{path} holds the API key and is readable by others; run: chmod 600 {path}"]


def test_an_unreadable_key_file_is_a_config_error(home, tmp_path):
    path = yaml_config(home, f"api_key_file: {tmp_path / 'absent.key'}\n")
    with pytest.raises(ConfigError, match=r"absent\.key: cannot read the API key: No such file"):
        settings_mod.load({}, None, env={})
    assert path.exists()


def test_mask_never_shows_a_usable_key():
    assert credentials.mask("TESTKEY1234567890") == "TE…90"
    assert credentials.mask("short") == "****"
    assert credentials.mask(None) == "(none)" and credentials.mask("") == "(none)"


def test_write_user_config_merges_and_is_private(home):
    path = yaml_config(home, "max_tool_temp: 260\nurl: http://old\n", mode=0o644)
    written = settings_mod.write_user_config({"url": "http://new:5000", "api_key": "new-key-0123456"})
    assert written == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = settings_mod.load({}, None, env={})
    assert (settings.url, settings.api_key, settings.max_tool_temp) == ("http://new:5000", "new-key-0123456", 260.0)
    assert settings.warnings == []


def test_write_user_config_to_a_new_directory(home, tmp_path):
    path = settings_mod.write_user_config({"url": "http://a"}, tmp_path / "deep" / "dir" / "c.yaml")
    assert path.read_text() == "url: http://a\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.path.isdir(tmp_path / "deep" / "dir")


# -- end to end: the layers as 8checkcfg reports them ---------------------------------------------------


def checkcfg(run8, *args, env=None):
    proc = run8("8checkcfg", "--json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc


def test_checkcfg_reports_each_layer(run8, printer, tmp_path):
    home = tmp_path / "home"  # the HOME run8 gives its commands
    octocmd(home, url="http://octocmd:5000", key="octocmd-key-0123")
    yaml_path = yaml_config(home, "url: http://yaml:5000\n")

    data, proc = checkcfg(run8, "--url", "http://flag:5000")
    assert (data["url"], data["sources"]["url"]) == ("http://flag:5000", "command line")
    assert data["sources"]["api_key"] == "environment"
    assert printer.api_key not in proc.stdout + proc.stderr
    assert data["api_key"] == credentials.mask(printer.api_key)

    data, _ = checkcfg(run8)
    assert (data["url"], data["sources"]["url"]) == (printer.url, "environment")

    data, _ = checkcfg(run8, env={"OCTOPRINT_URL": None, "OCTOPRINT_API_KEY": None})
    assert (data["url"], data["sources"]["url"]) == ("http://yaml:5000", str(yaml_path))
    assert (data["api_key"], data["sources"]["api_key"]) == ("oc…23", str(home / ".octocmd.conf"))

    yaml_path.unlink()
    data, _ = checkcfg(run8, env={"OCTOPRINT_URL": None, "OCTOPRINT_API_KEY": None})
    assert (data["url"], data["sources"]["url"]) == ("http://octocmd:5000", str(home / ".octocmd.conf"))


def test_checkcfg_text_and_the_permission_warning(run8, tmp_path):
    home = tmp_path / "home"
    path = octocmd(home, url="http://octocmd:5000", key="octocmd-key-0123", mode=0o644)
    proc = run8("8checkcfg", env={"OCTOPRINT_URL": None, "OCTOPRINT_API_KEY": None})
    assert proc.returncode == 0, proc.stderr
    assert f"Printer URL:   http://octocmd:5000  [from {path}]" in proc.stdout
    assert f"API key:       oc…23  [from {path}]" in proc.stdout
    assert "octocmd-key-0123" not in proc.stdout + proc.stderr
    assert f"warning: {path} holds the API key and is readable by others; run: chmod 600 {path}" in proc.stderr


def test_missing_config_exits_2_and_says_what_is_expected(run8, printer):
    mark = printer.mark()
    # OCTOPANEL_NO_DAEMON: a panel daemon running on this machine must not answer in our place.
    proc = run8("8status", env={"OCTOPRINT_URL": None, "OCTOPRINT_API_KEY": None, "OCTOPANEL_NO_DAEMON": "1"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "8status: no OctoPrint url and api key configured. Give one of:" in proc.stderr
    assert '{"OctoPrint_URL": "http://...", "OctoAPI_KEY": "..."}' in proc.stderr
    assert printer.sent_since(mark) == []


def test_bad_config_file_exits_2_with_file_and_line(run8, tmp_path):
    home = tmp_path / "home"
    path = yaml_config(home, "url: http://x\njog_dir: raw\n")
    proc = run8("8jog", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"8jog: {path}:2: jog_dir: unknown setting (did you mean 'jog_direction'?)" in proc.stderr


def test_systemd_credential_end_to_end(run8, printer, tmp_path):
    env = credential(tmp_path, key=printer.api_key)
    proc = run8("8apiver", env={"OCTOPRINT_API_KEY": None, **env})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "API 0.1, OctoPrint 1.11.8"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://user:secret@host/", "gopher://host", "FILE://x"])
def test_only_http_and_https_urls_are_accepted(url):
    """A file:// or ftp:// URL is a config error naming the scheme, never the rest (it may hold a password)."""
    with pytest.raises(ConfigError, match=r"url must start with http:// or https://, got '\w+://\.\.\.'") as info:
        settings_mod.load(flags={"url": url}, env={})
    assert "secret" not in str(info.value)


def test_checkcfg_refuses_a_file_url(run8):
    proc = run8("8checkcfg", "--url", "file:///etc/passwd")
    assert proc.returncode == 2, proc.stderr
    assert "url must start with http:// or https://" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_option_is_a_typed_attribute_of_settings_and_nothing_else_is():
    """Settings hands out each option through a declared, typed attribute (before: __getattr__ over the
    values dict, which mypy cannot see through); an unknown name is still an AttributeError."""
    settings = settings_mod.load(env={})
    declared = {n for n, v in vars(settings_mod.Settings).items() if isinstance(v, settings_mod.Option)}
    assert declared == set(settings_mod.OPTIONS)
    assert (settings.read_timeout, settings.min_factor, settings.url) == (10.0, 10, None)
    with pytest.raises(AttributeError):
        settings.read_timout  # noqa: B018
