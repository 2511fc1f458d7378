"""The data directory's session key (data/session_key.py): made once, owner-only, the same for every reader."""

from __future__ import annotations

import stat

from data.session_key import session_key


def test_the_key_is_created_once_readable_by_its_owner_only(paths):
    key = session_key(paths)
    assert len(key) == 32 and session_key(paths) == key
    assert stat.S_IMODE(paths.session_key.stat().st_mode) == 0o600
    assert not [p for p in paths.session_key.parent.iterdir() if p != paths.session_key]  # no temporary left


def test_deleting_the_key_makes_a_new_one(paths):
    first = session_key(paths)
    paths.session_key.unlink()
    assert session_key(paths) != first
