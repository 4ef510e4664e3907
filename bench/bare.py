"""The baseline for bench/run.py: the same POST, without the event-sourced path.

Validates the API's own msgspec body, inserts one row into SQLite (WAL, default synchronous)
in one transaction per request, and is served by uvicorn like `agora serve`.
Usage: python bench/bare.py PORT DATABASE_FILE
"""

from __future__ import annotations

import sqlite3
import sys
import uuid

import msgspec
import uvicorn
from litestar import Litestar, Response, post

from api.public.consultations import ResponseIn


def create_app(path: str) -> Litestar:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, slug TEXT NOT NULL, answers BLOB NOT NULL)")

    @post("/consultations/{slug:str}/responses", status_code=201)
    async def submit(slug: str, data: ResponseIn) -> Response[bytes]:
        response_id = str(uuid.uuid4())
        # Autocommit: the INSERT is its own transaction, committed before the answer.
        db.execute("INSERT INTO responses VALUES (?, ?, ?)", (response_id, slug, msgspec.json.encode(data.answers)))
        return Response(msgspec.json.encode({"id": response_id}), status_code=201, media_type="application/json")

    return Litestar(route_handlers=[submit])


if __name__ == "__main__":
    uvicorn.run(create_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
