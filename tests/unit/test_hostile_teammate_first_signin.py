"""A hostile teammate after issue 23's fixes: a person's first requests arrive together (an
agent's parallel tool calls, a browser's tabs). Each records the sign-in; the second insert
of the new name was an IntegrityError, so a call failed with 'internal error' and SQL."""

from __future__ import annotations

import threading

from app.services.users import list_users, signed_in

THREADS = 12


def test_a_first_sign_in_from_many_requests_at_once_is_one_user(tmp_path):
    errors: list[BaseException] = []
    names = [f"newbie{i}" for i in range(6)]
    for name in names:
        start = threading.Barrier(THREADS)

        def sign_in(name: str = name, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                signed_in(name, ["staff"], "header")
            except BaseException as exc:  # noqa: BLE001 - what failed is the test's finding
                errors.append(exc)

        threads = [threading.Thread(target=sign_in) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert [u.name for u in list_users()] == names
