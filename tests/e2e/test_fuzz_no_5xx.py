"""Property-based fuzzing from the API's own OpenAPI: whatever schemathesis generates for
every operation (valid bodies and invalid ones, odd path and query values), `sora2 serve`
answers below 500. A few examples per operation keep the run well under a minute."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.support.processes import Sora2Process, cluster

# streams follow a video until it is final: they are fuzzed by their JSON twin (generate)
STREAMS = r"(generate-stream|/events)$"


@dataclass
class Target:
    server: Sora2Process
    token: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with cluster(tmp_path_factory.mktemp("fuzz"), VIDEO_JOBS="off") as group:
        server = group.serve()
        name = f"f{uuid.uuid4().hex[:10]}"
        with server.client() as c:
            r = c.post(
                "/api/auth/register",
                json={"email": f"{name}@example.com", "password": "password123", "username": name},
            )
            assert r.status_code == 201, r.text
        yield Target(server, r.json()["accessToken"])


def test_no_generated_request_is_answered_with_a_5xx(target: Target) -> None:
    schema = schemathesis.openapi.from_url(f"{target.server.base}/api-docs.json")
    schema = schema.exclude(path_regex=STREAMS).exclude(path_regex=r"/auth/logout$")
    headers = {"Authorization": f"Bearer {target.token}"}
    failures: list[tuple[str, str, int, str]] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=4,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case) -> None:  # noqa: ANN001
            response = case.call(base_url=target.server.base, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    (case.method, case.formatted_path, response.status_code, response.text[:300])
                )

        run()
    assert operations >= 20, operations  # the whole API was fuzzed, not an empty schema
    assert not failures, failures
    assert "Traceback" not in target.server.output(), target.server.output()
