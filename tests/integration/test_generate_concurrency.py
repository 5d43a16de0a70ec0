"""On PostgreSQL, a burst of generate requests can never overdraw a balance.

One user holds exactly 7 videos' worth of credits; 100 clients ask for a video at the same
instant over real HTTP. Exactly 7 are accepted and 93 refused with 402, and afterwards the
balance is 0 in the read model, in the CreditLedger aggregate and in the sum of the entries.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID

import pytest

from sora2.domain.credits.ledger import CreditLedger
from tests.conftest import Api, start_api
from tests.support.backends import postgres_settings
from tests.support.generators import ScriptedGenerator
from tests.support.videos import assert_ledger_consistent, balance, recharge, transactions

pytestmark = pytest.mark.postgres

REQUESTS = 100
AFFORDABLE = 7
COST = 5  # a 5-second video at 1 credit per second


@pytest.fixture
def pg_api(tmp_path: Path) -> Iterator[tuple[Api, ScriptedGenerator]]:
    generator = ScriptedGenerator()  # HOLD prompts: accepted jobs wait, costing no CPU
    with postgres_settings(tmp_path) as settings:
        gen = start_api(settings, generator=generator)
        try:
            yield next(gen), generator
        finally:
            for _ in gen:
                pass


def test_a_hundred_concurrent_generates_against_seven_videos_of_credit(
    pg_api: tuple[Api, ScriptedGenerator],
) -> None:
    api, _ = pg_api
    user, token = api.register("burst")
    recharge(api, user, AFFORDABLE * COST - 10)  # 10 signup + 25 = 35 = 7 videos
    with api.client(token) as client:
        assert balance(client) == AFFORDABLE * COST

    barrier = threading.Barrier(REQUESTS)
    clients = [api.client(token) for _ in range(REQUESTS)]  # one connection per request

    def fire(index: int) -> tuple[int, dict[str, object]]:
        barrier.wait(timeout=30)  # every request leaves at the same moment
        response = clients[index].post(
            "/api/videos/generate", json={"prompt": f"HOLD burst {index}", "duration": 5}
        )
        return response.status_code, response.json()

    try:
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            results = list(pool.map(fire, range(REQUESTS)))
    finally:
        for client in clients:
            client.close()

    statuses = Counter(status for status, _ in results)
    assert statuses == {201: AFFORDABLE, 402: REQUESTS - AFFORDABLE}, statuses
    for status, body in results:
        if status == 402:
            assert body["statusCode"] == 402 and body["error"] == "Payment Required"
        else:
            assert body["status"] == "PENDING" and body["duration"] == 5
    accepted = {UUID(str(body["id"])) for status, body in results if status == 201}
    assert len(accepted) == AFFORDABLE

    # the read model, the aggregate and the entries agree: 0, never below
    ledger = api.sora2.log.load(CreditLedger, CreditLedger.create_id(UUID(user["id"])))
    assert ledger.balance == 0
    assert ledger.reserved_total == AFFORDABLE * COST
    assert set(ledger.held) == accepted
    assert api.sora2.views.balance_of(UUID(user["id"])) == 0
    with api.client(token) as client:
        assert balance(client) == 0
        entries = transactions(client)
        assert sum(e["amount"] for e in entries) == 0
        assert all(e["balance"] >= 0 for e in entries)
        consumed = [e for e in entries if e["type"] == "CONSUME"]
        assert [e["amount"] for e in consumed] == [-COST] * AFFORDABLE
        assert [e["balance"] for e in consumed] == [30, 25, 20, 15, 10, 5, 0]
        assert_ledger_consistent(client)
        listed = client.get("/api/videos", params={"limit": 100}).json()
        assert listed["total"] == AFFORDABLE
        assert {UUID(v["id"]) for v in listed["items"]} == accepted

        # one more, after the burst, is refused too; a cancel gives room for exactly one
        assert client.post("/api/videos/generate", json={"prompt": "late"}).status_code == 402
        first = sorted(accepted)[0]
        assert client.post(f"/api/videos/{first}/cancel").status_code == 200
        assert balance(client) == COST
        assert (
            client.post("/api/videos/generate", json={"prompt": "HOLD refill"}).status_code == 201
        )
        assert client.post("/api/videos/generate", json={"prompt": "HOLD x"}).status_code == 402
        assert balance(client) == 0
        assert_ledger_consistent(client)
