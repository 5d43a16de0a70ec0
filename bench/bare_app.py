"""The baseline of the balance benchmark: a bare Litestar + msgspec endpoint answering one
SELECT from an async psycopg pool, the least an HTTP read of a row can cost here."""

from __future__ import annotations

import os

import msgspec
from litestar import Litestar, get
from psycopg_pool import AsyncConnectionPool

pool = AsyncConnectionPool(os.environ["DATABASE_URL"], min_size=4, max_size=16, open=False)
QUERY = f'SELECT balance FROM "{os.environ["POSTGRES_SCHEMA"]}".rm_balances WHERE user_id = %s'


class Balance(msgspec.Struct):
    balance: int


@get("/balance/{user_id:str}")
async def balance(user_id: str) -> Balance:
    async with pool.connection() as conn:
        cursor = await conn.execute(QUERY, (user_id,))
        row = await cursor.fetchone()
    return Balance(int(row[0]) if row else 0)


async def _open() -> None:
    await pool.open()


async def _close() -> None:
    await pool.close()


app = Litestar([balance], on_startup=[_open], on_shutdown=[_close], openapi_config=None)
