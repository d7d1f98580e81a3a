"""Settings from the environment (prefix SCOUTLENS_), with defaults that need no set-up."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import UserError

#: the largest upload the web UI takes per file (MB); Streamlit's own ceiling is set to it when
#: `scoutlens ui` starts the server, the limit chosen in the UI's Settings stays under it
MAX_UPLOAD_MB = 2048


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCOUTLENS_", extra="ignore")

    home: Path = Field(default=Path("~/.scoutlens"), description="data folder")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite")
    tokenizer: str = Field(default="cl100k", description="default tokenizer spec")
    shared_tokenizers: dict[str, str] = Field(default={}, description="tokenizers the callers "
                                              "of a shared server may name, name -> spec (e.g. "
                                              '{"scout": "llama4:/models/tokenizer.model"}); '
                                              "cl100k, o200k and embedded are always there")
    workers: int = Field(default=0, description="ingest worker processes (reading, parsing, "
                         "counting, the index's terms); 0 = one per core, 1 = all in the "
                         "calling process")
    # engine
    backend: str = Field(default="embedded", description="embedded | openai")
    endpoint: str | None = Field(default=None, description="OpenAI-compatible server URL")
    model: str | None = Field(default=None, description="model folder (embedded) or served name")
    dtype: str = Field(default="bfloat16", description="embedded model dtype")
    device: str = Field(default="auto", description="where the embedded model runs: cpu | "
                        "cuda | auto (the GPU when torch sees one, else the CPU)")
    prefill_chunk: int | None = Field(default=None, ge=1, description="embedded prefill chunk, "
                                      "tokens; default 1,024 on the CPU, 8,192 on a GPU")
    kv_block: int = Field(default=16, description="KV reuse block size, tokens (vLLM uses 16)")
    kv_memory_gb: float = Field(default=2.0, description="in-process KV cache budget, GB")
    kv_disk_gb: float = Field(default=20.0, description="on-disk KV cache budget, GB")
    retrieval_fill: float = Field(default=0.75, description="share of the context budget that "
                                  "retrieval fills (the rest is room for follow-up turns)")
    dense: bool = Field(default=False, description="dense retrieval: sentence vectors "
                        "(all-MiniLM-L6-v2 on CPU) built at ingest and fused with BM25, "
                        "symbols and paths; off by default: on benchmarks/bench_dense.py it "
                        "finds more PDF answers but fewer code ones, and a question pays "
                        "the model's load")
    default_window: int = Field(default=131072, description="window of a server that does not "
                                "say its own (tokens)")
    vllm_python: str | None = Field(default=None, description="the Python that runs `serve "
                                    "vllm` (one with vllm installed); default: .venv-vllm, "
                                    "then a vllm on PATH, then this interpreter")
    max_images: int = Field(default=5, ge=0, description="pictures (video frames, images, "
                            "figure pages) sent as images per request, at most (the server's "
                            "--limit-mm-per-prompt; scoutlens's own Llama 4 launch sets 5): the "
                            "ones the question points at first; the others go as their words")
    max_image_pixels: int = Field(default=100_000_000, ge=1, description="a picture (or TIFF "
                                  "page) larger than this many pixels is refused from its "
                                  "header, before it is decoded: a decompression bomb "
                                  "(`--max-image-pixels` overrides it)")

    # --- sign-in for a shared UI (app.services.access has the rules) -------------------------
    auth: str = Field(default="", description="how people sign in to a shared UI: oidc "
                      "(OpenID Connect via Streamlit's st.login) | header (a trusted reverse "
                      "proxy sets the user and groups headers); empty: no sign-in")
    admin_groups: list[str] = Field(default=["admins"], description="groups whose members see "
                                    "and change every corpus and eval run")
    oidc_issuer: str | None = Field(default=None, description="OpenID Connect issuer URL")
    oidc_client_id: str | None = Field(default=None, description="OIDC client id")
    oidc_client_secret: str | None = Field(default=None, description="OIDC client secret")
    oidc_cookie_secret: str | None = Field(default=None, description="secret that signs the "
                                           "sign-in cookie (random, kept across restarts)")
    oidc_redirect_uri: str | None = Field(default=None, description="the UI's public URL + "
                                          "/oauth2callback (default: from --host/--port)")
    oidc_groups_claim: str = Field(default="groups", description="ID-token claim that lists "
                                   "the user's groups")
    oidc_scopes: str = Field(default="openid profile email", description="scopes asked for "
                             "(some providers send groups only for a `groups` scope)")
    auth_user_header: str = Field(default="X-Forwarded-User", description="header the proxy "
                                  "puts the signed-in user in")
    auth_groups_header: str = Field(default="X-Forwarded-Groups", description="header with the "
                                    "user's groups, comma-separated")
    auth_proxy_ips: list[str] = Field(default=[], description="addresses the trusted proxy "
                                      "connects from (headers from elsewhere are refused)")
    auth_proxy_secret: str | None = Field(default=None, description="a secret the proxy sends "
                                          "in auth_secret_header (instead of, or with, the "
                                          "addresses)")
    auth_secret_header: str = Field(default="X-Scoutlens-Proxy-Secret",
                                    description="header that carries auth_proxy_secret")

    @property
    def home_dir(self) -> Path:
        path = self.home.expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def db_url(self) -> str:
        """The database the services use. A configured URL is checked first (app.database,
        imported only then): in-memory SQLite, or a new folder outside `home`, is refused."""
        if not self.database_url:
            return f"sqlite:///{self.home_dir / 'scoutlens.db'}"
        from app.database import check_user_url

        return check_user_url(self.database_url, self.home_dir)

    @property
    def cache_dir(self) -> Path:
        path = self.home_dir / "cache"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def frames_dir(self) -> Path:
        return self.cache_dir / "frames"

    @property
    def kv_dir(self) -> Path:
        return self.cache_dir / "kv"


class SettingsError(UserError):
    """A SCOUTLENS_ variable the settings cannot take (`SCOUTLENS_MAX_IMAGE_PIXELS=abc`)."""


@cache
def get_settings() -> Settings:
    """The settings; a bad variable is one line naming it, never a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "SCOUTLENS_" + str(first["loc"][0]).upper() if first.get("loc") else "a setting"
        raise SettingsError(f"{name}={first.get('input')!r}: {first.get('msg', 'invalid')}"
                            ) from None


def database_url(url: str | None = None) -> str:
    """The database a service uses: the one given (tests, tools), else the settings' (the one
    convention for every service that takes a `url`)."""
    return url or get_settings().db_url
