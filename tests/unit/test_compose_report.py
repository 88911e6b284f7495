"""What `validate` prints: env files' problems without their secrets, warnings beside errors,
and the extension keys (``x-*``) the compose specification allows wherever it allows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import cli
from runtime.compose import load_text
from runtime.compose.env import parse_env
from runtime.errors import ComposeError

pytestmark = pytest.mark.unit

SECRET = "hunter2-s3cr3t"
# Each line is wrong in another way, and each holds the secret.
BAD_ENV_LINES = [
    f"PASSWORD {SECRET}",
    f"TOKEN='{SECRET}' trailing",
    f'TOKEN="{SECRET}" trailing',
    f"TOKEN=${{{SECRET}",
    f"TOKEN=${{X:?{SECRET}}}",
    f"TOKEN=${{-{SECRET}}}",
    f"TOKEN=${{X!{SECRET}}}",
    f"TOKEN='{SECRET}",
    f'TOKEN="{SECRET}',
]


@pytest.mark.parametrize("line", BAD_ENV_LINES)
def test_env_file_problems_never_echo_the_line(line: str) -> None:
    parsed = parse_env(f"OK=1\n{line}\n")
    assert [n for n, _ in parsed.problems] == [2]
    assert all(SECRET not in message for _, message in parsed.problems), parsed.problems


def test_validate_names_the_env_file_and_line_but_prints_no_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "secrets.env").write_text("OK=1\n" + "\n".join(BAD_ENV_LINES) + "\n")
    (tmp_path / ".env").write_text("\n".join(BAD_ENV_LINES) + "\n")
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n    image: alpine\n    env_file: secrets.env\n")
    assert cli.main(["-f", str(tmp_path), "validate"]) == 2
    err = capsys.readouterr().err
    assert SECRET not in err
    # The last line is read as part of the value its unclosed quote opens one line before.
    for number in range(2, len(BAD_ENV_LINES) + 1):
        assert f"secrets.env:{number}: services.app.env_file:" in err
    for number in range(1, len(BAD_ENV_LINES)):
        assert f"/.env:{number}:" in err


def test_validate_prints_warnings_when_the_file_also_has_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    image: alpine\n    imagee: typo\n  bad:\n    cpus: nan\n")
    assert cli.main(["-f", str(tmp_path), "validate"]) == 2
    err = capsys.readouterr().err
    assert "warning: " in err and "unknown key 'imagee'" in err
    assert "error: " in err and "services.bad" in err


def test_the_compose_error_carries_the_warnings() -> None:
    with pytest.raises(ComposeError) as info:
        load_text("services:\n  app:\n    image: alpine\n    imagee: x\n    cpus: nan\n", environ={})
    assert [w.field for w in info.value.warnings] == ["imagee"]


# ---- x- extension keys -------------------------------------------------------------------


@pytest.mark.parametrize("setting", [
    "depends_on:\n      db:\n        condition: service_started\n        x-why: migrations first",
    "ports:\n      - target: 80\n        published: 8080\n        x-note: web",
    "volumes:\n      - type: bind\n        source: /srv\n        target: /srv\n        x-note: data",
    "networks:\n      front:\n        x-note: public",
    "healthcheck:\n      test: 'true'\n      x-note: cheap",
    "logging:\n      driver: json-file\n      x-note: rotated",
    "deploy:\n      x-note: swarm only\n      resources:\n        x-note: limits\n        limits:\n"
    "          cpus: '1'\n          x-note: one",
    "build:\n      context: .\n      x-note: local",
])
def test_extension_keys_are_allowed_in_long_syntax_mappings(setting: str) -> None:
    text = ("services:\n  db:\n    image: postgres\n  app:\n    image: alpine\n    " + setting + "\n"
            "networks:\n  front:\n    x-note: top\nvolumes:\n  data:\n    x-note: top\n")
    result = load_text(text, workdir="/", project="demo", environ={})
    assert not result.warnings, result.warnings
