"""The pay answer in the OpenAPI document: one example per provider, as a front end meets them."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from sora2.adapters.http import schemas


def payment_answers(status: int) -> dict[int, ResponseSpec]:
    """The pay answer's OpenAPI entry, one example per provider (a front end's four cases)."""
    order = {
        "id": "3f0c2a4b-e5d8-4b1f-9a6e-0c7d8e9f0a1b",
        "userId": "9b1de2c4-7f3a-4c55-8e0a-1f2b3c4d5e6f",
        "amount": 10.0,
        "credits": 100,
        "status": "PENDING",
        "createdAt": "2026-12-01T10:00:00Z",
    }
    expires = "2026-12-01T10:30:00Z"
    cases = {
        "sandbox": {
            "order": {
                **order,
                "paymentMethod": "ALIPAY",
                "status": "PAID",
                "paidAt": "2026-12-01T10:00:01Z",
            },
            "provider": "sandbox",
            "paid": True,
        },
        "stripe": {
            "order": {**order, "paymentMethod": "STRIPE"},
            "provider": "stripe",
            "paid": False,
            "redirectUrl": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3",
        },
        "alipay": {
            "order": {**order, "paymentMethod": "ALIPAY"},
            "provider": "alipay",
            "paid": False,
            "qrCode": "https://qr.alipay.com/bax08431qbmaguzeepbl0051",
            "expiresAt": expires,
        },
        "wechat": {
            "order": {**order, "paymentMethod": "WECHAT"},
            "provider": "wechat",
            "paid": False,
            "qrCode": "weixin://wxpay/bizpayurl?pr=p4lpSuKzz",
            "expiresAt": expires,
        },
    }
    return {
        status: ResponseSpec(
            data_container=schemas.Payment,
            description=(
                "The order and the provider's next step: nothing (sandbox), open `redirectUrl` "
                "(stripe), or show `qrCode` as a QR code until `expiresAt` (alipay, wechat)."
            ),
            generate_examples=False,
            examples=[Example(summary=name, value=value) for name, value in cases.items()],
        )
    }
