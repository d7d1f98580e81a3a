"""Settings from the environment (prefix SCOUTLENS_), with defaults that need no set-up.

Read by a dataclass and a few lines of parsing rather than pydantic-settings: importing pydantic
and building a settings model took 0.25-0.3 s of every command's start (a third of a re-pack).
The rules are pydantic-settings' own: a variable's name in any case, a value given to
`Settings(...)` before the variable, lists and mappings as JSON, `true/false/1/0/yes/no/on/off`
for switches, and a value that does not fit is one line naming the variable.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from common.errors import UserError

#: the largest upload the web UI takes per file (MB); Streamlit's own ceiling is set to it when
#: `scoutlens ui` starts the server, the limit chosen in the UI's Settings stays under it
MAX_UPLOAD_MB = 2048
PREFIX = "SCOUTLENS_"


def Field(default: Any, description: str, ge: int | None = None) -> Any:  # noqa: N802
    """A setting: its default, what it is for, and its least value if it has one."""
    meta = {"description": description, "ge": ge}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(init=False, frozen=True)
class Settings:
    """Every setting: given as `Settings(name=value)`, else `SCOUTLENS_NAME`, else the default."""

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

    def __init__(self, **given: Any) -> None:
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"no such setting: {', '.join(sorted(unknown))}")
        env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(PREFIX)}
        for f in fields(self):
            name = PREFIX + f.name.upper()
            if f.name in given:
                raw, from_env = given[f.name], False
            elif name in env:
                raw, from_env = env[name], True
            else:
                object.__setattr__(self, f.name, f.default_factory() if f.default is MISSING
                                   else f.default)  # type: ignore[misc]
                continue
            try:
                value = _parsed(raw, str(f.type), from_env)
                if f.metadata["ge"] is not None and value is not None \
                        and value < f.metadata["ge"]:
                    raise ValueError(f"Input should be greater than or equal to "
                                     f"{f.metadata['ge']}")
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r}: {exc}") from None
            object.__setattr__(self, f.name, value)

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


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _parsed(raw: Any, kind: str, from_env: bool) -> Any:
    """`raw` as a value of the annotation `kind`; ValueError saying what it should be."""
    optional = kind.endswith(" | None")
    kind = kind.removesuffix(" | None")
    if raw is None and optional:
        return None
    if kind in ("dict[str, str]", "list[str]"):
        if isinstance(raw, str) and from_env:
            try:
                raw = json.loads(raw)
            except ValueError:
                raise ValueError(f"Input should be JSON ({kind})") from None
        if kind.startswith("dict"):
            if not (isinstance(raw, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in raw.items())):
                raise ValueError(f"Input should be {kind}")
            return dict(raw)
        if not (isinstance(raw, list | tuple) and all(isinstance(v, str) for v in raw)):
            raise ValueError(f"Input should be {kind}")
        return list(raw)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError("Input should be a valid boolean")
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError("Input should be a valid integer")
        try:
            return int(raw)
        except ValueError:
            with contextlib.suppress(ValueError):  # "4.0", as pydantic takes it
                if (number := float(raw)).is_integer():
                    return int(number)
            raise ValueError("Input should be a valid integer, unable to parse string as an "
                             "integer") from None
    if kind == "float":
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError("Input should be a valid number") from None
    if kind == "Path":
        if not isinstance(raw, str | os.PathLike):
            raise ValueError("Input is not a valid path")
        return Path(raw)
    if not isinstance(raw, str):
        raise ValueError("Input should be a valid string")
    return raw


@cache
def get_settings() -> Settings:
    """The settings; a bad variable is one line naming it, never a traceback."""
    return Settings()


def database_url(url: str | None = None) -> str:
    """The database a service uses: the one given (tests, tools), else the settings' (the one
    convention for every service that takes a `url`)."""
    return url or get_settings().db_url
