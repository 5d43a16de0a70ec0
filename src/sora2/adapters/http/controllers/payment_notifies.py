"""/api/payments/{alipay,wechat}/notify: Alipay's and WeChat Pay's word that an order was paid.

Nobody signs in here: the caller proves it is the provider by signing what it sends (the
adapters check that), and the notice must then pay for an order of ours, placed for that
method, for exactly its amount (PaymentNotices checks that). Only then is the order
credited, once however often the provider delivers it.

Each provider has its answer for "received": Alipay the plain text `success`, WeChat Pay
204. Anything refused answers 400 in the error shape, credits nothing, and makes the
provider try again later (a notify of ours that failed a check can then be reconciled).
A payment for a cancelled order is refunded at the provider instead of credited; when
that refund cannot be made now the answer is 503, so the provider delivers it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from litestar import Controller, MediaType, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import HeaderParameter, RawBody

from sora2.adapters.http.errors import documented
from sora2.adapters.payments.alipay import AlipayPayments
from sora2.adapters.payments.wechat import WechatPayments
from sora2.application.payment_notices import NoticeRefused
from sora2.bootstrap import Sora2
from sora2.domain.errors import NotFound

log = logging.getLogger("sora2.payments")


WechatTimestamp = Annotated[
    str,
    HeaderParameter(
        name="Wechatpay-Timestamp", description="Unix seconds; more than 5 minutes off: refused."
    ),
]
WechatNonce = Annotated[
    str,
    HeaderParameter(
        name="Wechatpay-Nonce", description="The random string WeChat Pay signed with the body."
    ),
]
WechatSignature = Annotated[
    str,
    HeaderParameter(
        name="Wechatpay-Signature",
        description="Base64 SHA256withRSA of `timestamp\\nnonce\\nbody\\n` by the platform key.",
    ),
]
WechatSerial = Annotated[
    str,
    HeaderParameter(
        name="Wechatpay-Serial",
        description="The platform key's id (`PUB_KEY_ID_…`), as in WECHAT_PLATFORM_KEY_ID.",
    ),
]


def _string(example: str, description: str | None = None) -> Schema:
    return Schema(type=OpenAPIType.STRING, examples=[example], description=description)


@dataclass
class AlipayNotifyOperation(Operation):
    """Documents the form we read raw (the signature covers its exact values)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="Alipay's asynchronous notify, as Alipay posts it.",
            content={
                "application/x-www-form-urlencoded": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["app_id", "out_trade_no", "trade_status", "sign"],
                        properties={
                            "notify_id": _string("2026120100222152901095051000063"),
                            "app_id": _string("2021000000000000", "ALIPAY_APP_ID"),
                            "out_trade_no": _string(
                                "3f0c2a4be5d84b1f9a6e0c7d8e9f0a1b", "the order id's 32 hex digits"
                            ),
                            "trade_no": _string("2026120122001400000000000001"),
                            "trade_status": _string("TRADE_SUCCESS"),
                            "total_amount": _string("10.00", "yuan, 2 decimals"),
                            "sign_type": _string("RSA2"),
                            "sign": _string("base64 SHA256withRSA", "over the sorted pairs"),
                        },
                    )
                )
            },
        )


@dataclass
class WechatNotifyOperation(Operation):
    """Documents the JSON body we read raw (the signature covers its exact bytes)."""

    def __post_init__(self) -> None:
        resource = Schema(
            type=OpenAPIType.OBJECT,
            required=["algorithm", "ciphertext", "nonce"],
            properties={
                "algorithm": _string("AEAD_AES_256_GCM"),
                "ciphertext": _string("base64", "the transaction, encrypted with the APIv3 key"),
                "associated_data": _string("transaction"),
                "nonce": _string("fdasflkja484w"),
                "original_type": _string("transaction"),
            },
        )
        self.request_body = RequestBody(
            required=True,
            description="WeChat Pay's notify, byte for byte as WeChat Pay sent it.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["id", "event_type", "resource"],
                        properties={
                            "id": _string("EV-2018022511223320873"),
                            "create_time": _string("2026-12-01T10:00:00+08:00"),
                            "event_type": _string("TRANSACTION.SUCCESS"),
                            "resource_type": _string("encrypt-resource"),
                            "resource": resource,
                        },
                    ),
                    examples={
                        "paid": Example(
                            summary="A paid Native order",
                            value={
                                "id": "EV-2018022511223320873",
                                "create_time": "2026-12-01T10:00:00+08:00",
                                "event_type": "TRANSACTION.SUCCESS",
                                "resource_type": "encrypt-resource",
                                "summary": "支付成功",
                                "resource": {
                                    "algorithm": "AEAD_AES_256_GCM",
                                    "original_type": "transaction",
                                    "ciphertext": "…",
                                    "associated_data": "transaction",
                                    "nonce": "fdasflkja484w",
                                },
                            },
                        )
                    },
                )
            },
        )


class PaymentNotifiesController(Controller):
    path = "/api/payments"
    tags = ["Payments"]

    @post(
        "/alipay/notify",
        status_code=200,
        sync_to_thread=True,
        media_type=MediaType.TEXT,
        responses={
            200: ResponseSpec(
                data_container=str,
                media_type=MediaType.TEXT,
                description="Received: exactly `success`, so Alipay stops delivering it",
                generate_examples=False,
                examples=[Example(summary="received", value="success")],
            ),
            **documented(400, 404, 503),
        },
        operation_class=AlipayNotifyOperation,
        summary="Alipay's notify: a paid trade credits its order, once; answers `success`",
        description=(
            "Called by Alipay, not by clients. The RSA2 `sign` over the sorted parameters "
            "(without `sign` and `sign_type`) must verify with ALIPAY_PUBLIC_KEY; `app_id` "
            "must be ALIPAY_APP_ID; `out_trade_no` must name an ALIPAY order and "
            "`total_amount` equal its amount. `TRADE_SUCCESS` or `TRADE_FINISHED` then marks "
            "it PAID and adds its credits exactly once, however often Alipay delivers it; "
            "other statuses are acknowledged. Answers the plain text `success`; a refused "
            "notify answers 400 and credits nothing. A payment for a CANCELLED order is refunded "
            "at Alipay, never credited (503 if Alipay cannot refund now). 404 when Alipay is "
            "not configured."
        ),
    )
    def alipay_notify(self, body: RawBody, sora2: NamedDependency[Sora2]) -> str:
        alipay: AlipayPayments | None = sora2.extras.get("alipay")
        if alipay is None:
            raise NotFound("Alipay payments are not configured on this server")
        try:
            notice = alipay.verify_notify(body)
            if notice is not None:
                sora2.payment_notices.settle(notice)
        except NoticeRefused as e:
            log.warning("refused an Alipay notify: %s", e)
            raise NoticeRefused(f"notify refused: {e}") from None
        return "success"

    @post(
        "/wechat/notify",
        status_code=204,
        sync_to_thread=True,
        responses=documented(400, 404, 503),
        operation_class=WechatNotifyOperation,
        summary="WeChat Pay's notify: a paid Native order credits its order, once; answers 204",
        description=(
            "Called by WeChat Pay, not by clients. `Wechatpay-Serial` must be "
            "WECHAT_PLATFORM_KEY_ID, `Wechatpay-Signature` that key's signature of "
            "`timestamp\\nnonce\\nbody\\n`, `Wechatpay-Timestamp` within 5 minutes; the "
            "`resource` must decrypt with WECHAT_API_V3_KEY and name WECHAT_MCH_ID, "
            "WECHAT_APP_ID, a WECHAT order and its amount in fen. `TRANSACTION.SUCCESS` then "
            "marks it PAID and adds its credits exactly once, however often it is delivered. "
            "Answers 204; a refused notify answers 400 and credits nothing. A payment for a "
            "CANCELLED order is refunded, never credited (503 if WeChat Pay cannot refund "
            "now). 404 when WeChat Pay is not configured."
        ),
    )
    def wechat_notify(
        self,
        body: RawBody,
        sora2: NamedDependency[Sora2],
        timestamp: WechatTimestamp,
        nonce: WechatNonce,
        signature: WechatSignature,
        serial: WechatSerial,
    ) -> None:
        wechat: WechatPayments | None = sora2.extras.get("wechat")
        if wechat is None:
            raise NotFound("WeChat Pay is not configured on this server")
        headers = {
            "wechatpay-timestamp": timestamp,
            "wechatpay-nonce": nonce,
            "wechatpay-signature": signature,
            "wechatpay-serial": serial,
        }
        try:
            notice = wechat.verify_notify(headers, body)
            if notice is not None:
                sora2.payment_notices.settle(notice)
        except NoticeRefused as e:
            log.warning("refused a WeChat Pay notify: %s", e)
            raise NoticeRefused(f"notify refused: {e}") from None
