"""Settings come from defaults < batchcall.toml < BATCHCALL_* environment < command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchcall._cli import main
from batchcall._config import resolve
from batchcall._errors import UsageError

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "contacts.csv"
TEAM = ["--from-number", "+61291234567", "--script-id", "a1b2c3d4-e5f6-7890-abcd-ef1234567890"]


def toml(directory: Path, text: str, name: str = "batchcall.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_each_layer_overrides_the_one_below(tmp_path):
    """A value on the command line beats the environment, which beats the file, which beats
    the built-in default."""
    assert resolve(environ={}, cwd=tmp_path).settings.max_rate is None
    toml(tmp_path, "max_rate = 10\ntimeout = 5\nregion = 'AU'\n")
    layered = {"BATCHCALL_MAX_RATE": "20", "BATCHCALL_TIMEOUT": "7"}

    assert resolve(environ={}, cwd=tmp_path).settings.max_rate == 10
    from_env = resolve(environ=layered, cwd=tmp_path).settings
    assert (from_env.max_rate, from_env.timeout, from_env.region) == (20, 7, "AU")
    from_cli = resolve({"max_rate": 30, "timeout": None}, environ=layered, cwd=tmp_path).settings
    assert (from_cli.max_rate, from_cli.timeout) == (30, 7)


@pytest.mark.parametrize(
    ("in_file", "in_env", "on_cli", "expected"),
    [
        (None, None, None, False),
        ("true", None, None, True),
        ("true", "false", None, False),
        ("false", "yes", None, True),
        ("true", "1", False, False),  # --no-allow-duplicates beats both
        (None, "0", True, True),
    ],
)
def test_booleans_follow_the_same_precedence(tmp_path, in_file, in_env, on_cli, expected):
    """A flag set in the file can be turned off by the environment and back on (or off) by
    `--flag` / `--no-flag`; the environment accepts true/false, yes/no and 1/0."""
    if in_file is not None:
        toml(tmp_path, f"allow-duplicates = {in_file}\n")
    environ = {} if in_env is None else {"BATCHCALL_ALLOW_DUPLICATES": in_env}
    settings = resolve({"allow_duplicates": on_cli}, environ=environ, cwd=tmp_path).settings
    assert settings.allow_duplicates is expected


def test_output_options_and_key_file_take_the_same_path(tmp_path):
    """`json`, `quiet`, `verbose` and `api_key_file` can live in the file or environment too;
    a key file named in the file is found next to it, wherever the job runs from."""
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    config = toml(config_dir, "json = true\nquiet = true\napi_key_file = 'voxworks.key'\n")
    _, output = resolve(
        {"quiet": False}, config_path=config, environ={"BATCHCALL_VERBOSE": "on"}, cwd=tmp_path
    )
    assert output.as_json and not output.quiet and output.verbose
    assert output.api_key_file == config_dir / "voxworks.key"


def test_explicit_config_wins_over_the_working_directorys_file(tmp_path):
    """`--config PATH` (or BATCHCALL_CONFIG) is read instead of ./batchcall.toml."""
    toml(tmp_path, "region = 'AU'\n")
    other = toml(tmp_path, "region = 'NZ'\n", name="nightly.toml")
    assert resolve(environ={}, cwd=tmp_path).settings.region == "AU"
    assert resolve(config_path=other, environ={}, cwd=tmp_path).settings.region == "NZ"
    via_env = {"BATCHCALL_CONFIG": str(other)}
    assert resolve(environ=via_env, cwd=tmp_path).settings.region == "NZ"
    with pytest.raises(UsageError, match="does not exist"):
        resolve(config_path=tmp_path / "missing.toml", environ={}, cwd=tmp_path)


def test_column_mappings_add_up_across_layers(tmp_path):
    """A [columns] table, BATCHCALL_COLUMNS and --column each remap fields; later layers win
    field by field instead of replacing the whole mapping."""
    toml(tmp_path, "[columns]\nphone_number = 'Mobile'\nfirst_name = 'Given'\n")
    environ = {"BATCHCALL_COLUMNS": "first_name=Prénom, last_name=Nom"}
    settings = resolve(
        {"columns": {"phone_number": "Cell"}}, environ=environ, cwd=tmp_path
    ).settings
    assert settings.columns == {
        "phone_number": "Cell",
        "first_name": "Prénom",
        "last_name": "Nom",
    }


@pytest.mark.parametrize(
    ("file_text", "environ", "args", "names"),
    [
        ("max_rate = 'fast'\n", {}, [], ["max_rate", "'fast'", "batchcall.toml"]),
        ("", {"BATCHCALL_CONCURRENCY": "-3"}, [], ["concurrency", "BATCHCALL_CONCURRENCY"]),
        ("", {"BATCHCALL_QUIET": "maybe"}, [], ["quiet", "'maybe'", "BATCHCALL_QUIET"]),
        ("", {}, ["--outside-window", "later"], ["outside-window", "defer", "reject"]),
        ("max_rat = 5\n", {}, [], ["unknown setting", "'max_rat'", "max_rate"]),
        ("api_key = 'sk_live_x'\n", {}, [], ["never read from a file", "VOXWORKS_API_KEY"]),
        ("max_rate = [\n", {}, [], ["Cannot read config"]),
    ],
)
def test_a_bad_value_exits_2_naming_the_option_and_where_it_came_from(
    tmp_path, monkeypatch, file_text, environ, args, names
):
    """A wrong value in any layer stops the command with exit 2 before any work, and the
    message says which option, what value and which file or variable held it."""
    monkeypatch.chdir(tmp_path)
    if file_text:
        toml(tmp_path, file_text)
    result = CliRunner().invoke(main, ["validate", str(SAMPLE), *TEAM, *args], env=environ)
    assert result.exit_code == 2, result.output
    for name in names:
        assert name in result.output
    assert "sk_live_x" not in result.output
    assert not (tmp_path / "reports").exists()


def test_precedence_decides_what_the_command_line_does(tmp_path, monkeypatch):
    """End to end: where the run directory goes and what is printed follow the layers."""
    monkeypatch.chdir(tmp_path)
    toml(tmp_path, "reports_dir = 'from-file'\njson = true\n")
    runner = CliRunner()

    from_file = runner.invoke(main, ["validate", str(SAMPLE), *TEAM])
    assert json.loads(from_file.stdout)["run_dir"].startswith(str(tmp_path / "from-file"))

    env = {"BATCHCALL_REPORTS_DIR": "from-env", "BATCHCALL_JSON": "false"}
    from_env = runner.invoke(main, ["validate", str(SAMPLE), *TEAM], env=env)
    assert from_env.stdout.startswith("batchcall validate: 50 rows")
    assert "from-env/contacts-" in from_env.stdout

    args = ["validate", str(SAMPLE), *TEAM, "--reports-dir", "from-cli", "--json"]
    from_cli = runner.invoke(main, args, env=env)
    assert json.loads(from_cli.stdout)["run_dir"].startswith("from-cli/contacts-")


def test_window_options_without_a_window_are_refused(tmp_path):
    """--holidays or --contact-timezone without --calling-window is an error, not a no-op."""
    with pytest.raises(UsageError, match="only apply with --calling-window"):
        resolve({"holidays": "AU-NSW"}, environ={}, cwd=tmp_path)
    settings = resolve(
        {"holidays": "AU-NSW", "calling_window": "au-telemarketing"}, environ={}, cwd=tmp_path
    ).settings
    assert settings.holidays == "AU-NSW"
