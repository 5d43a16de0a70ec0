"""The domain's text guard, the aggregates that call it, and the schema patterns that echo it."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import msgspec
import pytest

from sora2.adapters.http import schemas
from sora2.domain.errors import InvalidInput
from sora2.domain.orders.order import Order
from sora2.domain.text import (
    MULTILINE_PATTERN,
    SINGLE_LINE_PATTERN,
    check_text,
    is_clean_text,
    scrub_text,
)
from sora2.domain.users.rules import check_password, check_username, normalize_email
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video

NOW = datetime(2025, 1, 1, tzinfo=UTC)
REFUSED = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\r", "\x1b", "\x1f", "\x7f", "\x85", "\x9f"]
REFUSED += ["\u2028", "\u2029", "\ud800", "\udfff"]
WELCOME = ["a", " ", "é", "ß", "中", "あ", "한", "\u00a0", "\u200b", "\ufeff", "🐈", "\U0010ffff"]


def hex_id(value: str) -> str:
    return "-".join(f"U+{ord(c):04X}" for c in value)


# --- check_text ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", REFUSED, ids=hex_id)
@pytest.mark.parametrize("multiline", [False, True])
def test_control_characters_and_surrogates_are_refused(bad: str, multiline: bool) -> None:
    value = f"ab{bad}cd"
    with pytest.raises(InvalidInput) as refused:
        check_text(value, "prompt", multiline=multiline)
    message = str(refused.value)
    assert message.startswith("prompt: must not contain control characters")
    assert f"U+{ord(bad):04X} at position 2" in message
    assert bad not in message  # the message itself is clean
    assert not is_clean_text(value, multiline=multiline)


@pytest.mark.parametrize("good", WELCOME, ids=hex_id)
def test_printable_text_of_any_script_passes_unchanged(good: str) -> None:
    value = f"ab{good}cd"
    assert check_text(value, "username") is value
    assert check_text(value, "prompt", multiline=True) is value
    assert is_clean_text(value)


@pytest.mark.parametrize("allowed", ["\n", "\t", "\n\n\t\t"])
def test_newline_and_tab_are_allowed_only_in_multiline_text(allowed: str) -> None:
    for value in (f"a{allowed}b", f"ab{allowed}", f"{allowed}ab"):
        assert check_text(value, "prompt", multiline=True) == value
        with pytest.raises(InvalidInput, match=r"^email: must not contain control characters \("):
            check_text(value, "email")


def test_the_empty_string_is_clean() -> None:
    assert check_text("", "token") == ""


def test_a_value_that_is_not_text_is_refused() -> None:
    with pytest.raises(InvalidInput, match="^token: must be text$"):
        check_text(b"abc", "token")  # type: ignore[arg-type]
    assert not is_clean_text(None)


def test_scrub_replaces_control_characters_and_keeps_newlines() -> None:
    assert (
        scrub_text("boom\x00\x1b[31m\nline 2\ttab\ud800")
        == "boom\ufffd\ufffd[31m\nline 2\ttab\ufffd"
    )
    assert scrub_text("a\nb", multiline=False) == "a\ufffdb"
    assert scrub_text("clean 中文") == "clean 中文"


def test_every_code_point_is_judged_alike_by_guard_and_schema_pattern() -> None:
    single, multi = re.compile(SINGLE_LINE_PATTERN), re.compile(MULTILINE_PATTERN)
    for code in range(0x110000):
        char = chr(code)
        surrogate = 0xD800 <= code <= 0xDFFF
        control = unicodedata.category(char) == "Cc" or char in "\u2028\u2029"
        value = f"a{char}b"
        assert is_clean_text(value) is not (control or surrogate), hex_id(char)
        assert is_clean_text(value, multiline=True) is not (
            (control and char not in "\t\n") or surrogate
        ), hex_id(char)
        if not surrogate:  # the JSON decoder refuses those before any pattern runs
            assert (single.search(value) is not None) is is_clean_text(value), hex_id(char)
            assert (multi.search(value) is not None) is is_clean_text(value, multiline=True)


def test_the_patterns_do_not_let_a_final_newline_through() -> None:
    # Python's `$` also matches before a final "\n"; the patterns must not
    assert re.search(SINGLE_LINE_PATTERN, "abc\n") is None
    assert re.search(MULTILINE_PATTERN, "abc\n") is not None
    assert re.search(MULTILINE_PATTERN, "abc\r\n") is None


# --- the HTTP schema: the same rule, before any command ---------------------------------------


@pytest.mark.parametrize(
    ("schema", "field", "value"),
    [
        (schemas.RegisterRequest, "email", "a\x00b@example.com"),
        (schemas.RegisterRequest, "email", "ab@example.com\n"),
        (schemas.RegisterRequest, "username", "ab\x07c"),
        (schemas.RegisterRequest, "username", "abc\n"),
        (schemas.RegisterRequest, "password", "password\x00123"),
        (schemas.LoginRequest, "email", "a\x00b@example.com"),
        (schemas.LoginRequest, "password", "\x07"),
        (schemas.ForgotPasswordRequest, "email", "a@example.com\n"),
        (schemas.ResetPasswordRequest, "token", "abc.d\x00ef"),
        (schemas.ChangePasswordRequest, "currentPassword", "pass\tword"),
        (schemas.ChangePasswordRequest, "newPassword", "new\x1bpassword"),
        (schemas.UpdateProfileRequest, "email", "a@b.co\u2028"),
        (schemas.GenerateRequest, "prompt", "a fox\x00"),
        (schemas.GenerateRequest, "prompt", "a fox\r\nin snow"),
    ],
)
def test_the_request_schemas_refuse_control_characters(
    schema: type, field: str, value: str
) -> None:
    valid = {
        "email": "ab@example.com",
        "username": "abc",
        "password": "password123",
        "token": "abc.def",
        "currentPassword": "password123",
        "newPassword": "password456",
        "prompt": "a fox",
    }
    wanted = {name: valid[name] for name in schema.__struct_encode_fields__ if name in valid}
    msgspec.convert(wanted, schema)  # the valid body passes
    with pytest.raises(msgspec.ValidationError, match=rf"at `\$\.{field}`$"):
        msgspec.convert({**wanted, field: value}, schema)


def test_a_prompt_with_newlines_tabs_and_cjk_passes_the_schema() -> None:
    prompt = "一只猫\n\t在雨中 🐈"
    assert msgspec.convert({"prompt": prompt}, schemas.GenerateRequest).prompt == prompt


def test_every_request_string_carries_a_text_pattern() -> None:
    """A new string field without a pattern would let control characters in again."""
    requests = [
        v
        for v in vars(schemas).values()
        if isinstance(v, type)
        and issubclass(v, schemas.RequestBody)
        and v.__name__.endswith("Request")
    ]
    assert len(requests) >= 8
    (_, components) = msgspec.json.schema_components(requests)
    checked = 0
    for name, component in components.items():
        for field, prop in component.get("properties", {}).items():  # enums have none
            variants = prop.get("anyOf", [prop])
            for variant in variants:
                if variant.get("type") == "string" and "enum" not in variant:
                    assert "pattern" in variant, (name, field)
                    checked += 1
    assert checked >= 12


# --- the rules and the aggregates ------------------------------------------------------------


def test_the_user_rules_refuse_control_characters_before_normalising() -> None:
    with pytest.raises(InvalidInput, match="^email: must not contain"):
        normalize_email("ada@example.com\n")  # .strip() would otherwise hide it
    with pytest.raises(InvalidInput, match="^email: must not contain"):
        normalize_email("ada\x00@example.com")
    with pytest.raises(InvalidInput, match="^username: must not contain"):
        check_username("ada\x00")
    with pytest.raises(InvalidInput, match="^password: must not contain"):
        check_password("password\x00123")
    assert normalize_email("  Ada@Example.com ") == "ada@example.com"


@pytest.mark.parametrize(
    ("email", "username"),
    [("a\x00b@example.com", "ada"), ("ada@example.com", "ad\x00a"), ("ada@example.com", "ada\n")],
)
def test_a_user_with_control_characters_is_never_registered(email: str, username: str) -> None:
    with pytest.raises(InvalidInput):
        User.register(uuid4(), email, username, "hash-0", NOW)


def test_a_user_cannot_change_to_a_poisoned_email_or_username() -> None:
    user = User.register(uuid4(), "ada@example.com", "ada", "hash-0", NOW)
    user.collect_events()
    with pytest.raises(InvalidInput):
        user.change_email("ada\x07@example.com", NOW)
    with pytest.raises(InvalidInput):
        user.change_username("ada\x00", NOW)
    assert list(user.collect_events()) == []
    assert (user.email, user.username) == ("ada@example.com", "ada")


def request_video(prompt: str) -> Video:
    return Video.request(uuid4(), uuid4(), prompt, 5, "16:9", 1, NOW)


@pytest.mark.parametrize(
    "prompt", ["a\x00b", "fox\x07", "line\r\nbreak", "a\u2028b", "\ud83d"], ids=hex_id
)
def test_a_video_prompt_with_control_characters_is_refused(prompt: str) -> None:
    with pytest.raises(InvalidInput, match="^prompt: must not contain control characters other"):
        request_video(prompt)


def test_a_video_prompt_may_have_newlines_tabs_and_cjk() -> None:
    prompt = "第一行\n\t第二行 🐈"
    video = request_video(prompt)
    (requested,) = video.collect_events()
    assert isinstance(requested, Video.Requested)
    assert requested.prompt == prompt


def test_a_failure_message_from_a_provider_is_scrubbed_not_refused() -> None:
    video = request_video("a fox")
    video.start(NOW, "worker-1")
    video.fail("provider said: \x00\x1b[1mboom\nretry later", NOW)
    assert video.status == "FAILED"
    assert video.error == "provider said: \ufffd\ufffd[1mboom\nretry later"


def place_order() -> Order:
    return Order.place(uuid4(), uuid4(), 10, Decimal("0.10"), "STRIPE", NOW)


def test_an_order_is_not_paid_under_a_poisoned_reference() -> None:
    order = place_order()
    with pytest.raises(InvalidInput, match="^providerReference: must not contain"):
        order.mark_paid("cs_\x00test", NOW)
    assert order.status == "PENDING"
    order.mark_paid("cs_test_123", NOW)
    assert (order.status, order.provider_reference) == ("PAID", "cs_test_123")


def test_an_order_failure_reason_is_scrubbed() -> None:
    order = place_order()
    order.collect_events()
    order.mark_failed("declined\x00", NOW)
    (failed,) = order.collect_events()
    assert isinstance(failed, Order.Failed)
    assert failed.reason == "declined\ufffd"
