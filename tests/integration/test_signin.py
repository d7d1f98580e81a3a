"""Sign-in and who sees what, with real parts end to end: `scoutlens ui --shared` on the embedded
model, driven by Debian's Chromium (Playwright, headless), with people signed in
- by a real OpenID Connect provider on loopback (oidc-provider-mock: authorization code flow,
  ID token with a `groups` claim) through Streamlit's st.login, or
- by Debian's nginx with `auth_basic` in front, passing X-Forwarded-User / X-Forwarded-Groups
  and the shared secret (run on SQLite and on PostgreSQL).
Alice uploads a PDF into a new corpus, asks about it (so a conversation with a drawn source page
exists) and has an eval run with a downloadable report; Bob sees none of it: not in the corpus
list, not through the conversation id in the URL, not through the page image's URL, not on the
Evals page (no report to download). Alice shares the corpus with Bob's group through the CLI
(`scoutlens --as alice corpora share`): it appears for Bob, her conversation still does not.
OIDC: sign-out ends the session. Header: a browser going straight to Streamlit's port with a
forged X-Forwarded-User is refused, and one forging it through nginx stays who nginx says."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from helpers import make_pdf

CHROMIUM = "/usr/bin/chromium"
NGINX = "/usr/sbin/nginx"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CORPUS = "alice-notes"
QUESTION = "What is the bridge inspection date?"
PAGES = ["Introduction. This report covers the harbour project.",
         "Findings. The bridge inspection date is 14 March 2031.",
         "Appendix. Tables follow."]
PROXY_SECRET = "nginx-knows-this-" + "7f3a" * 8

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, what: str, ok=lambda r: True) -> None:
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if ok(httpx.get(url, timeout=2)):
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"{what} exited: {log.read_text()[-3000:]}")
        time.sleep(0.3)
    pytest.fail(f"{what} did not start: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def ui_server(tmp_path: Path, env: dict[str, str], port: int):
    """`scoutlens ui --shared` on PORT with ENV; stopped at the end."""
    log = tmp_path / "ui.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ui", "--shared", "--port",
                                 str(port)], env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/_stcore/health", proc, log, "the UI",
              lambda r: r.text == "ok")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "app.cli", *args], env={**env, "COLUMNS": "250"},
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def start_eval(env: dict[str, str], user: str, log: Path) -> subprocess.Popen:
    """A small NIAH run owned by USER (through the CLI, `--as`), in the background."""
    fh = log.open("w")
    return subprocess.Popen([sys.executable, "-m", "app.cli", "--as", user, "eval", "run",
                             "--task", "niah", "--lengths", "256", "--depths", "50",
                             "--samples", "1", "--max-tokens", "12"],
                            env=env, stdout=fh, stderr=subprocess.STDOUT)


@pytest.fixture
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def new_page(context):
    page = context.new_page()
    page.set_default_timeout(120_000)
    return page


def base_env(scoutlens_home: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SCOUTLENS_AUTH", "SCOUTLENS_OIDC_"))}
    return {**env, "SCOUTLENS_HOME": str(scoutlens_home), "SCOUTLENS_MODEL": str(model_dir),
            **extra}


# --- what Alice does, and what Bob must not see -----------------------------------------------

def alice_ingests_and_asks(page, base: str, pdf: Path) -> tuple[str, list[str]]:
    """Upload and ingest through the Corpora page, ask on the Ask page; returns the
    conversation id (from the URL) and the drawn source pictures (data: URLs)."""
    from playwright.sync_api import expect

    page.goto(base)
    page.get_by_label("Name of the new corpus").fill(CORPUS)
    page.get_by_label("Name of the new corpus").press("Enter")
    page.locator('input[type="file"]').set_input_files(str(pdf))
    expect(page.get_by_text(pdf.name).first).to_be_visible()
    page.get_by_role("button", name="Ingest uploaded files").click()
    expect(page.get_by_text(f"ingest into {CORPUS}: 1 added")).to_be_visible()

    page.get_by_role("link", name="Ask").click()
    chat = page.get_by_placeholder(f"Ask about {CORPUS}")
    chat.fill(QUESTION)
    chat.press("Enter")
    answer = page.locator('[data-testid="stChatMessage"]').nth(1)
    expect(answer).to_contain_text("KV cache hit", timeout=300_000)
    cited = page.locator('[data-testid="stExpander"]').filter(has_text=f"{pdf.name} p.")
    expect(cited.first.locator("img").first).to_be_visible()
    page.wait_for_function("() => location.search.includes('conversation=')")
    conversation = parse_qs(urlparse(page.url).query)["conversation"][0]
    images = [src for src in page.locator('[data-testid="stExpander"] img').evaluate_all(
        "els => els.map(e => e.getAttribute('src'))") if src]
    assert images, "the cited page was not drawn"
    # drawn into her page itself: Streamlit's /media/<id> would serve it to anyone holding
    # the URL, whoever's session drew it
    assert all(src.startswith("data:image/png;base64,") for src in images), images[0][:80]
    every = page.locator("img").evaluate_all("els => els.map(e => e.getAttribute('src'))")
    assert not [src for src in every if src and "/media/" in src]
    return conversation, images


def alice_sees_her_eval(page, base: str) -> None:
    from playwright.sync_api import expect

    page.goto(base + "/evals_page")
    page.get_by_role("tab", name="Report").click()
    report = page.get_by_role("link", name="Download HTML report")
    expect(report).to_be_visible()
    # the report travels inside her page: no /media URL anyone else could fetch
    href = report.get_attribute("href") or ""
    assert href.startswith("data:text/html;charset=utf-8;base64,"), href[:60]
    with page.expect_download() as fetched:  # and the browser really downloads it
        report.click()
    saved = Path(fetched.value.path()).read_text(encoding="utf-8")
    assert fetched.value.suggested_filename.endswith(".html")
    assert saved.lower().startswith("<!doctype html") and "<table" in saved


def bob_sees_nothing_of_alices(page, base: str, conversation: str, images: list[str]) -> None:
    from playwright.sync_api import expect

    # the corpus list (Corpora page's select box and Ask's picker)
    page.goto(base)
    expect(page.get_by_text("Signed in as")).to_be_visible()
    page.get_by_label("Corpus", exact=True).first.click()
    expect(page.get_by_role("option", name="+ new corpus")).to_be_visible()
    expect(page.get_by_role("option", name=CORPUS)).to_have_count(0)
    page.keyboard.press("Escape")
    # her conversation named in the URL
    page.goto(f"{base}/ask_page?conversation={conversation}")
    expect(page.get_by_role("heading", name="Ask")).to_be_visible()
    expect(page.get_by_text("No corpora yet")).to_be_visible()
    expect(page.get_by_text(QUESTION)).to_have_count(0)
    expect(page.get_by_text("14 March 2031")).to_have_count(0)
    # her drawn source page: its bytes are in no page of Bob's (a slice from the middle: every
    # PNG starts alike)
    for src in images:
        assert src[len(src) // 2:len(src) // 2 + 120] not in page.content()
    # her eval run and its download
    page.goto(base + "/evals_page")
    expect(page.get_by_role("heading", name="Evals")).to_be_visible()
    page.get_by_role("tab", name="Report").click()
    expect(page.get_by_text("No eval runs yet.")).to_be_visible()
    expect(page.get_by_role("link", name="Download HTML report")).to_have_count(0)
    assert CORPUS not in page.locator("body").inner_text()


def bob_sees_the_shared_corpus_not_her_conversation(page, base: str, conversation: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/ask_page?conversation={conversation}")
    expect(page.get_by_role("heading", name="Ask")).to_be_visible()
    expect(page.get_by_placeholder(f"Ask about {CORPUS}")).to_be_visible()
    expect(page.get_by_text(f"Past questions about {CORPUS} (0)")).to_be_visible()
    expect(page.get_by_text(QUESTION)).to_have_count(0)
    page.goto(base)
    page.get_by_label("Corpus", exact=True).first.click()
    expect(page.get_by_role("option", name=CORPUS)).to_be_visible()


def wait_eval(proc: subprocess.Popen, log: Path) -> None:
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]


def share_with(env: dict[str, str], owner: str, other: str, group: str) -> None:
    # the other person may not share it himself: to him it does not exist
    proc = subprocess.run([sys.executable, "-m", "app.cli", "--as", other,
                           "corpora", "share", CORPUS, "--everyone"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no such corpus" in proc.stderr, proc.stderr
    cli(env, "--as", owner, "corpora", "share", CORPUS, "--group", group)


# --- OpenID Connect ----------------------------------------------------------------------------

@contextmanager
def oidc_provider(users):
    """oidc-provider-mock on 127.0.0.1 (a Flask app in a thread of this process)."""
    import werkzeug.serving
    from oidc_provider_mock import app

    server = werkzeug.serving.make_server("127.0.0.1", 0, app(user_claims=users), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def oidc_sign_in(page, base: str, sub: str) -> None:
    from playwright.sync_api import expect

    page.goto(base)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=sub).click()  # the provider's page: one of its users
    expect(page.get_by_text(f"Signed in as {sub}")).to_be_visible()


def test_oidc_two_people_share_and_sign_out(tmp_path, model_dir, scoutlens_home, chromium):
    from oidc_provider_mock import User
    from playwright.sync_api import expect

    alice, bob = "alice@example.com", "bob@example.com"
    users = [User(sub=alice, claims={"email": alice, "groups": ["team-a"]}),
             User(sub=bob, claims={"email": bob, "groups": ["team-b", "readers"]})]
    pdf = make_pdf(tmp_path / "report.pdf", PAGES)
    port = _free_port()
    with oidc_provider(users) as issuer:
        env = base_env(scoutlens_home, model_dir, SCOUTLENS_AUTH="oidc",
                       SCOUTLENS_OIDC_ISSUER=issuer, SCOUTLENS_OIDC_CLIENT_ID="scoutlens",
                       SCOUTLENS_OIDC_CLIENT_SECRET="client-secret",
                       SCOUTLENS_OIDC_COOKIE_SECRET="cookie-secret-" + "9" * 20,
                       SCOUTLENS_OIDC_REDIRECT_URI=f"http://127.0.0.1:{port}/oauth2callback")
        with ui_server(tmp_path, env, port) as base:
            a = new_page(chromium.new_context(viewport={"width": 1400, "height": 1000}))
            oidc_sign_in(a, base, alice)
            conversation, images = alice_ingests_and_asks(a, base, pdf)
            evals = start_eval(env, alice, tmp_path / "eval.log")

            b = new_page(chromium.new_context(viewport={"width": 1400, "height": 1000}))
            oidc_sign_in(b, base, bob)
            wait_eval(evals, tmp_path / "eval.log")
            alice_sees_her_eval(a, base)
            bob_sees_nothing_of_alices(b, base, conversation, images)
            expect(b.get_by_text("team-b")).to_be_visible()  # groups from the ID token

            share_with(env, alice, bob, "team-b")
            bob_sees_the_shared_corpus_not_her_conversation(b, base, conversation)

            # sign-out ends the session: the provider's end-session page, then back to sign-in
            a.goto(base)
            a.get_by_role("button", name="Sign out").click()
            end = a.get_by_role("button", name="End session")
            end.wait_for()
            end.click()
            expect(a.get_by_role("button", name="Sign in")).to_be_visible()
            a.goto(base + "/ask_page")
            expect(a.get_by_role("button", name="Sign in")).to_be_visible()
            expect(a.get_by_text(CORPUS)).to_have_count(0)
            assert not any(c["name"].startswith("_streamlit_user")
                           for c in a.context.cookies()), a.context.cookies()

    users_out = cli(env, "users", "list").stdout
    assert alice in users_out and bob in users_out and "oidc" in users_out
    audit = cli(env, "audit", "--user", alice).stdout
    assert "share" in audit and CORPUS in audit


# --- trusted header: nginx with auth_basic ----------------------------------------------------

def ssha(password: str) -> str:
    """An htpasswd {SSHA} entry (salted SHA-1), which nginx's auth_basic reads."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


NGINX_CONF = """\
user {user};
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    client_max_body_size 64m;
    map $remote_user $scout_groups {{
        default "";
        alice "team-a";
        bob "team-b,readers";
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" close;
    }}
    server {{
        listen 127.0.0.1:{port};
        auth_basic "scoutlens";
        auth_basic_user_file {tmp}/htpasswd;
        location / {{
            proxy_pass http://127.0.0.1:{ui_port};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-User $remote_user;
            proxy_set_header X-Forwarded-Groups $scout_groups;
            proxy_set_header X-Scoutlens-Proxy-Secret "{secret}";
            proxy_read_timeout 600s;
            proxy_buffering off;
        }}
    }}
}}
"""


@contextmanager
def nginx(tmp_path: Path, ui_port: int, passwords: dict[str, str]):
    if not Path(NGINX).exists():
        pytest.fail(f"{NGINX} is missing: apt-get install nginx (.ci/run does)")
    folder = tmp_path / "nginx"
    folder.mkdir()
    (folder / "htpasswd").write_text("".join(f"{u}:{ssha(p)}\n" for u, p in passwords.items()))
    port = _free_port()
    conf = folder / "nginx.conf"
    # `user`: the workers run as the test user (nginx ignores it unless started as root)
    conf.write_text(NGINX_CONF.format(user=pwd.getpwuid(os.getuid()).pw_name, tmp=folder,
                                      port=port, ui_port=ui_port, secret=PROXY_SECRET))
    log = folder / "nginx-error.log"
    with (folder / "stderr.log").open("w") as fh:
        proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(folder), "-e", str(log)],
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url, proc, folder / "stderr.log", "nginx", lambda r: r.status_code == 401)
        yield url
    finally:
        _stop(proc)


def test_trusted_header_behind_nginx(tmp_path, model_dir, scoutlens_home, db_url, chromium):
    from playwright.sync_api import expect

    passwords = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
    pdf = make_pdf(tmp_path / "report.pdf", PAGES)
    ui_port = _free_port()
    env = base_env(scoutlens_home, model_dir, SCOUTLENS_AUTH="header",
                   SCOUTLENS_AUTH_PROXY_SECRET=PROXY_SECRET, SCOUTLENS_DATABASE_URL=db_url)
    with ui_server(tmp_path, env, ui_port) as direct, nginx(tmp_path, ui_port, passwords) as base:
        assert httpx.get(base, timeout=5).status_code == 401  # nobody passes without a password
        assert httpx.get(base, auth=("alice", "wrong"), timeout=5).status_code == 401

        def person(name: str, **extra):
            ctx = chromium.new_context(viewport={"width": 1400, "height": 1000},
                                       http_credentials={"username": name,
                                                         "password": passwords[name]}, **extra)
            return new_page(ctx)

        a = person("alice")
        a.goto(base)
        expect(a.get_by_text("Signed in as alice")).to_be_visible()
        conversation, images = alice_ingests_and_asks(a, base, pdf)
        evals = start_eval(env, "alice", tmp_path / "eval.log")

        b = person("bob")
        b.goto(base)
        expect(b.get_by_text("Signed in as bob")).to_be_visible()
        expect(b.get_by_text("readers, team-b")).to_be_visible()  # both groups of the header
        wait_eval(evals, tmp_path / "eval.log")
        alice_sees_her_eval(a, base)
        bob_sees_nothing_of_alices(b, base, conversation, images)

        # Bob forging Alice through nginx stays Bob: nginx sets the header from the password
        forged = person("bob", extra_http_headers={"X-Forwarded-User": "alice",
                                                   "X-Forwarded-Groups": "admins"})
        forged.goto(base)
        expect(forged.get_by_text("Signed in as bob")).to_be_visible()
        expect(forged.get_by_text("(admin)")).to_have_count(0)

        # straight to Streamlit's port with a forged header (and a made-up secret): refused
        for headers in ({"X-Forwarded-User": "alice"},
                        {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "admins",
                         "X-Scoutlens-Proxy-Secret": "guess"}):
            ctx = chromium.new_context(extra_http_headers=headers)
            raw = new_page(ctx)
            raw.goto(direct)
            expect(raw.get_by_text("Not signed in")).to_be_visible()
            expect(raw.get_by_text("Signed in as")).to_have_count(0)
            assert CORPUS not in raw.locator("body").inner_text()
            ctx.close()

        share_with(env, "alice", "bob", "team-b")
        bob_sees_the_shared_corpus_not_her_conversation(b, base, conversation)

    out = cli(env, "--as", "bob", "corpora", "list").stdout
    assert CORPUS in out
    users_out = cli(env, "users", "list").stdout
    assert re.search(r"alice.*team-a", users_out) and "header" in users_out
