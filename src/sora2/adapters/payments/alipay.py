"""Alipay (open platform, RSA2) as a PaymentProvider, and the check of Alipay's notifies.

Paying an order is `alipay.trade.precreate`: Alipay answers a `qr_code` the user scans with
the Alipay app; nothing is credited then. Credits arrive with the asynchronous notify, whose
RSA2 signature `verify_notify` checks with Alipay's public key; `alipay.trade.query`
reconciles an order whose notify never came, `alipay.trade.refund` gives the money back.

Every call is a form POST to the gateway, signed with the app's private key: SHA256withRSA
over the sorted `key=value` pairs (without `sign`), base64 in `sign`. Alipay signs its answer
the same way over the exact JSON text of `<method>_response`, which we check before
believing anything it says, since a query's answer can credit money.

Our `out_trade_no` is the order id's 32 hex digits (Alipay takes letters, digits and `_`);
the out_request_no of a refund is derived from it, so a retried refund refunds once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from sora2.adapters.payments.http_provider import HttpProvider, credits_label
from sora2.adapters.payments.keys import sign_sha256, verify_sha256
from sora2.application.payment_notices import NoticeRefused, PaidNotice
from sora2.application.ports import PaymentInstructions
from sora2.domain.errors import Unavailable

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # Alipay's clock for every time field
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")
SUCCESS = "10000"
UNAVAILABLE_MESSAGE = "Alipay is unavailable right now; please try again later."
MISCONFIGURED_MESSAGE = "Alipay cannot take payments right now; please try again later."


def out_trade_no(order_id: UUID) -> str:
    return order_id.hex


def order_id_of(trade_no: str) -> UUID | None:
    try:
        return UUID(hex=trade_no) if len(trade_no) == 32 else None
    except ValueError:
        return None


def yuan(amount: str) -> str:
    """The order's decimal amount with Alipay's 2 decimals ("10" → "10.00"); exact or ValueError."""
    value = Decimal(amount)
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{amount!r} is not an amount in yuan and fen")
    return str(value.quantize(Decimal("0.01")))


def signing_string(params: dict[str, str], skip_empty: bool) -> bytes:
    """`a=1&b=2`, keys sorted, without `sign`; notifies also leave `sign_type` out."""
    pairs = sorted(
        (k, v) for k, v in params.items() if k != "sign" and not (skip_empty and v == "")
    )
    return "&".join(f"{k}={v}" for k, v in pairs).encode()


@dataclass(frozen=True)
class AlipayAnswer:
    code: str
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS


class AlipayPayments(HttpProvider):
    """Takes payments through Alipay's precreate QR; see the module docstring."""

    def __init__(
        self,
        app_id: str,
        private_key: rsa.RSAPrivateKey,
        alipay_public_key: rsa.RSAPublicKey,
        notify_url: str,
        gateway: str = "https://openapi.alipay.com/gateway.do",
        client: httpx.Client | None = None,
        *,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        timeout: float = 15.0,
    ) -> None:
        self.app_id = app_id
        self._private_key = private_key
        self._alipay_key = alipay_public_key
        self.notify_url = notify_url
        self.gateway = gateway
        super().__init__(client, max_retries, retry_backoff, timeout)

    def __repr__(self) -> str:  # never the keys
        return f"AlipayPayments(app_id={self.app_id!r}, gateway={self.gateway!r})"

    # --- PaymentProvider --------------------------------------------------------------

    def start_payment(
        self,
        order_id: UUID,
        amount: str,
        credits: int,
        method: str,
        expires_at: datetime | None = None,
    ) -> PaymentInstructions:
        biz: dict[str, Any] = {
            "out_trade_no": out_trade_no(order_id),
            "total_amount": self._yuan(order_id, amount),
            "subject": credits_label(credits),
        }
        if expires_at is not None:  # Alipay closes the trade then (to the second)
            expires_at = expires_at.replace(microsecond=0)
            biz["time_expire"] = _beijing(expires_at)
        answer = self._call("alipay.trade.precreate", biz, notify=True)
        qr_code = answer.body.get("qr_code")
        if not answer.ok or not isinstance(qr_code, str) or not qr_code:
            raise self._failure("alipay.trade.precreate", answer)
        log.info("order %s: Alipay precreate answered a QR code", order_id)
        return PaymentInstructions(
            provider="alipay", paid=False, qr_code=qr_code, expires_at=expires_at
        )

    def refund(self, order_id: UUID, amount: str, provider_reference: str | None) -> None:
        biz = {
            "out_trade_no": out_trade_no(order_id),
            "refund_amount": self._yuan(order_id, amount),
            "out_request_no": f"{out_trade_no(order_id)}_refund",  # one refund per order
            "refund_reason": "Sora2 order refunded",
        }
        if provider_reference:
            biz["trade_no"] = provider_reference
        answer = self._call("alipay.trade.refund", biz)
        if not answer.ok:
            raise self._failure("alipay.trade.refund", answer)
        log.info("order %s: Alipay refunded %s", order_id, biz["refund_amount"])

    def query(self, order_id: UUID, amount: str) -> str | None:
        answer = self._call("alipay.trade.query", {"out_trade_no": out_trade_no(order_id)})
        if answer.body.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return None
        if not answer.ok:
            raise self._failure("alipay.trade.query", answer)
        status, trade_no = answer.body.get("trade_status"), answer.body.get("trade_no")
        if status not in PAID_STATUSES or not isinstance(trade_no, str) or not trade_no:
            return None
        if answer.body.get("total_amount") != self._yuan(order_id, amount):
            log.error(
                "order %s: Alipay trade %s paid %s, not %s: not credited, reconcile it",
                order_id,
                trade_no,
                answer.body.get("total_amount"),
                amount,
            )
            return None
        return trade_no

    # --- notifies ---------------------------------------------------------------------

    def verify_notify(self, body: bytes) -> PaidNotice | None:
        """The payment an asynchronous notify reports, once its RSA2 signature and app id
        prove Alipay sent it for us; None for a genuine notify that reports no payment
        (WAIT_BUYER_PAY, TRADE_CLOSED). Raises NoticeRefused otherwise."""
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise NoticeRefused("the notify is not a form") from None
        params = dict(pairs)
        if len(params) != len(pairs):
            raise NoticeRefused("the notify repeats a parameter")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise NoticeRefused("the notify is not signed with RSA2")
        signature = params.get("sign", "")
        unsigned = {k: v for k, v in params.items() if k != "sign_type"}
        if not signature or not verify_sha256(
            self._alipay_key, signing_string(unsigned, skip_empty=False), signature
        ):
            raise NoticeRefused("the notify's signature is not Alipay's")
        if params.get("app_id") != self.app_id:
            raise NoticeRefused("the notify is for another app")
        order_id = order_id_of(params.get("out_trade_no", ""))
        if order_id is None:
            raise NoticeRefused("the notify names no order of ours")
        if params.get("trade_status") not in PAID_STATUSES:
            return None
        trade_no, amount = params.get("trade_no", ""), params.get("total_amount", "")
        try:
            paid = yuan(amount)
        except (ValueError, InvalidOperation):
            raise NoticeRefused("the notify's total_amount is not an amount") from None
        if not trade_no:
            raise NoticeRefused("the notify carries no trade_no")
        return PaidNotice("ALIPAY", order_id, paid, trade_no)

    # --- the gateway ------------------------------------------------------------------

    def _call(self, method: str, biz: dict[str, Any], notify: bool = False) -> AlipayAnswer:
        """One signed gateway call, retried on network trouble and 5xx (every call we make
        is idempotent by its out_trade_no / out_request_no); answers a checked AlipayAnswer."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": _beijing(datetime.now(BEIJING)),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if notify:
            params["notify_url"] = self.notify_url
        params["sign"] = sign_sha256(self._private_key, signing_string(params, skip_empty=True))
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                r = self._client.post(
                    self.gateway,
                    params={"charset": "utf-8"},
                    data=params,
                    timeout=self._timeout,
                )
            except httpx.HTTPError as e:  # the message names the URL, never the form
                log.warning("Alipay %s: %s (attempt %d)", method, type(e).__name__, attempt + 1)
                if last:
                    raise Unavailable(UNAVAILABLE_MESSAGE) from None
                self._sleep(attempt)
                continue
            if r.status_code >= 500 and not last:
                log.warning(
                    "Alipay %s answered %d (attempt %d)", method, r.status_code, attempt + 1
                )
                self._sleep(attempt)
                continue
            answer = self._answer(method, r)
            if answer.code == "20000" and not last:  # "service unavailable": try again
                self._sleep(attempt)
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, method: str, r: httpx.Response) -> AlipayAnswer:
        """The `<method>_response` object, its signature checked over its exact text."""
        if not r.is_success:
            log.error("Alipay %s answered HTTP %d", method, r.status_code)
            raise Unavailable(UNAVAILABLE_MESSAGE)
        text = r.text
        node = method.replace(".", "_") + "_response"
        if f'"{node}"' not in text:  # what Alipay answers when it cannot tell whose call it was
            node = "error_response"
        try:
            start = text.index(f'"{node}"')
            start = text.index(":", start) + 1
            while text[start] in " \t\r\n":
                start += 1
            body, end = json.JSONDecoder().raw_decode(text, start)
            envelope = json.loads(text)
        except (ValueError, IndexError):
            log.error("Alipay %s answered something that is not its JSON", method)
            raise Unavailable(UNAVAILABLE_MESSAGE) from None
        if not isinstance(body, dict) or not isinstance(envelope, dict):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        code = str(body.get("code", ""))
        signature = envelope.get("sign")
        if isinstance(signature, str) and signature:
            if not verify_sha256(self._alipay_key, text[start:end].encode(), signature):
                log.error("Alipay %s answered with a signature that is not Alipay's", method)
                raise Unavailable(MISCONFIGURED_MESSAGE)
        elif code == SUCCESS:  # only errors about our own signature come unsigned
            log.error("Alipay %s answered success without a signature", method)
            raise Unavailable(MISCONFIGURED_MESSAGE)
        return AlipayAnswer(code, body)

    def _failure(self, method: str, answer: AlipayAnswer) -> Unavailable:
        b = answer.body
        log.error(
            "Alipay %s failed: %s %s %s %s",
            method,
            answer.code,
            str(b.get("msg", ""))[:200],
            str(b.get("sub_code", ""))[:100],
            str(b.get("sub_msg", ""))[:200],
        )
        return Unavailable(UNAVAILABLE_MESSAGE if answer.code == "20000" else MISCONFIGURED_MESSAGE)

    def _yuan(self, order_id: UUID, amount: str) -> str:
        try:
            return yuan(amount)
        except (ValueError, InvalidOperation) as e:  # CREDIT_PRICE does not fit: ours to fix
            log.error("order %s: %s", order_id, e)
            raise Unavailable(MISCONFIGURED_MESSAGE) from None


def _beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
