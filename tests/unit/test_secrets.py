"""``${VAR}`` secret references: resolved late, masked everywhere they could leak."""

from __future__ import annotations

import json
import traceback
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from etl_nb._masking import MASK, redact
from etl_nb._secrets import references, resolve, safe_url
from etl_nb.errors import ConnectorError, EtlError, MissingSecret, PipelineError, scrub_chain


def _secret() -> str:
    # Unique per test: redaction is process-wide, a shared value would mask other tests' text.
    return f"pw-{uuid.uuid4().hex}"


def test_references_lists_the_variables() -> None:
    assert references("postgresql://${PGUSER}:${PGPASSWORD}@db/shop") == ["PGUSER", "PGPASSWORD"]
    assert references("no secrets here, not even $HOME") == []


def test_resolve_substitutes_from_the_environment() -> None:
    secret = _secret()
    assert resolve("x://u:${PW}@h", environ={"PW": secret}) == f"x://u:{secret}@h"


def test_resolve_reads_a_dotenv_file_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    from_file, from_env = _secret(), _secret()
    env_file.write_text(f"TOKEN={from_file}\nOTHER={from_file}\n")
    assert resolve("${TOKEN}", env_file=env_file, environ={}) == from_file
    assert resolve("${OTHER}", env_file=env_file, environ={"OTHER": from_env}) == from_env


def test_resolve_names_the_missing_variable_and_the_fix() -> None:
    with pytest.raises(MissingSecret) as info:
        resolve("${NOT_SET_ANYWHERE}", environ={}, connection="shop")
    assert info.value.variable == "NOT_SET_ANYWHERE"
    assert str(info.value) == (
        "Connection 'shop' uses ${NOT_SET_ANYWHERE} but it is not set: "
        "export it or add it to the .env file beside the notebook."
    )


def test_a_resolved_value_is_masked_from_then_on() -> None:
    secret = _secret()
    resolve("${PW}", environ={"PW": secret})
    assert redact(f"login failed for password {secret}!") == f"login failed for password {MASK}!"


def test_an_error_message_never_holds_a_resolved_value() -> None:
    secret = _secret()
    resolve("${PW}", environ={"PW": secret})
    error = ConnectorError(f"cannot connect with {secret}")
    assert secret not in str(error)
    assert secret not in repr(error)
    assert MASK in error.message


def test_a_literal_url_password_is_masked() -> None:
    text = "could not connect to postgresql://alice:hunter2pass@db.example.com:5432/shop"
    assert redact(text) == f"could not connect to postgresql://alice:{MASK}@db.example.com:5432/shop"
    assert "hunter2pass" not in str(EtlError(text))


def test_a_url_without_password_is_left_alone() -> None:
    text = (
        "see https://example.com/a:b and postgresql://alice@db/shop and C:/data "
        "and https://api.example.com:8443/v1/users?email=ada@example.com"
    )
    assert redact(text) == text


def test_safe_url_hides_the_password_of_a_database_url() -> None:
    shown = safe_url("postgresql://alice:s3cr3t-literal@db:5432/shop")
    assert "s3cr3t-literal" not in shown
    assert shown.startswith("postgresql://alice:")
    assert shown.endswith("@db:5432/shop")


def test_safe_url_masks_known_secrets_in_paths_and_http_urls() -> None:
    secret = _secret()
    resolve("${TOKEN}", environ={"TOKEN": secret})
    assert safe_url(f"https://api.example.com/?token={secret}") == f"https://api.example.com/?token={MASK}"


def test_very_short_values_are_not_treated_as_secrets() -> None:
    # A one-letter value would otherwise mask every 'a' in every message.
    resolve("${SHORT}", environ={"SHORT": "a"})
    assert redact("a table") == "a table"


# --- every form a secret takes in text (issue 10, item 4) ------------------------------------


@pytest.mark.parametrize(
    "shown",
    [
        pytest.param(lambda s: s, id="raw"),
        pytest.param(repr, id="repr"),
        pytest.param(lambda s: f"Illegal header value {('Bearer ' + s).encode()!r}", id="bytes-repr"),
        pytest.param(lambda s: repr(repr(s)), id="repr-of-repr"),
        pytest.param(lambda s: json.dumps({"token": s}), id="json"),
        pytest.param(lambda s: "https://api/x?token=" + quote(s, safe=""), id="url-encoded"),
        pytest.param(lambda s: "https://api/x?token=" + quote_plus(s), id="form-encoded"),
        pytest.param(lambda s: f"token {s.rstrip()} rejected", id="trailing-newline-stripped"),
    ],
)
@pytest.mark.parametrize("ending", ["\n", "\r", "\r\n", ""])
def test_a_secret_is_masked_in_every_escaped_form(shown: Any, ending: str) -> None:
    secret = f"tok/{uuid.uuid4().hex}+&\"'{ending}"
    resolve("${TOKEN}", environ={"TOKEN": secret})
    text = redact(shown(secret))
    assert uuid.UUID(secret[4:36]).hex not in text
    assert MASK in text


def test_an_error_chain_carrying_a_resolved_secret_is_scrubbed() -> None:
    user = f"user-{uuid.uuid4().hex}"
    resolve("${DB_USER}", environ={"DB_USER": user})

    class DriverError(Exception):
        def __str__(self) -> str:  # a driver that formats its own message, not from args
            return f'role "{user}" does not exist'

    def connect() -> None:
        try:
            try:
                raise DriverError()
            except DriverError as exc:
                raise ValueError(f"login as {user} failed") from exc
        except ValueError as exc:
            raise ConnectorError("Cannot connect to 'shop'.") from exc

    with pytest.raises(ConnectorError) as info:
        connect()
    scrubbed = scrub_chain(info.value)
    shown = "".join(traceback.format_exception(scrubbed))
    assert user not in shown
    assert "Cannot connect to 'shop'." in shown
    assert f"login as {MASK} failed" in shown  # masked, not dropped: the chain still helps debugging


def test_a_long_error_message_is_cut() -> None:
    error = PipelineError("bad value " + "9" * 100_000)
    assert len(error.message) < 5_000
    assert error.message.endswith("more characters cut)")
