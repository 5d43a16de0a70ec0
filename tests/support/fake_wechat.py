"""A fake of WeChat Pay's API v3 (Native, query, refund) over real HTTP, and its notifies.

WechatPayments is tested against this instead of mocks, so the signed Authorization, the
JSON bodies, the signed answers and the encrypted notify resources all cross a real
socket. Like WeChat Pay (public-key mode):

* every call's `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,serial_no=…,signature=…`
  must verify with the merchant's public key over `METHOD\\npath\\ntimestamp\\nnonce\\nbody\\n`
  and name our merchant and certificate serial; else 401 `SIGN_ERROR`, changing nothing;
* a Native order keeps one transaction per out_trade_no and answers its `weixin://`
  code_url; a query answers it or 404 `ORDER_NOT_EXIST`; a refund refunds a paid order
  once per out_refund_no;
* answers carry `Wechatpay-Timestamp/Nonce/Signature/Serial`, signed by the platform key.

`pay(out_trade_no)` settles an order as if the user paid; `notify(...)` builds the headers
and body WeChat Pay posts to the notify_url, with knobs to break each part.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.support.fake_alipay import rsa2, rsa2_ok
from tests.support.fake_http import serving
from tests.support.rsa_keys import KeyPair, pair

MCH_ID = "1900000109"
APP_ID = "wxd678efh567hg6787"
API_V3_KEY = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"  # 32 ASCII characters
CERT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PLATFORM_KEY_ID = "PUB_KEY_ID_0119000001092026120100000000000001"
NATIVE = "/v3/pay/transactions/native"
REFUNDS = "/v3/refund/domestic/refunds"
QUERY = re.compile(r"^/v3/pay/transactions/out-trade-no/([^/?]+)$")
_AUTH = re.compile(r'(\w+)="([^"]*)"')


def message(*parts: str | bytes) -> bytes:
    return b"".join((p.encode() if isinstance(p, str) else p) + b"\n" for p in parts)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # with the query string, as signed
    headers: dict[str, str]
    body: dict[str, Any]
    signature_ok: bool


@dataclass
class FakeWechat:
    mch_id: str = MCH_ID
    app_id: str = APP_ID
    api_v3_key: str = API_V3_KEY
    cert_serial: str = CERT_SERIAL
    platform_key_id: str = PLATFORM_KEY_ID
    merchant_keys: KeyPair = field(default_factory=lambda: pair("wechat-merchant"))
    platform_keys: KeyPair = field(default_factory=lambda: pair("wechat-platform"))
    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # by out_refund_no
    answer_key: rsa.RSAPrivateKey | None = None  # sign answers with another key (a forger)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def calls_to(self, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.split("?")[0] == path]

    def pay(self, out_trade_no: str) -> dict[str, Any]:
        """The user scanned the code and paid: the transaction as the notify carries it."""
        with self._lock:
            order = self.transactions[out_trade_no]
            order.update(
                trade_state="SUCCESS",
                transaction_id=f"4200{uuid.uuid4().int % 10**24:024d}",
                success_time="2026-12-01T10:05:00+08:00",
            )
            return dict(order)

    # --- notifies --------------------------------------------------------------------

    def notify(
        self,
        transaction: dict[str, Any],
        *,
        timestamp: int | None = None,
        serial: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        api_v3_key: str | None = None,
        event_type: str = "TRANSACTION.SUCCESS",
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body of a notify for `transaction`, signed and encrypted as WeChat
        Pay does unless a knob says otherwise."""
        nonce = secrets.token_hex(6)  # AES-GCM nonce: 12 characters, as WeChat's
        associated = "transaction"
        sealed = AESGCM((api_v3_key or self.api_v3_key).encode()).encrypt(
            nonce.encode(), json.dumps(transaction).encode(), associated.encode()
        )
        body = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "create_time": "2026-12-01T10:05:01+08:00",
                "resource_type": "encrypt-resource",
                "event_type": event_type,
                "summary": "支付成功",
                "resource": {
                    "original_type": "transaction",
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": base64.b64encode(sealed).decode(),
                    "associated_data": associated,
                    "nonce": nonce,
                },
            },
            ensure_ascii=False,
        ).encode()
        return self._signed_headers(body, timestamp, serial, key), body

    def _signed_headers(
        self,
        body: bytes,
        timestamp: int | None = None,
        serial: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> dict[str, str]:
        t = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        signing = key or self.answer_key or self.platform_keys.private_key
        return {
            "Wechatpay-Timestamp": t,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": rsa2(signing, message(t, nonce, body)),
            "Wechatpay-Serial": serial or self.platform_key_id,
        }

    # --- the API (called from server threads) ---------------------------------------

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        signature_ok = self._signed_by_merchant(method, path, headers, body)
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        with self._lock:
            self.calls.append(Call(method, path, headers, payload, signature_ok))
            if not signature_ok:
                return self._answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
            if "user-agent" not in headers or headers.get("accept") != "application/json":
                return self._answer(400, {"code": "PARAM_ERROR", "message": "缺少 UA 或 Accept"})
            route = urlsplit(path)
            if (method, route.path) == ("POST", NATIVE):
                return self._native(payload)
            if (method, route.path) == ("POST", REFUNDS):
                return self._refund(payload)
            if method == "GET" and (match := QUERY.match(route.path)):
                mchid = parse_qs(route.query).get("mchid", [""])[0]
                return self._query(match.group(1), mchid)
            return self._answer(404, {"code": "NOT_FOUND", "message": "无此接口"})

    def _signed_by_merchant(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> bool:
        scheme, _, rest = headers.get("authorization", "").partition(" ")
        fields = dict(_AUTH.findall(rest))
        if scheme != "WECHATPAY2-SHA256-RSA2048":
            return False
        if (fields.get("mchid"), fields.get("serial_no")) != (self.mch_id, self.cert_serial):
            return False
        signed = message(
            method, path, fields.get("timestamp", ""), fields.get("nonce_str", ""), body
        )
        return rsa2_ok(self.merchant_keys.public_key, signed, fields.get("signature", ""))

    def _native(self, order: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        amount = order.get("amount") or {}
        total = amount.get("total")
        required = ("appid", "mchid", "description", "out_trade_no", "notify_url")
        if any(not order.get(name) for name in required) or not isinstance(total, int):
            return self._answer(400, {"code": "PARAM_ERROR", "message": "参数错误"})
        if (order["mchid"], order["appid"]) != (self.mch_id, self.app_id):
            return self._answer(400, {"code": "APPID_MCHID_NOT_MATCH", "message": "不匹配"})
        no = order["out_trade_no"]
        if no in self.transactions:
            known = self.transactions[no]
            if known["_order"] != order:
                return self._answer(400, {"code": "INVALID_REQUEST", "message": "商户订单号重复"})
        else:
            self.transactions[no] = {
                "_order": order,
                "_code_url": f"weixin://wxpay/bizpayurl?pr={uuid.uuid4().hex[:9]}",
                "appid": order["appid"],
                "mchid": order["mchid"],
                "out_trade_no": no,
                "trade_type": "NATIVE",
                "trade_state": "NOTPAY",
                "trade_state_desc": "未支付",
                "attach": "",
                "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                "amount": {
                    "total": total,
                    "payer_total": total,
                    "currency": amount.get("currency", "CNY"),
                    "payer_currency": "CNY",
                },
            }
        return self._answer(200, {"code_url": self.transactions[no]["_code_url"]})

    def _query(self, no: str, mchid: str) -> tuple[int, dict[str, str], bytes]:
        if mchid != self.mch_id:
            return self._answer(400, {"code": "PARAM_ERROR", "message": "mchid 不匹配"})
        if no not in self.transactions:
            return self._answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
        return self._answer(200, self.public(self.transactions[no]))

    def _refund(self, refund: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        found = [
            t
            for t in self.transactions.values()
            if t["out_trade_no"] == refund.get("out_trade_no")
            or (
                refund.get("transaction_id") and t.get("transaction_id") == refund["transaction_id"]
            )
        ]
        amount = refund.get("amount") or {}
        if not found:
            return self._answer(404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"})
        transaction = found[0]
        if transaction["trade_state"] not in ("SUCCESS", "REFUND"):
            return self._answer(400, {"code": "INVALID_REQUEST", "message": "订单未支付"})
        if amount.get("total") != transaction["amount"]["total"] or not isinstance(
            amount.get("refund"), int
        ):
            return self._answer(400, {"code": "PARAM_ERROR", "message": "订单金额或退款金额不一致"})
        no = refund.get("out_refund_no", "")
        if no not in self.refunds:
            self.refunds[no] = dict(refund)
            transaction["trade_state"] = "REFUND"
        return self._answer(
            200,
            {
                "refund_id": f"50000{uuid.uuid4().int % 10**20:020d}",
                "out_refund_no": no,
                "transaction_id": transaction.get("transaction_id"),
                "out_trade_no": transaction["out_trade_no"],
                "channel": "ORIGINAL",
                "status": "PROCESSING",
                "amount": {**amount, "payer_total": amount["refund"]},
            },
        )

    @staticmethod
    def public(transaction: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in transaction.items() if not k.startswith("_")}

    def _answer(self, status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Request-ID": uuid.uuid4().hex}
        return status, {**headers, **self._signed_headers(body)}, body


def running_fake_wechat(**knobs: Any) -> AbstractContextManager[FakeWechat]:
    """Serve a FakeWechat on 127.0.0.1 (a free port) for the `with` block."""
    return serving(FakeWechat(**knobs), "fake-wechat")
