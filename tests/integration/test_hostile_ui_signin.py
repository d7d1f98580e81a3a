"""Issue 23, item 1, against the web UI through a real browser: `scoutlens ui --shared` with
sign-in by proxy address (SCOUTLENS_AUTH=header, SCOUTLENS_AUTH_PROXY_IPS) and Debian's
Chromium on this machine, connecting over loopback. Claiming to be the proxy with
X-Forwarded-For (and X-Real-IP, Forwarded) signs nobody in; a proxy on loopback configured as
::1 is matched on a connection to 127.0.0.1."""

from __future__ import annotations

import os

import pytest

from integration.test_signin import ARGS, CHROMIUM, _free_port, new_page, ui_server

pytestmark = pytest.mark.slow
PROXY = "10.9.9.9"


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


def _env(home, ips: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
    return env | {"SCOUTLENS_HOME": str(home), "SCOUTLENS_AUTH": "header",
                  "SCOUTLENS_AUTH_PROXY_IPS": ips}


def _visit(browser, url: str, headers: dict[str, str]):
    page = new_page(browser.new_context(extra_http_headers=headers))
    page.goto(url)
    return page


def test_a_local_process_claiming_the_proxy_address_is_nobody(tmp_path, scoutlens_home,
                                                              browser):
    from playwright.sync_api import expect

    spoof = {"X-Forwarded-For": PROXY, "X-Real-IP": PROXY, "Forwarded": f"for={PROXY}",
             "X-Forwarded-User": "bob", "X-Forwarded-Groups": "admins"}
    with ui_server(tmp_path, _env(scoutlens_home, f'["{PROXY}"]'), _free_port()) as url:
        page = _visit(browser, url, spoof)
        expect(page.get_by_text("Not signed in")).to_be_visible()
        expect(page.get_by_text("Signed in as")).to_have_count(0)
    with ui_server(tmp_path, _env(scoutlens_home, '["::1"]'), _free_port()) as url:
        page = _visit(browser, url, {"X-Forwarded-User": "bob"})
        expect(page.get_by_text("Signed in as bob")).to_be_visible()
