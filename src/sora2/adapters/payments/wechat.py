"""WeChat Pay (API v3, Native, public-key mode) as a PaymentProvider, and its notifies.

Paying an order is a Native order (`POST /v3/pay/transactions/native`): WeChat answers a
`weixin://` `code_url` the front end shows as a QR code; nothing is credited then. Credits
arrive with the notify, which `verify_notify` accepts only when

* `Wechatpay-Serial` names the platform public key we hold (`PUB_KEY_ID_…`, public-key
  mode: no platform certificates to download),
* `Wechatpay-Signature` is that key's SHA256withRSA over `timestamp\\nnonce\\nbody\\n`,
* `Wechatpay-Timestamp` is within 5 minutes of our clock (an old delivery is a replay),
* the `resource`, decrypted with the APIv3 key (AES-256-GCM, its nonce and associated
  data), names our merchant and app.

Every call we make carries `Authorization: WECHATPAY2-SHA256-RSA2048 …`, the merchant key's
signature over `METHOD\\npath\\ntimestamp\\nnonce\\nbody\\n` with the merchant certificate's
serial, and every answer we believe is signed by the platform key the same way as notifies.
Our `out_trade_no` is the order id's 32 hex digits; a refund's `out_refund_no` is derived
from it, so a retried refund refunds once.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sora2.adapters.payments.http_provider import HttpProvider, credits_label
from sora2.adapters.payments.keys import sign_sha256, verify_sha256
from sora2.application.payment_notices import NoticeRefused, PaidNotice
from sora2.application.ports import PaymentInstructions
from sora2.domain.errors import Unavailable

log = logging.getLogger(__name__)

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
TOLERANCE = 300  # seconds: WeChat's own SDKs refuse notifies older than 5 minutes
SCHEMA = "WECHATPAY2-SHA256-RSA2048"
USER_AGENT = "sora2 (+https://github.com/sora2)"  # WeChat refuses calls without one
UNAVAILABLE_MESSAGE = "WeChat Pay is unavailable right now; please try again later."
MISCONFIGURED_MESSAGE = "WeChat Pay cannot take payments right now; please try again later."
_RETRYABLE = {429, 500, 502, 503, 504}


def out_trade_no(order_id: UUID) -> str:
    return order_id.hex


def order_id_of(trade_no: object) -> UUID | None:
    if not isinstance(trade_no, str) or len(trade_no) != 32:
        return None
    try:
        return UUID(hex=trade_no)
    except ValueError:
        return None


def fen(amount: str) -> int:
    """The decimal amount in yuan ("10.00") in fen (1000), exactly, or ValueError."""
    value = Decimal(amount)
    scaled = value.scaleb(2)
    if not value.is_finite() or value <= 0 or scaled != scaled.to_integral_value():
        raise ValueError(f"{amount!r} is not an amount in yuan and fen")
    return int(scaled)


def yuan_of(total: int) -> str:
    return str((Decimal(total) / 100).quantize(Decimal("0.01")))


def signed_message(*parts: str | bytes) -> bytes:
    """WeChat's message to sign: each part followed by a newline."""
    return b"".join((p.encode() if isinstance(p, str) else p) + b"\n" for p in parts)


class WechatPayments(HttpProvider):
    """Takes payments through WeChat Pay Native; see the module docstring."""

    def __init__(
        self,
        *,
        mch_id: str,
        app_id: str,
        api_v3_key: str,
        private_key: rsa.RSAPrivateKey,
        cert_serial: str,
        platform_public_key: rsa.RSAPublicKey,
        platform_key_id: str,
        notify_url: str,
        api_base: str = "https://api.mch.weixin.qq.com",
        client: httpx.Client | None = None,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        timeout: float = 15.0,
        tolerance: int = TOLERANCE,
    ) -> None:
        if len(api_v3_key.encode()) != 32:
            raise ValueError("the APIv3 key is 32 ASCII characters")
        self.mch_id = mch_id
        self.app_id = app_id
        self._aead = AESGCM(api_v3_key.encode())
        self._private_key = private_key
        self.cert_serial = cert_serial
        self._platform_key = platform_public_key
        self.platform_key_id = platform_key_id
        self.notify_url = notify_url
        self.api_base = api_base.rstrip("/")
        self.tolerance = tolerance
        super().__init__(client, max_retries, retry_backoff, timeout)

    def __repr__(self) -> str:  # never the keys
        return f"WechatPayments(mch_id={self.mch_id!r}, api_base={self.api_base!r})"

    # --- PaymentProvider --------------------------------------------------------------

    def start_payment(
        self,
        order_id: UUID,
        amount: str,
        credits: int,
        method: str,
        expires_at: datetime | None = None,
    ) -> PaymentInstructions:
        order: dict[str, Any] = {
            "appid": self.app_id,
            "mchid": self.mch_id,
            "description": credits_label(credits),
            "out_trade_no": out_trade_no(order_id),
            "notify_url": self.notify_url,
            "amount": {"total": self._fen(order_id, amount), "currency": "CNY"},
        }
        if expires_at is not None:  # WeChat refuses payment after it (to the second)
            expires_at = expires_at.replace(microsecond=0)
            order["time_expire"] = expires_at.astimezone(CHINA).isoformat(timespec="seconds")
        status, answer = self._call("POST", "/v3/pay/transactions/native", order)
        code_url = answer.get("code_url")
        if status != 200 or not isinstance(code_url, str) or not code_url.startswith("weixin://"):
            raise self._failure("native order", status, answer)
        log.info("order %s: WeChat Pay Native answered a code_url", order_id)
        return PaymentInstructions(
            provider="wechat", paid=False, qr_code=code_url, expires_at=expires_at
        )

    def refund(self, order_id: UUID, amount: str, provider_reference: str | None) -> None:
        total = self._fen(order_id, amount)
        request: dict[str, Any] = {
            "out_refund_no": f"{out_trade_no(order_id)}-refund",  # one refund per order
            "reason": "Sora2 order refunded",
            "amount": {"refund": total, "total": total, "currency": "CNY"},
        }
        if provider_reference:
            request["transaction_id"] = provider_reference
        else:
            request["out_trade_no"] = out_trade_no(order_id)
        status, answer = self._call("POST", "/v3/refund/domestic/refunds", request)
        if status != 200 or answer.get("status") not in ("SUCCESS", "PROCESSING"):
            raise self._failure("refund", status, answer)
        log.info("order %s: WeChat Pay refund %s", order_id, answer.get("status"))

    def query(self, order_id: UUID, amount: str) -> str | None:
        path = f"/v3/pay/transactions/out-trade-no/{out_trade_no(order_id)}?mchid={self.mch_id}"
        status, answer = self._call("GET", path, None)
        if status == 404 or answer.get("code") == "ORDER_NOT_EXIST":
            return None
        if status != 200:
            raise self._failure("query", status, answer)
        if answer.get("trade_state") != "SUCCESS":
            return None
        transaction_id = answer.get("transaction_id")
        paid = (
            answer.get("amount", {}).get("total")
            if isinstance(answer.get("amount"), dict)
            else None
        )
        if (answer.get("mchid"), answer.get("appid")) != (self.mch_id, self.app_id):
            log.error("order %s: WeChat Pay answered another merchant's order", order_id)
            return None
        if not isinstance(transaction_id, str) or paid != self._fen(order_id, amount):
            log.error(
                "order %s: WeChat Pay %s paid %s fen, not %s: not credited, reconcile it",
                order_id,
                transaction_id,
                paid,
                amount,
            )
            return None
        return transaction_id

    # --- notifies ---------------------------------------------------------------------

    def verify_notify(
        self, headers: dict[str, str], body: bytes, now: float | None = None
    ) -> PaidNotice | None:
        """The payment a notify reports, once it proves WeChat sent it for our merchant (see
        the module docstring); None for a genuine notify that reports no payment (a refund's
        outcome, a closed order). Raises NoticeRefused otherwise. `headers`: lower-case."""
        self._verify_signed(headers, body, now)
        try:
            notify = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise NoticeRefused("the notify is not JSON") from None
        resource = notify.get("resource") if isinstance(notify, dict) else None
        if not isinstance(resource, dict) or resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise NoticeRefused("the notify carries no encrypted resource")
        transaction = self._decrypt(resource)
        if transaction.get("mchid") != self.mch_id or transaction.get("appid") != self.app_id:
            raise NoticeRefused("the notify is for another merchant or app")
        if notify.get("event_type") != "TRANSACTION.SUCCESS" or (
            transaction.get("trade_state") != "SUCCESS"
        ):
            return None
        order_id = order_id_of(transaction.get("out_trade_no"))
        if order_id is None:
            raise NoticeRefused("the notify names no order of ours")
        amount = transaction.get("amount")
        total = amount.get("total") if isinstance(amount, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise NoticeRefused("the notify's amount.total is not an amount in fen")
        if amount.get("currency", "CNY") != "CNY":
            raise NoticeRefused("the notify's amount is not in CNY")
        transaction_id = transaction.get("transaction_id")
        if not isinstance(transaction_id, str) or not transaction_id:
            raise NoticeRefused("the notify carries no transaction_id")
        return PaidNotice("WECHAT", order_id, yuan_of(total), transaction_id)

    def _verify_signed(self, headers: dict[str, str], body: bytes, now: float | None) -> None:
        timestamp = headers.get("wechatpay-timestamp", "")
        nonce = headers.get("wechatpay-nonce", "")
        signature = headers.get("wechatpay-signature", "")
        serial = headers.get("wechatpay-serial", "")
        if not (timestamp and nonce and signature and serial):
            raise NoticeRefused(
                "the Wechatpay-Timestamp/Nonce/Signature/Serial headers are missing"
            )
        if serial != self.platform_key_id:
            raise NoticeRefused("Wechatpay-Serial names a key we do not hold")
        if not timestamp.isascii() or not timestamp.isdigit():
            raise NoticeRefused("Wechatpay-Timestamp is not a time")
        now = time.time() if now is None else now
        if abs(now - int(timestamp)) > self.tolerance:
            raise NoticeRefused("Wechatpay-Timestamp is more than 5 minutes away from now")
        if not verify_sha256(self._platform_key, signed_message(timestamp, nonce, body), signature):
            raise NoticeRefused("the signature is not WeChat Pay's")

    def _decrypt(self, resource: dict[str, Any]) -> dict[str, Any]:
        try:
            plain = self._aead.decrypt(
                str(resource.get("nonce", "")).encode(),
                base64.b64decode(str(resource.get("ciphertext", "")), validate=True),
                str(resource.get("associated_data", "")).encode(),
            )
            transaction = json.loads(plain)
        except (InvalidTag, ValueError):  # ValueError: bad base64, nonce size or JSON
            raise NoticeRefused("the resource does not decrypt with our APIv3 key") from None
        if not isinstance(transaction, dict):
            raise NoticeRefused("the resource is not a transaction")
        return transaction

    # --- calls --------------------------------------------------------------------------

    def authorization(self, method: str, path: str, body: bytes) -> str:
        """The `Authorization` header of one call (path with its query string)."""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signature = sign_sha256(
            self._private_key, signed_message(method, path, timestamp, nonce, body)
        )
        return (
            f'{SCHEMA} mchid="{self.mch_id}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{self.cert_serial}"'
        )

    def _call(
        self, method: str, path: str, payload: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        """One signed call, retried on network trouble, 429 and 5xx (each of ours is
        idempotent by its out_trade_no / out_refund_no); the status and the checked answer."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            headers = {
                "Authorization": self.authorization(method, path, body),
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                "Wechatpay-Serial": self.platform_key_id,
            }
            if payload is not None:
                headers["Content-Type"] = "application/json"
            try:
                r = self._client.request(
                    method,
                    self.api_base + path,
                    content=body,
                    headers=headers,
                    timeout=self._timeout,
                )
            except httpx.HTTPError as e:  # the message names the URL, never the headers
                log.warning("WeChat Pay %s: %s (attempt %d)", path, type(e).__name__, attempt + 1)
                if last:
                    raise Unavailable(UNAVAILABLE_MESSAGE) from None
                self._sleep(attempt)
                continue
            if r.status_code in _RETRYABLE and not last:
                log.warning(
                    "WeChat Pay %s answered %d (attempt %d)", path, r.status_code, attempt + 1
                )
                self._sleep(attempt)
                continue
            return r.status_code, self._answer(path, r)
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, path: str, r: httpx.Response) -> dict[str, Any]:
        """The JSON answer; a successful one only with the platform key's signature (a query
        that says "paid" credits money). Error answers are read unsigned, to be logged."""
        if r.is_success:
            headers = {k.lower(): v for k, v in r.headers.items()}
            try:
                self._verify_signed(headers, r.content, now=None)
            except NoticeRefused as e:
                log.error("WeChat Pay %s answered without a valid signature: %s", path, e)
                raise Unavailable(MISCONFIGURED_MESSAGE) from None
        if not r.content:
            return {}
        try:
            answer = r.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            log.error("WeChat Pay %s answered %d with a body that is not JSON", path, r.status_code)
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return answer

    def _failure(self, what: str, status: int, answer: dict[str, Any]) -> Unavailable:
        log.error(
            "WeChat Pay %s failed: HTTP %d %s %s",
            what,
            status,
            str(answer.get("code", answer.get("status", "")))[:100],
            str(answer.get("message", ""))[:200],
        )
        return Unavailable(UNAVAILABLE_MESSAGE if status in _RETRYABLE else MISCONFIGURED_MESSAGE)

    def _fen(self, order_id: UUID, amount: str) -> int:
        try:
            return fen(amount)
        except (ValueError, InvalidOperation) as e:  # CREDIT_PRICE does not fit: ours to fix
            log.error("order %s: %s", order_id, e)
            raise Unavailable(MISCONFIGURED_MESSAGE) from None
