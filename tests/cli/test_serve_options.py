"""`bastion serve` options a typo must not turn into a busy or a silent gateway: `--config-poll 0`
(or a negative number, or nan) made the file watcher check the file on every event-loop turn, a
core busy for nothing, and `inf` silently stopped watching. They exit with a usage error (2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from bastion.cli.serve import serve


@pytest.mark.parametrize("value", ["0", "-1", "0.05", "nan", "-nan", "inf", "1e9", "soon"])
def test_a_config_poll_outside_its_range_is_a_usage_error(value: str) -> None:
    result = CliRunner().invoke(serve, ["--config", "bastion.yaml", "--config-poll", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--config-poll'" in result.output, result.output
    assert "0.1<=x<=86400" in result.output or "is not a valid float" in result.output, result.output


@pytest.mark.parametrize("value", ["0.1", "0.2", "5", "86400"])
def test_a_config_poll_in_its_range_is_taken(value: str) -> None:
    [option] = [p for p in serve.params if p.name == "config_poll"]
    assert option.type.convert(value, option, None) == float(value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BASTION_SESSION_TTL", "-1"), ("BASTION_SESSION_TTL", "1e12"), ("BASTION_PORT", "not-a-port")],
)
@pytest.mark.parametrize("command", [["serve"], ["admin", "reset-token"]])
def test_a_setting_bastion_cannot_take_is_one_line_naming_it(variable: str, value: str, command: list[str]) -> None:
    """It was pydantic's traceback (`bastion serve` with BASTION_SESSION_TTL=-1)."""
    result = CliRunner().invoke(cli, command, env={variable: value})
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: invalid settings: ") and variable in result.output, result.output
    assert value not in result.output  # a setting's value may be a secret
