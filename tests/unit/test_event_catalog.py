"""The event catalog is the public contract on NATS, and docs/events.asyncapi.yaml describes it.

A scenario makes one event of every kind; each payload must match the document's schema
(envelope, data fields, types), carry no secret, and the document must list exactly the
catalog's subjects. An event class added to the domain but not to the catalog fails here.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Mapper, UUIDAsHex

from sora2.application.event_catalog import (
    CATALOG,
    SECRET_FIELDS,
    camel_case,
    event_id_text,
    kind_of,
    public_fields,
    public_message,
    public_message_of_state,
    subjects,
)
from sora2.application.event_log import event_id
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.orders.order import Order
from sora2.domain.users.claim import Claim
from sora2.domain.users.session import Session
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video
from tests.support.json_schema import (
    CHECKPOINT_CHANNEL,
    assert_matches,
    asyncapi_document,
    resolve,
)

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "src" / "sora2" / "domain"
T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def every_kind_of_event() -> list[Any]:
    """One run of the product that records each cataloged event at least once."""
    t = iter(T0 + timedelta(seconds=i) for i in range(1000))
    user = User.register(uuid4(), "ann@example.com", "ann", "$argon2id$secret-hash", next(t))
    user.change_email("ann2@example.com", next(t))
    user.change_username("ann2", next(t))
    user.change_avatar("avatars/ann.png", next(t))
    user.change_password("$argon2id$second-hash", next(t))
    user.request_password_reset("reset-token-hash", T0 + timedelta(days=1), next(t))
    user.reset_password("reset-token-hash", "$argon2id$third-hash", next(t))
    admin_id = uuid4()
    user.change_role("ADMIN", "cli", next(t))
    user.suspend(admin_id, "spam", next(t))
    user.unsuspend(admin_id, next(t))

    ledger = CreditLedger(user_id=user.id, timestamp=next(t))
    ledger.reward(10, "Signup bonus", next(t))
    paid, failed, cancelled, expired, refunded = (
        Order.place(uuid4(), user.id, 50, Decimal("0.10"), "STRIPE", next(t)) for _ in range(5)
    )
    paid.mark_paid("ref-1", next(t))
    failed.mark_failed("card declined", next(t))
    cancelled.cancel(next(t))
    cancelled.return_payment("ref-late", next(t))
    expired.expire(timedelta(seconds=1), T0 + timedelta(days=1))
    ledger.recharge(paid.id, 50, next(t))
    refunded.mark_paid("ref-2", next(t))
    ledger.recharge(refunded.id, 50, next(t))
    refunded.refund(uuid4(), "asked by the customer", next(t))
    ledger.reverse(refunded.id, 50, next(t))
    ledger.adjust(-5, admin_id, "duplicate bonus", next(t))
    ledger.adjust(5, admin_id, "goodwill", next(t))

    done, broken, dropped = (
        Video.request(uuid4(), user.id, "a cat", 5, "16:9", 1, next(t)) for _ in range(3)
    )
    for video in (done, broken, dropped):
        ledger.reserve(video.id, video.cost, next(t))
    done.start(next(t), "host:1:aa")
    # events of logs written before heartbeats and progress moved to the job board
    done._resumed("host:2:bb", next(t))
    done._progress_reported(40, 3, next(t))
    done.complete("videos/done.mp4", "videos/done.jpg", next(t))
    ledger.settle(done.id, next(t))
    done.share("share-token-hash", next(t))
    done.revoke_share(next(t))
    done.delete(next(t))
    broken.fail("provider error", next(t), "moderation_blocked")
    ledger.refund(broken.id, next(t))
    dropped.cancel(next(t), admin_id)
    ledger.refund(dropped.id, next(t))

    token = uuid4()
    session = Session(id=uuid4(), user_id=user.id, token_id=token, epoch=0, timestamp=next(t))
    session.rotate(token, uuid4(), next(t))
    session.end("logout", next(t))
    claim = Claim(kind="email", value="ann@example.com", owner_id=user.id, timestamp=next(t))
    claim.release(user.id, next(t))
    claim.take(uuid4(), next(t))

    orders = [paid, failed, cancelled, expired, refunded]
    aggregates = [user, ledger, *orders, done, broken, dropped, session, claim]
    return [e for a in aggregates for e in a.collect_events()]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document()


@pytest.fixture(scope="module")
def published() -> list[tuple[Any, dict[str, Any]]]:
    return [(e, public_message(e)[1]) for e in every_kind_of_event()]


# --- names -------------------------------------------------------------------------------------


def test_subjects_follow_the_spec() -> None:
    assert kind_of(CreditLedger.Reserved).subject("sora2") == "sora2.credits.consumed"
    assert kind_of(Video.Requested).subject("sora2") == "sora2.video.requested"
    assert kind_of(Order.Created).subject("sora2") == "sora2.order.created"
    assert kind_of(User.PasswordResetRequested).type == "user.password_reset_requested"
    assert kind_of(Video.ShareRevoked).type == "video.share_revoked"
    assert len(set(subjects("x"))) == len(CATALOG)


def declared_event_classes() -> set[str]:
    """`Aggregate.Inner` for every class nested in a domain class, read from the source."""
    found = set()
    for path in DOMAIN.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                found |= {f"{node.name}.{n.name}" for n in node.body if isinstance(n, ast.ClassDef)}
    return found


def test_every_event_class_in_the_domain_is_cataloged() -> None:
    assert {c.__qualname__ for c in CATALOG} == declared_event_classes()


def test_an_uncataloged_event_still_publishes_under_a_derived_name() -> None:
    class Gadget(Aggregate):
        class WasPolished(Aggregate.Event):
            by: UUID
            token_hash: str

        @event("Created")
        def __init__(self) -> None:
            pass

        @event(WasPolished)
        def polish(self, by: UUID, token_hash: str) -> None:
            pass

    gadget = Gadget()
    gadget.polish(by=UUID(int=7), token_hash="secret")
    kind, payload = public_message(gadget.collect_events()[-1])
    assert kind.subject("sora2") == "sora2.gadget.was_polished"
    assert payload["type"] == "gadget.was_polished"
    assert payload["data"] == {"by": str(UUID(int=7))}


# --- payloads ------------------------------------------------------------------------------------


def test_the_scenario_makes_every_cataloged_kind(published: list[tuple[Any, Any]]) -> None:
    assert {type(e) for e, _ in published} == set(CATALOG)


def test_payloads_are_json_with_the_envelope(published: list[tuple[Any, Any]]) -> None:
    for domain_event, payload in published:
        assert json.loads(json.dumps(payload)) == payload
        assert payload["eventId"] == str(event_id(domain_event))
        assert payload["type"] == kind_of(type(domain_event)).type
        assert payload["aggregateId"] == str(domain_event.originator_id)
        assert payload["version"] == domain_event.originator_version
        assert payload["timestamp"].endswith("Z")
        assert datetime.fromisoformat(payload["timestamp"]) == domain_event.timestamp
        assert set(payload["data"]) == {camel_case(n) for n in public_fields(type(domain_event))}


def test_payloads_read_straight_from_the_stored_json_are_the_same(
    published: list[tuple[Any, Any]],
) -> None:
    """The relay maps the log's stored JSON without building events: same payload, and
    anything it does not know (another transcoding, an upcast class) is left to decoding."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    mapper = Mapper(transcoder=transcoder)
    for domain_event, payload in published:
        stored = mapper.to_stored_event(domain_event)
        state = msgspec.json.decode(stored.state)
        assert (
            public_message_of_state(
                type(domain_event), stored.originator_id, stored.originator_version, state
            )
            == payload
        )
    domain_event, _ = published[0]
    stored = mapper.to_stored_event(domain_event)
    state = msgspec.json.decode(stored.state)
    unknown = {**state, "timestamp": {"_type_": "some_other", "_data_": "x"}}
    upcast = {**state, "class_version": 2}
    for odd in (unknown, upcast):
        assert public_message_of_state(type(domain_event), stored.originator_id, 1, odd) is None


def test_event_ids_written_from_the_digest_are_the_uuid5_of_the_event() -> None:
    """The relay writes the UUID 5 from SHA-1's hex digest itself: the same text as `uuid5`
    for every variant digit and version."""

    class Some:
        def __init__(self, originator_id: UUID, originator_version: int) -> None:
            self.originator_id, self.originator_version = originator_id, originator_version

    for n in range(2000):
        some = Some(uuid4(), n % 97)
        assert event_id_text(some) == str(event_id(some))


def test_no_secret_leaves_the_service(published: list[tuple[Any, Any]]) -> None:
    text = json.dumps([payload for _, payload in published])
    for secret in ("secret-hash", "second-hash", "third-hash", "reset-token-hash", "share-token"):
        assert secret not in text
    assert not {camel_case(n) for n in SECRET_FIELDS} & {
        key for _, payload in published for key in payload["data"]
    }
    session = next(p for e, p in published if isinstance(e, Session.Started))
    assert session["data"] == {"userId": session["data"]["userId"], "epoch": 0}


def test_a_credits_consumed_payload_reads_as_documented(published: list[tuple[Any, Any]]) -> None:
    domain_event, payload = next((e, p) for e, p in published if p["type"] == "credits.consumed")
    assert payload["data"] == {
        "userId": str(domain_event.user_id),
        "videoId": str(domain_event.video_id),
        "amount": 5,
        "balance": 55,
    }


# --- the AsyncAPI document -----------------------------------------------------------------------


def event_channels(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for name, c in document["channels"].items() if name != CHECKPOINT_CHANNEL]


def test_the_document_lists_exactly_the_catalogs_subjects(document: dict[str, Any]) -> None:
    addresses = [channel["address"] for channel in event_channels(document)]
    assert sorted(addresses) == sorted(subjects("sora2"))
    assert document["asyncapi"].startswith("3.")


def test_the_document_lists_the_ledger_checkpoints_beside_the_events(
    document: dict[str, Any],
) -> None:
    """`sora2 ledger checkpoint` publishes too (tests/e2e/test_ledger_tampering.py reads one
    from JetStream and holds it to this schema)."""
    channel = document["channels"][CHECKPOINT_CHANNEL]
    assert channel["address"] == "sora2-checkpoints.ledger"
    message = resolve(document, channel["messages"]["ledgerCheckpoint"]["$ref"])
    assert message["payload"]["required"] == ["checkpoint", "publicKey", "signature"]
    operations = [o["channel"]["$ref"] for o in document["operations"].values()]
    assert f"#/channels/{CHECKPOINT_CHANNEL}" in operations


def message_schemas(document: dict[str, Any]) -> dict[str, tuple[dict, dict]]:
    """Event type → (envelope schema, data schema), following the document's references."""

    result = {}
    for channel in event_channels(document):
        for reference in channel["messages"].values():
            message = resolve(document, reference["$ref"])
            envelope_ref, own = message["payload"]["allOf"]
            result[own["properties"]["type"]["const"]] = (
                resolve(document, envelope_ref["$ref"]),
                own["properties"]["data"],
            )
            assert message["name"] == own["properties"]["type"]["const"]
            assert channel["address"] == f"sora2.{message['name']}"
    return result


def test_each_documented_message_has_the_catalogs_data_fields(document: dict[str, Any]) -> None:
    schemas = message_schemas(document)
    for event_class, kind in CATALOG.items():
        _, data = schemas[kind.type]
        fields = [camel_case(name) for name in public_fields(event_class)]
        assert list(data["properties"]) == fields, kind.type
        assert data["required"] == fields, kind.type


def test_every_payload_matches_its_documented_schema(
    document: dict[str, Any], published: list[tuple[Any, Any]]
) -> None:
    schemas = message_schemas(document)
    for _, payload in published:
        envelope, data = schemas[payload["type"]]
        assert_matches(payload, envelope, payload["type"])
        assert_matches(payload["data"], data, payload["type"])
