"""A hostile teammate after issue 23's fixes: a proxy that lets people choose their user name
(a self-service SSO, a header typed by hand in front of a test proxy) must not let one pass
for the legacy owner `admin` in another case or width, nor for the `operator` the audit log
names for the server's own command line: their rows would read as the operator's."""

from __future__ import annotations

import pytest

from app.services.users import principal_of, signed_in
from common.errors import UserError


@pytest.mark.parametrize("name", ["Admin", "ADMIN", "ａｄｍｉｎ", "operator", "Operator",
                                  "ＯＰＥＲＡＴＯＲ"])
def test_a_name_read_as_admin_or_the_operator_is_refused(tmp_path, name):
    with pytest.raises(UserError, match="reserved"):
        signed_in(name, [], "header")
    with pytest.raises(UserError, match="reserved"):
        principal_of(name)


def test_ordinary_names_sign_in(tmp_path):
    for name in ("administrator", "operators", "bob"):
        assert signed_in(name, [], "header").name == name
