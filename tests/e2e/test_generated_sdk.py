"""A client generated from /api-docs.json, as an SDK user would make it, drives the whole flow.

`openapi-python-client` writes the package into the test's temp folder (nothing committed);
any warning it prints (a dropped model, an unreadable response) fails the test.
"""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from uuid import UUID

import pytest

from tests.conftest import Api

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "sora2_sdk"


def generate_client(api: Api, folder: Path) -> tuple[Path, str]:
    """The package folder and everything the generator printed."""
    with api.client() as c:
        document = c.get("/api-docs.json")
    assert document.status_code == 200
    (folder / "openapi.json").write_bytes(document.content)
    config = {"package_name_override": PACKAGE, "project_name_override": PACKAGE, "post_hooks": []}
    (folder / "config.json").write_text(json.dumps(config))
    run = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--config",
            str(folder / "config.json"),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=folder,
    )
    printed = run.stdout + run.stderr
    assert run.returncode == 0, printed
    return folder / PACKAGE, printed


@pytest.fixture
def sdk(sqlite_api: Api, tmp_path: Path) -> Iterator[ModuleType]:
    package, printed = generate_client(sqlite_api, tmp_path)
    assert printed.strip().splitlines() == [f"Generating {package}"], printed  # no warning
    assert (package / "api" / "videos" / "create_video.py").exists()
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_the_generated_client_drives_the_whole_flow(sqlite_api: Api, sdk: ModuleType) -> None:
    auth = importlib.import_module(f"{PACKAGE}.api.auth")
    videos = importlib.import_module(f"{PACKAGE}.api.videos")
    orders = importlib.import_module(f"{PACKAGE}.api.orders")
    credits = importlib.import_module(f"{PACKAGE}.api.credits_")
    for module in ("register", "login"):
        importlib.import_module(f"{auth.__name__}.{module}")
    for module in ("create_video", "get_video_status", "list_videos", "download_video"):
        importlib.import_module(f"{videos.__name__}.{module}")
    for module in ("create_order", "pay_order"):
        importlib.import_module(f"{orders.__name__}.{module}")
    importlib.import_module(f"{credits.__name__}.get_balance")
    models = importlib.import_module(f"{PACKAGE}.models")
    settings = sqlite_api.sora2.settings

    anonymous = sdk.Client(base_url=sqlite_api.base, raise_on_unexpected_status=True)
    registered = auth.register.sync(
        client=anonymous,
        body=models.RegisterRequest(
            email="sdk@example.com", password="password123", username="sdk"
        ),
    )
    assert isinstance(registered, models.AuthResponse), registered
    assert isinstance(registered.user.id, UUID) and registered.user.role is models.Role.USER

    session = auth.login.sync(
        client=anonymous,
        body=models.LoginRequest(email="sdk@example.com", password="password123"),
    )
    assert isinstance(session, models.AuthResponse), session
    client = sdk.AuthenticatedClient(
        base_url=sqlite_api.base, token=session.access_token, raise_on_unexpected_status=True
    )

    video = videos.create_video.sync(
        client=client,
        body=models.GenerateRequest(
            prompt="a paper boat on a pond",
            duration=models.Duration.SECONDS_5,
            aspect_ratio=models.AspectRatio.SQUARE_1_1,
        ),
    )
    assert isinstance(video, models.Video), video
    assert video.status is models.VideoState.PENDING
    assert video.aspect_ratio is models.AspectRatio.SQUARE_1_1

    deadline = time.monotonic() + 90
    while True:
        status = videos.get_video_status.sync(client=client, video_id=video.id)
        assert isinstance(status, models.VideoStatus), status
        if status.status in (models.VideoState.COMPLETED, models.VideoState.FAILED):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status.status is models.VideoState.COMPLETED and status.progress == 100

    page = videos.list_videos.sync(client=client)
    assert isinstance(page, models.VideoPage), page
    assert [v.id for v in page.items] == [video.id] and page.total == 1

    mp4 = videos.download_video.sync(client=client, video_id=video.id)
    data = mp4.payload.read() if hasattr(mp4, "payload") else mp4
    assert isinstance(data, bytes) and data[4:8] == b"ftyp", data[:16]
    assert len(data) > 1000
    io.BytesIO(data)  # a whole file, not a JSON parse of it

    order = orders.create_order.sync(
        client=client,
        body=models.OrderRequest(credits_=50, payment_method=models.PaymentMethod.ALIPAY),
    )
    assert isinstance(order, models.Order), order
    assert order.status is models.OrderStatus.PENDING and order.credits_ == 50
    paid = orders.pay_order.sync(client=client, order_id=order.id)
    assert isinstance(paid, models.Payment), paid
    assert paid.paid and paid.order.status is models.OrderStatus.PAID

    balance = credits.get_balance.sync(client=client)
    assert isinstance(balance, models.Balance), balance
    cost = 5 * settings.video_credits_per_second
    assert balance.balance == settings.signup_bonus_credits - cost + 50


def test_an_error_reaches_the_client_as_the_error_model(sqlite_api: Api, sdk: ModuleType) -> None:
    """A 400 parses into ErrorBody, with each field's problem, not into nothing."""
    register = importlib.import_module(f"{PACKAGE}.api.auth.register")
    models = importlib.import_module(f"{PACKAGE}.models")
    anonymous = sdk.Client(base_url=sqlite_api.base)
    answer = register.sync_detailed(
        client=anonymous,
        body=models.RegisterRequest(email="bad", password="password123", username="ok_name"),
    )
    assert answer.status_code == 400
    assert isinstance(answer.parsed, models.ErrorBody), answer.parsed
    assert answer.parsed.status_code == 400
    assert [d.field for d in answer.parsed.details] == ["email"]
