"""sdn-controller options: defaults, precedence flag > env > file > default, and one-line errors."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from controller.config import Config, ConfigError, OpenFlowTls, build_parser, load_config

DEFAULTS = Config(
    of_listen=("127.0.0.1", 6653),
    api_listen=("127.0.0.1", 8080),
    db="sqlite:////var/lib/sdn-controller/sdn.db",
    api_token=None,
    log_level="info",
    lldp_interval=1.0,
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    assert load_config([], {}) == DEFAULTS


def test_state_dir_moves_the_default_database(tmp_path: Path) -> None:
    assert load_config([], {"SDN_STATE_DIR": str(tmp_path)}).db == f"sqlite:///{tmp_path}/sdn.db"


TOML = """
[controller]
of_listen = "10.0.0.1:6633"
api-listen = "0.0.0.0:9000"
db = "sqlite:////file.db"
api_token = "from-file"
log_level = "warning"
lldp_interval = 2.5
"""
INI = """
[controller]
of-listen = 10.0.0.1:6633
api_listen = 0.0.0.0:9000
db = sqlite:////file.db
api-token = from-file
log-level = warning
lldp-interval = 2.5
"""
FROM_FILE = Config(("10.0.0.1", 6633), ("0.0.0.0", 9000), "sqlite:////file.db", "from-file", "warning", 2.5)


@pytest.mark.parametrize(("name", "text"), [("sdn.toml", TOML), ("sdn.ini", INI), ("sdn.conf", INI), ("sdn", TOML)])
def test_file_values(tmp_path: Path, name: str, text: str) -> None:
    assert load_config(["--config", write(tmp_path, name, text)], {}) == FROM_FILE


def test_toml_without_a_section(tmp_path: Path) -> None:
    path = write(tmp_path, "c.toml", 'log-level = "debug"\n')
    assert load_config([], {"SDN_CONFIG": path}).log_level == "debug"


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    path = write(tmp_path, "c.toml", TOML)
    env = {"SDN_API_LISTEN": "127.0.0.2:8081", "SDN_LOG_LEVEL": "ERROR", "SDN_API_TOKEN": "from-env"}
    flags = ["--config", path, "--log-level", "debug", "--lldp-interval", "0.25"]
    config = load_config(flags, env)
    assert config == Config(
        of_listen=("10.0.0.1", 6633),  # file
        api_listen=("127.0.0.2", 8081),  # env beats file
        db="sqlite:////file.db",  # file
        api_token="from-env",  # env beats file
        log_level="debug",  # flag beats env and file
        lldp_interval=0.25,  # flag beats file
    )
    assert load_config(["--db", "sqlite://", "--of-listen", "[::1]:6653"], {"SDN_DB": "sqlite:////env.db"}) == Config(
        ("::1", 6653), DEFAULTS.api_listen, "sqlite://", None, "info", 1.0
    )


def test_flow_budget_from_flag_env_or_file(tmp_path: Path) -> None:
    assert DEFAULTS.max_flows_per_switch is None
    path = write(tmp_path, "c.toml", "max_flows_per_switch = 300\n")
    assert load_config(["--config", path], {}).max_flows_per_switch == 300
    assert load_config(["--config", path], {"SDN_MAX_FLOWS_PER_SWITCH": "200"}).max_flows_per_switch == 200
    flag = load_config(["--max-flows-per-switch", "100"], {"SDN_MAX_FLOWS_PER_SWITCH": "200"})
    assert flag.max_flows_per_switch == 100


def test_empty_environment_variable_counts_as_unset() -> None:
    assert load_config([], {"SDN_API_TOKEN": "", "SDN_LOG_LEVEL": ""}) == DEFAULTS


def test_token_stays_out_of_the_repr() -> None:
    assert "hush" not in repr(load_config(["--api-token", "hush"], {}))


@pytest.mark.parametrize(
    ("argv", "env", "source"),
    [
        (["--of-listen", "6653"], {}, "--of-listen"),
        (["--of-listen", "host:"], {}, "--of-listen"),
        (["--api-listen", ":8080"], {}, "--api-listen"),
        ([], {"SDN_API_LISTEN": "localhost:99999"}, "SDN_API_LISTEN"),
        (["--log-level", "loud"], {}, "--log-level"),
        ([], {"SDN_LLDP_INTERVAL": "0"}, "SDN_LLDP_INTERVAL"),
        (["--lldp-interval", "nan"], {}, "--lldp-interval"),
        (["--lldp-interval", "soon"], {}, "--lldp-interval"),
        (["--api-token", "two words"], {}, "--api-token"),
        (["--db", " "], {}, "--db"),
        (["--max-flows-per-switch", "0"], {}, "--max-flows-per-switch"),
        ([], {"SDN_MAX_FLOWS_PER_SWITCH": "many"}, "SDN_MAX_FLOWS_PER_SWITCH"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], env: dict[str, str], source: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(argv, env)
    assert str(info.value).startswith(source + ":") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("c.toml", 'of_listen = "nope"', "c.toml: of_listen:"),
        ("c.toml", 'colour = "blue"', "unknown option 'colour'"),
        ("c.toml", "of_listen = [1]", "must be a string or a number"),
        ("c.toml", "this is = not toml", "not a valid config file"),
        ("c.ini", "of_listen = 1.2.3.4:1\n", "[controller] section"),
        ("c.ini", "[controller\n", "not a valid config file"),
        ("c.cfg", "[other]\nx = 1\n", "[controller] section"),
    ],
)
def test_bad_files_are_one_line(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as info:
        load_config(["--config", path], {})
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config([], {"SDN_CONFIG": str(tmp_path / "absent.toml")})


# -- the API token from a file -----------------------------------------------------------------

SECRET = "s3cr3t-value"


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    return write(tmp_path, "token", SECRET + "\n")


def with_file(items: list[str] | dict[str, str], path: str) -> Any:
    """`items` with each "FILE" replaced by `path`."""
    if isinstance(items, dict):
        return {key: value.replace("FILE", path) for key, value in items.items()}
    return [item.replace("FILE", path) for item in items]


@pytest.mark.parametrize(
    ("argv", "env", "file_text"),
    [
        (["--api-token", SECRET], {}, None),
        ([], {"SDN_API_TOKEN": SECRET}, None),
        (["--api-token-file", "FILE"], {}, None),
        ([], {"SDN_API_TOKEN_FILE": "FILE"}, None),
        ([], {}, 'api_token_file = "FILE"'),
        ([], {}, f'api_token = "{SECRET}"'),
    ],
)
def test_token_from_each_source(
    tmp_path: Path, token_file: str, argv: list[str], env: dict[str, str], file_text: str | None
) -> None:
    env = with_file(env, token_file)
    if file_text:
        env["SDN_CONFIG"] = write(tmp_path, "c.toml", file_text.replace("FILE", token_file))
    assert load_config(with_file(argv, token_file), env) == replace(DEFAULTS, api_token=SECRET)


def test_token_file_content_is_stripped_and_kept_out_of_the_repr(tmp_path: Path) -> None:
    config = load_config(["--api-token-file", write(tmp_path, "token", f"  {SECRET} \r\n\n")], {})
    assert config.api_token == SECRET and SECRET not in repr(config)


@pytest.mark.parametrize(
    ("argv", "env", "file_text", "sources"),
    [
        (["--api-token", SECRET, "--api-token-file", "FILE"], {}, None, "--api-token and --api-token-file:"),
        (["--api-token-file", "FILE"], {"SDN_API_TOKEN": SECRET}, None, "SDN_API_TOKEN and --api-token-file:"),
        ([], {"SDN_API_TOKEN_FILE": "FILE"}, f'api_token = "{SECRET}"', "c.toml: api_token and SDN_API_TOKEN_FILE:"),
    ],
)
def test_token_and_token_file_together_are_an_error(
    tmp_path: Path, token_file: str, argv: list[str], env: dict[str, str], file_text: str | None, sources: str
) -> None:
    argv = with_file(argv, token_file)
    if file_text:
        argv += ["--config", write(tmp_path, "c.toml", file_text)]
    with pytest.raises(ConfigError) as info:
        load_config(argv, with_file(env, token_file))
    message = str(info.value)
    assert sources in message and message.endswith("give only one of them")
    assert "\n" not in message and SECRET not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "the token must be non-empty"),
        (" \n\n", "the token must be non-empty"),
        ("two words\n", "the token must be non-empty and contain no whitespace"),
        (b"\xff\xfe\xfa", "cannot read"),
    ],
)
def test_bad_token_file_content_is_a_one_line_error(tmp_path: Path, content: str | bytes, reason: str) -> None:
    path = tmp_path / "token"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_token_file_error(str(path), reason)


def test_unreadable_token_files_are_a_one_line_error(tmp_path: Path) -> None:
    assert_token_file_error(str(tmp_path / "absent"), "cannot read")
    assert_token_file_error(str(tmp_path), "cannot read")  # a directory


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_token_file_without_read_permission_is_a_one_line_error(token_file: str) -> None:
    os.chmod(token_file, 0)
    assert_token_file_error(token_file, "Permission denied")


def assert_token_file_error(path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config([], {"SDN_API_TOKEN_FILE": path})
    message = str(info.value)
    assert message.startswith("SDN_API_TOKEN_FILE: ") and path in message and reason in message
    assert "\n" not in message


def test_help_says_why_a_token_file_is_better() -> None:
    text = " ".join(build_parser().format_help().split())
    for reason in ("ps, /proc/PID/cmdline", "/proc/PID/environ", "child processes", "crash reports",
                   "mode 0600 can be readable by the service alone", "--api-token-file FILE"):
        assert reason in text


# -- OpenFlow over TLS -------------------------------------------------------------------------


def test_tls_files_come_as_three_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("c.pem", "k.pem", "ca.pem"):
        write(tmp_path, name, "PEM")
    config = load_config(["--of-tls-cert", "c.pem", "--of-tls-key", "k.pem"], {"SDN_OF_TLS_CA": "ca.pem"})
    assert config.of_tls == OpenFlowTls(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), str(tmp_path / "ca.pem"))
    assert load_config([], {}).of_tls is None


def test_tls_files_go_together_and_must_be_readable(tmp_path: Path) -> None:
    cert = write(tmp_path, "c.pem", "PEM")
    with pytest.raises(ConfigError, match="--of-tls-cert, --of-tls-key, --of-tls-ca go together"):
        load_config(["--of-tls-cert", cert, "--of-tls-key", cert], {})
    with pytest.raises(ConfigError, match=r"^--of-tls-ca: cannot read .*absent"):
        load_config(["--of-tls-ca", str(tmp_path / "absent")], {})


def test_ovsdb_defaults_to_the_local_database_and_none_turns_it_off(tmp_path: Path) -> None:
    assert load_config([], {}).ovsdb == "unix:/var/run/openvswitch/db.sock"
    assert load_config(["--ovsdb", "none"], {}).ovsdb is None
    assert load_config([], {"SDN_OVSDB": "tcp:127.0.0.1:6640"}).ovsdb == "tcp:127.0.0.1:6640"
    assert load_config(["--config", write(tmp_path, "c.toml", 'ovsdb = "none"\nattach = "br-int, br-ex"\n')],
                       {}).attach == ("br-int", "br-ex")
    with pytest.raises(ConfigError, match="--ovsdb: expected unix:PATH"):
        load_config(["--ovsdb", "/var/run/openvswitch/db.sock"], {})
    with pytest.raises(ConfigError, match="SDN_ATTACH: expected bridge names"):
        load_config([], {"SDN_ATTACH": "br int"})
