"""A fake of Alipay's open-platform gateway over real HTTP, and Alipay's notify signing.

AlipayPayments is tested against this instead of mocks, so the form, the RSA2 signatures
both ways and the answers' exact JSON text all cross a real socket. Like Alipay:

* every call's `sign` must verify with the app's public key over the sorted `k=v` pairs
  without `sign` and empty values; else `40002 isv.invalid-signature`, and that call
  changes nothing;
* `alipay.trade.precreate` keeps one trade per out_trade_no and answers its `qr_code`
  (the same one again for a repeated call); `alipay.trade.query` answers the trade or
  `ACQ.TRADE_NOT_EXIST`; `alipay.trade.refund` refunds a paid trade once per
  out_request_no (`fund_change` "N" when repeated);
* answers are signed with Alipay's key over the exact text of `<method>_response`.

`pay(out_trade_no)` settles a trade as if the user scanned and paid; `notify(...)` builds
the form Alipay posts to the notify_url, signed with whatever key a test chooses.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.fake_http import serving
from tests.support.rsa_keys import KeyPair, pair

APP_ID = "2021000000000001"


def rsa2(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_ok(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


def pairs_text(params: dict[str, str], without: tuple[str, ...], skip_empty: bool) -> bytes:
    items = sorted(
        (k, v) for k, v in params.items() if k not in without and not (skip_empty and v == "")
    )
    return "&".join(f"{k}={v}" for k, v in items).encode()


@dataclass(frozen=True)
class Call:
    method: str  # alipay.trade.precreate, ...
    params: dict[str, str]
    biz: dict[str, Any]
    signature_ok: bool


@dataclass
class FakeAlipay:
    app_id: str = APP_ID
    app_keys: KeyPair = field(default_factory=lambda: pair("alipay-app"))  # the merchant's
    alipay_keys: KeyPair = field(default_factory=lambda: pair("alipay-platform"))
    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # by out_request_no
    _fail_remaining: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def gateway(self) -> str:
        return f"{self.base_url}/gateway.do"

    def fail_next(self, count: int) -> None:
        """The next `count` calls answer HTTP 502 (a proxy in the way), changing nothing."""
        with self._lock:
            self._fail_remaining = count

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def pay(self, out_trade_no: str, status: str = "TRADE_SUCCESS") -> dict[str, Any]:
        """The user scanned the QR code and paid: the trade is settled, with its trade_no."""
        with self._lock:
            trade = self.trades[out_trade_no]
            trade.update(trade_status=status, trade_no=f"2026{uuid.uuid4().int % 10**24:024d}")
            return dict(trade)

    # --- notifies --------------------------------------------------------------------

    def notify(
        self,
        trade: dict[str, Any],
        *,
        key: rsa.RSAPrivateKey | None = None,
        **overrides: str,
    ) -> bytes:
        """The form Alipay posts for a trade, signed (by Alipay's key unless `key`);
        `overrides` change or add parameters before signing."""
        params = {
            "gmt_create": "2026-12-01 10:00:00",
            "charset": "utf-8",
            "seller_email": "merchant@example.com",
            "subject": trade.get("subject", "credits"),
            "buyer_id": "2088102177846880",
            "invoice_amount": trade["total_amount"],
            "notify_id": uuid.uuid4().hex,
            "fund_bill_list": json.dumps(
                [{"amount": trade["total_amount"], "fundChannel": "ALIPAYACCOUNT"}]
            ),
            "notify_type": "trade_status_sync",
            "trade_status": trade.get("trade_status", "TRADE_SUCCESS"),
            "receipt_amount": trade["total_amount"],
            "app_id": self.app_id,
            "buyer_pay_amount": trade["total_amount"],
            "notify_time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "point_amount": "0.00",
            "total_amount": trade["total_amount"],
            "seller_id": "2088102177649450",
            "trade_no": trade.get("trade_no", ""),
            "auth_app_id": self.app_id,
            "buyer_logon_id": "csq***@sandbox.com",
            "out_trade_no": trade["out_trade_no"],
            "version": "1.0",
        }
        params.update(overrides)
        signing = key or self.alipay_keys.private_key
        params["sign"] = rsa2(signing, pairs_text(params, ("sign", "sign_type"), False))
        params["sign_type"] = "RSA2"
        return urlencode(params).encode()

    # --- the gateway (called from server threads) -----------------------------------

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        name = params.get("method", "")
        try:
            biz = json.loads(params.get("biz_content") or "{}")
        except ValueError:
            biz = {}
        signature_ok = params.get("app_id") == self.app_id and rsa2_ok(
            self.app_keys.public_key,
            pairs_text(params, ("sign",), True),
            params.get("sign", ""),
        )
        with self._lock:
            self.calls.append(Call(name, params, biz, signature_ok))
            if params.get("app_id") != self.app_id:  # as Alipay: unsigned, under error_response
                answer = _error(
                    "40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数"
                )
                body = json.dumps({"error_response": answer}, ensure_ascii=False).encode()
                return 200, {"Content-Type": "text/html;charset=utf-8"}, body
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                return 502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"
            if not path.startswith("/gateway.do") or method != "POST":
                return 404, {"Content-Type": "text/plain"}, b"not found"
            if not signature_ok:
                answer = _error("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错")
            elif params.get("sign_type") != "RSA2" or params.get("charset") != "utf-8":
                answer = _error("40002", "Invalid Arguments", "isv.invalid-parameter", "参数无效")
            elif name == "alipay.trade.precreate":
                answer = self._precreate(params, biz)
            elif name == "alipay.trade.query":
                answer = self._query(biz)
            elif name == "alipay.trade.refund":
                answer = self._refund(biz)
            else:
                answer = _error(
                    "40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名"
                )
        node = name.replace(".", "_") + "_response" if name else "error_response"
        text = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
        signature = rsa2(self.alipay_keys.private_key, text.encode())
        envelope = f'{{"{node}":{text},"sign":"{signature}"}}'
        return 200, {"Content-Type": "text/html;charset=utf-8"}, envelope.encode()

    def _precreate(self, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        no, amount = biz.get("out_trade_no"), biz.get("total_amount")
        if not no or not amount or not biz.get("subject"):
            return _error("40002", "Invalid Arguments", "isv.missing-parameter", "缺少必选参数")
        if no in self.trades:
            trade = self.trades[no]
            if trade["total_amount"] != amount:
                return _error(
                    "40004", "Business Failed", "ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"
                )
        else:
            trade = self.trades[no] = {
                "out_trade_no": no,
                "total_amount": amount,
                "subject": biz["subject"],
                "time_expire": biz.get("time_expire"),
                "notify_url": params.get("notify_url"),
                "trade_status": "WAIT_BUYER_PAY",
                "qr_code": f"https://qr.alipay.com/bax{uuid.uuid4().hex[:20]}",
            }
        return {"code": "10000", "msg": "Success", "out_trade_no": no, "qr_code": trade["qr_code"]}

    def _query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None or "trade_no" not in trade:  # as Alipay: no trade until scanned
            return _error("40004", "Business Failed", "ACQ.TRADE_NOT_EXIST", "交易不存在")
        return {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "trade_status": trade["trade_status"],
            "total_amount": trade["total_amount"],
        }

    def _refund(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None:
            return _error("40004", "Business Failed", "ACQ.TRADE_NOT_EXIST", "交易不存在")
        if trade["trade_status"] not in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            return _error("40004", "Business Failed", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if biz.get("trade_no") not in (None, trade["trade_no"]):
            return _error("40004", "Business Failed", "ACQ.TRADE_NOT_EXIST", "交易不存在")
        if biz.get("refund_amount") != trade["total_amount"]:
            return _error(
                "40004", "Business Failed", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限"
            )
        request_no = biz.get("out_request_no", "")
        fund_change = "N" if request_no in self.refunds else "Y"
        self.refunds.setdefault(request_no, dict(biz))
        return {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "refund_fee": biz["refund_amount"],
            "fund_change": fund_change,
        }


def _error(code: str, msg: str, sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


def running_fake_alipay(**knobs: Any) -> AbstractContextManager[FakeAlipay]:
    """Serve a FakeAlipay on 127.0.0.1 (a free port) for the `with` block."""
    return serving(FakeAlipay(**knobs), "fake-alipay")
