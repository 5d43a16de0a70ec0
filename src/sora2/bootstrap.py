"""The composition root: the only place that reads settings and picks adapters.

Tests call `bootstrap()` with their own settings and fakes; `sora2 serve` calls it with
the environment's.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sora2.adapters.clock import SystemClock
from sora2.adapters.event_store import (
    check_without_round_trip,
    ping,
    postgres_env,
    schema_setup,
    sqlite_env,
    wait_for_connections_in_use,
)
from sora2.adapters.jobs.runners import new_runner_id, runner_is_gone
from sora2.adapters.mail.outbox import OutboxMailer
from sora2.adapters.payments.sandbox import SandboxPayments
from sora2.adapters.security.passwords import Argon2PasswordHasher
from sora2.adapters.security.tokens import TokenSigner
from sora2.application.accounts import Accounts
from sora2.application.admin import Admin
from sora2.application.credits import Credits
from sora2.application.event_log import EventLog
from sora2.application.moderation import ALLOW_ALL, PromptPolicy
from sora2.application.order_expiry import OrderExpiry
from sora2.application.orders import Orders
from sora2.application.payment_notices import PaymentNotices
from sora2.application.ports import (
    BlobStorage,
    Clock,
    JobBoard,
    Mailer,
    PasswordHasher,
    PaymentProvider,
    VideoGenerator,
)
from sora2.application.processing.consistency import ReadYourWrites
from sora2.application.processing.job_dispatch import JobDispatch
from sora2.application.processing.leadership import Leadership
from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.projection import ProjectionProcessor
from sora2.application.processing.runner import Lane, LaneStatus, ProcessingRunner
from sora2.application.projections.read_models import ReadModels
from sora2.application.projections.view import ReadModelView
from sora2.application.rendering import VideoJobs
from sora2.application.signed_links import SignedLinks
from sora2.application.videos import Videos
from sora2.config import Settings

log = logging.getLogger("sora2")


@dataclass
class Sora2:
    """Everything the edges need, wired."""

    settings: Settings
    clock: Clock
    log: EventLog
    store_env: dict[str, str]
    views: ReadModelView
    read_models: Lane
    runner: ProcessingRunner
    seen: ReadYourWrites
    board: JobBoard
    accounts: Accounts
    orders: Orders
    payment_notices: PaymentNotices
    credits: Credits
    storage: BlobStorage
    tokens: TokenSigner
    mailer: Mailer
    rate_limits: Any
    videos: Videos
    jobs: VideoJobs
    idempotency: Any
    expiry: OrderExpiry
    links: SignedLinks  # media and event-stream URLs that need no header
    admin: Admin
    extras: dict[str, Any] = field(default_factory=dict)

    def ready(self) -> list[LaneStatus]:
        """Raise unless the database answers; how far each processor got."""
        self.ping_database()
        return self.runner.status()

    def ping_database(self) -> None:
        """Raise unless the event store answers (readiness)."""
        ping(self.store_env)
        self.log.recorder.max_notification_id()

    def start(self, render: bool | None = None) -> None:
        """Follow the log (read models, NATS relay, job dispatch) and, in a process that
        renders (`sora2 worker`, or `serve` with VIDEO_JOBS=inline), take video jobs:
        new ones as they are requested, and whatever a previous run left unfinished."""
        if render is None:
            render = self.settings.video_jobs == "inline"
        if render:  # a process that renders nothing has no job to hand over or to stop
            dispatch = JobDispatch(LogReader(self.log).head(), self.jobs.submit, self.jobs.cancel)
            self.runner.add(Lane(dispatch, LogReader(self.log), poll=0.05, shared=False))
        self.runner.start()
        self.expiry.start()
        if render:
            self.jobs.sweep_forever()

    def close(self) -> None:
        self.expiry.stop()
        self.runner.stop()
        self.jobs.shutdown(wait=True)
        for extra in self.extras.values():
            if hasattr(extra, "close"):
                extra.close()
        wait_for_connections_in_use(self.log.factory.datastore, timeout=10)
        self.log.close()


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hasher: PasswordHasher | None = None,
    mailer: Mailer | None = None,
    payments: PaymentProvider | None = None,
    storage: BlobStorage | None = None,
    generator: VideoGenerator | None = None,
    shared_processes: bool = False,
) -> Sora2:
    """`shared_processes`: one of several API processes behind one address, so a client's
    next request may reach another process; its queries then wait for the log's head."""
    clock = clock or SystemClock()
    store_env = _event_store_env(settings)
    extras: dict[str, Any] = {}
    runner_id = new_runner_id()  # this process, in job claims and Idempotency-Key leases
    with schema_setup(store_env):  # every table and function, one starting process at a time
        event_log = EventLog(env=store_env)
        check_without_round_trip(event_log.factory.datastore)
        views = _read_model_view(event_log, store_env)
        board = _job_board(views, store_env)
        idempotency = _idempotency(views, store_env, runner_id)
        attempts = _attempt_counter(views, store_env)
        relay_lane = _relay_lane(settings, event_log, extras)
    read_models = Lane(ProjectionProcessor(ReadModels(views)), LogReader(event_log))
    runner = ProcessingRunner(event_log, [read_models], _leadership(store_env, event_log))
    seen = ReadYourWrites(read_models, head=LogReader(event_log).head if shared_processes else None)
    if shared_processes:  # the access check reads the head with its row: one round trip
        views.follow_log(event_log.recorder.events_table_name, read_models.name)
    hasher = hasher or Argon2PasswordHasher()
    mailer = mailer or _mailer(settings)
    storage = storage or _storage(settings)
    payments = payments or _payments(settings, extras, event_log)
    if relay_lane is not None:
        runner.add(relay_lane)
    accounts = Accounts(
        event_log,
        views,
        seen,
        hasher,
        mailer,
        storage,
        clock,
        signup_bonus=settings.signup_bonus_credits,
        reset_link_base=f"{settings.frontend_url}/reset-password",
        session_lifetime=settings.jwt_refresh_absolute_lifetime,
        report_link=f"{settings.frontend_url}/forgot-password",
        attempts=attempts,
    )
    orders = Orders(
        event_log, views, seen, payments, clock, settings.credit_price, settings.order_expires_in
    )
    credits = Credits(views, orders, seen)
    tokens = TokenSigner(
        settings.jwt_secret,
        settings.jwt_refresh_secret,
        settings.jwt_expires_in,
        settings.jwt_refresh_expires_in,
    )
    videos = Videos(
        event_log,
        views,
        seen,
        board,
        storage,
        clock,
        settings.video_credits_per_second,
        share_secret=hashlib.sha256(b"share:" + settings.jwt_secret.encode()).digest(),
        policy=_prompt_policy(settings),
    )
    jobs = VideoJobs(
        videos,
        generator or _generator(settings),
        settings.job_concurrency,
        workdir=settings.var_dir / "renders",
        worker=runner_id,
        lease=timedelta(seconds=settings.job_lease_seconds),
        runner_is_gone=runner_is_gone,
        take_new_jobs=settings.video_jobs == "inline",
    )
    return Sora2(
        settings=settings,
        clock=clock,
        log=event_log,
        store_env=store_env,
        views=views,
        read_models=read_models,
        runner=runner,
        seen=seen,
        board=board,
        accounts=accounts,
        orders=orders,
        payment_notices=PaymentNotices(event_log, orders),
        credits=credits,
        storage=storage,
        tokens=tokens,
        mailer=mailer,
        rate_limits=_rate_limits(settings),
        videos=videos,
        jobs=jobs,
        idempotency=idempotency,
        expiry=OrderExpiry(orders),
        links=SignedLinks(
            hashlib.sha256(b"links:" + settings.jwt_secret.encode()).digest(),
            settings.media_url_ttl,
            clock,
        ),
        admin=Admin(event_log, views, seen, videos, orders, clock),
        extras=extras,
    )


def audit_store(sora2: Sora2) -> Any:
    """The auditors' snapshot reader of this container's database (`sora2 ledger`)."""
    from sora2.adapters.audit_store import PostgresAuditStore, SqliteAuditStore
    from sora2.adapters.event_store import connect_args

    env, recorder = sora2.store_env, sora2.log.recorder
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        return PostgresAuditStore(connect_args(env), _schema(env) or "public", recorder)
    return SqliteAuditStore(Path(env["SQLITE_DBNAME"]), recorder)


def _event_store_env(settings: Settings) -> dict[str, str]:
    if settings.database_url:
        return postgres_env(settings.database_url, settings.postgres_schema)
    return sqlite_env(settings.sqlite_path)


def _read_model_view(event_log: EventLog, env: dict[str, str]) -> ReadModelView:
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        from sora2.adapters.views.postgres import PostgresReadModels

        return event_log.factory.tracking_recorder(PostgresReadModels)  # type: ignore[arg-type]
    from sora2.adapters.views.sqlite import SQLiteReadModels

    return event_log.factory.tracking_recorder(SQLiteReadModels)  # type: ignore[arg-type]


def _mailer(settings: Settings) -> Mailer:
    if settings.smtp_url:
        from sora2.adapters.mail.smtp import SmtpMailer

        return SmtpMailer(settings.smtp_url)
    return OutboxMailer(settings.var_dir / "outbox")


def _storage(settings: Settings) -> BlobStorage:
    if settings.aws_s3_bucket:
        from sora2.adapters.storage.s3 import S3BlobStorage

        return S3BlobStorage(
            endpoint=settings.s3_endpoint or f"https://s3.{settings.aws_region}.amazonaws.com",
            bucket=settings.aws_s3_bucket,
            access_key=settings.aws_access_key_id or "",
            secret_key=settings.aws_secret_access_key or "",
            region=settings.aws_region,
        )
    from sora2.adapters.storage.local import LocalBlobStorage

    return LocalBlobStorage(settings.upload_dir)


def _rate_limits(settings: Settings) -> Any:
    if settings.redis_host:
        from sora2.adapters.rate_limit.redis import RedisRateLimitStore

        return RedisRateLimitStore(settings.redis_host, settings.redis_port)
    from sora2.adapters.rate_limit.memory import MemoryRateLimitStore

    return MemoryRateLimitStore()


def _generator(settings: Settings) -> VideoGenerator:
    if settings.video_provider_url:
        from sora2.adapters.rendering.provider import ProviderVideoGenerator

        return ProviderVideoGenerator(
            settings.video_provider_url,
            settings.video_provider_api_key or "",
            model=settings.video_provider_model,
        )
    from sora2.adapters.rendering.local import LocalRenderer, bundled_cjk_font

    return LocalRenderer(font_path=settings.render_font_path or bundled_cjk_font())


def _prompt_policy(settings: Settings) -> PromptPolicy:
    if settings.moderation_blocklist is None:
        return ALLOW_ALL
    from sora2.adapters.moderation.blocklist import BlocklistFile

    return BlocklistFile(settings.moderation_blocklist)


def _idempotency(views: ReadModelView, env: dict[str, str], runner_id: str) -> Any:
    """Idempotency keys live beside the read models, in the event log's database; a key
    whose process died mid-request is taken over as a crashed runner's job is."""
    from sora2.adapters.idempotency.sql import SqlIdempotencyStore

    return SqlIdempotencyStore(
        views.datastore,  # type: ignore[attr-defined]
        _schema(env),
        owner=runner_id,
        owner_is_gone=runner_is_gone,
    )


def _attempt_counter(views: ReadModelView, env: dict[str, str]) -> Any:
    """Failed sign-ins and reset mails, counted in the event log's database so every API
    process sees the same counts."""
    from sora2.adapters.throttle.sql import SqlAttemptCounter

    return SqlAttemptCounter(views.datastore, _schema(env))  # type: ignore[attr-defined]


def _leadership(env: dict[str, str], event_log: EventLog) -> Leadership:
    """On PostgreSQL one process leads each shared lane; on SQLite every process applies."""
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        return Leadership()
    from sora2.adapters.lane_leadership import PostgresLeadership

    return PostgresLeadership(env, event_log.recorder.channel_name)  # type: ignore[attr-defined]


def _job_board(views: ReadModelView, env: dict[str, str]) -> JobBoard:
    """Leases, heartbeats and progress of video jobs: a table beside the read models."""
    from sora2.adapters.jobs.sql_board import SqlJobBoard

    return SqlJobBoard(views.datastore, _schema(env))  # type: ignore[attr-defined]


def _schema(env: dict[str, str]) -> str | None:
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        return env.get("POSTGRES_SCHEMA") or "public"
    return None


def _relay_lane(settings: Settings, event_log: EventLog, extras: dict[str, Any]) -> Lane | None:
    """Every stored event to NATS JetStream, when NATS_URL is set."""
    if not settings.nats_url:
        return None
    from sora2.adapters.nats.relay import NatsRelay
    from sora2.adapters.nats.relay_processor import RelayProcessor

    relay = NatsRelay(
        event_log,
        event_log.factory.tracking_recorder(),
        settings.nats_url,
        settings.nats_stream,
        subject_prefix=settings.nats_subject_prefix,
    )
    extras["nats_relay"] = processor = RelayProcessor(relay)
    return Lane(processor, LogReader(event_log), batch_size=relay.page_size)


def _payments(settings: Settings, extras: dict[str, Any], event_log: EventLog) -> PaymentProvider:
    """One provider per method: Stripe, Alipay, WeChat Pay, each when its settings are all
    set (their webhook and notify endpoints find them in `extras`); the sandbox for the rest
    where allowed. Refunds and queries go to the provider of the method the order was
    placed with. Settings.from_env already refused half-set providers and unreadable keys."""
    from sora2.adapters.payments.keys import load_private_key, load_public_key
    from sora2.adapters.payments.router import PaymentRouter
    from sora2.domain.orders.order import Order

    def method_of(order_id: UUID) -> str:
        return event_log.load(Order, order_id, "order").payment_method

    providers: dict[str, PaymentProvider] = {}
    if settings.stripe_secret_key:
        from sora2.adapters.payments.stripe import StripePayments

        orders_page = f"{settings.frontend_url}/orders/{{ORDER_ID}}"
        extras["stripe"] = providers["STRIPE"] = StripePayments(
            settings.stripe_secret_key,
            settings.stripe_webhook_secret or "",
            success_url=f"{orders_page}?payment=success",
            cancel_url=orders_page,
            api_base=settings.stripe_api_base,
            currency=settings.stripe_currency,
        )
    if settings.alipay_configured:
        from sora2.adapters.payments.alipay import AlipayPayments

        extras["alipay"] = providers["ALIPAY"] = AlipayPayments(
            settings.alipay_app_id or "",
            load_private_key(settings.alipay_private_key or "", "ALIPAY_PRIVATE_KEY"),
            load_public_key(settings.alipay_public_key or "", "ALIPAY_PUBLIC_KEY"),
            notify_url=f"{settings.public_url}/api/payments/alipay/notify",
            gateway=settings.alipay_gateway,
        )
    if settings.wechat_configured:
        from sora2.adapters.payments.wechat import WechatPayments

        extras["wechat"] = providers["WECHAT"] = WechatPayments(
            mch_id=settings.wechat_mch_id or "",
            app_id=settings.wechat_app_id or "",
            api_v3_key=settings.wechat_api_v3_key or "",
            private_key=load_private_key(settings.wechat_private_key or "", "WECHAT_PRIVATE_KEY"),
            cert_serial=settings.wechat_cert_serial or "",
            platform_public_key=load_public_key(
                settings.wechat_platform_public_key or "", "WECHAT_PLATFORM_PUBLIC_KEY"
            ),
            platform_key_id=settings.wechat_platform_key_id or "",
            notify_url=f"{settings.public_url}/api/payments/wechat/notify",
            api_base=settings.wechat_api_base,
        )
    return PaymentRouter(
        providers, SandboxPayments() if settings.payments_sandbox else None, method_of
    )
