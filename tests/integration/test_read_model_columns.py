"""Read-model tables made by an earlier release get the columns added since (a suspended
flag, a failure code), so a store upgraded in place keeps serving without a rebuild."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from sora2.bootstrap import bootstrap
from tests.conftest import FastHasher
from tests.support.backends import sqlite_settings

OLD_USERS = """CREATE TABLE rm_users (id TEXT PRIMARY KEY, email TEXT NOT NULL,
    username TEXT NOT NULL, avatar_key TEXT, role TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, session_epoch INTEGER NOT NULL DEFAULT 0)"""
OLD_VIDEOS = """CREATE TABLE rm_videos (seq BIGINT NOT NULL, id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL, prompt TEXT NOT NULL, status TEXT NOT NULL, progress INTEGER NOT NULL,
    seconds_remaining INTEGER, video_key TEXT, thumbnail_key TEXT, duration INTEGER NOT NULL,
    aspect_ratio TEXT NOT NULL, cost BIGINT NOT NULL, error TEXT, share_token_hash TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"""


def test_tables_of_an_earlier_release_get_the_new_columns(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    with closing(sqlite3.connect(tmp_path / "var" / "sora2.sqlite")) as db, db:
        db.execute(OLD_USERS)
        db.execute(OLD_VIDEOS)
    sora2 = bootstrap(sqlite_settings(tmp_path), hasher=FastHasher())
    sora2.jobs.shutdown()
    try:
        user = sora2.accounts.register("old@example.com", "oldie", "password123").user
        video = sora2.videos.request(user.id, "a cat", 5, "16:9")
        sora2.videos.start_job(video.id)
        assert sora2.videos.fail_job(video.id, "refused", "moderation_blocked")
        (found,) = sora2.views.search_users("old", 1, 10).items
        assert (found.user.suspended, found.balance) == (False, 10)
        assert sora2.views.video(video.id).error_code == "moderation_blocked"
    finally:
        sora2.close()
