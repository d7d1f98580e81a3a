"""A model folder's tokenizer and chat template without transformers, for counting only.

Why: `ask --dry-run` plans a request in the model's own tokens, and importing transformers
(which imports torch) cost 1.5 s of its 3 s budget. A folder with a `tokenizer.json` and a chat
template as text is read here with the Rust `tokenizers` library and jinja2's sandbox, set up
as transformers sets them up (trim_blocks, lstrip_blocks, loop controls, its `tojson`,
`raise_exception`, `strftime_now`), so the ids are the ones the loaded model would get; a test
compares them request by request. Anything else (a tokenizer only in sentencepiece form, a
template kept some other way, special tokens declared outside tokenizer.json) returns None and
the caller loads transformers as before.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

#: the special tokens transformers passes to a chat template by name
NAMED = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
         "mask_token")
#: settings that change how transformers encodes or decodes beyond tokenizer.json
#: (special-token strings split by default, spaces edited after decoding): such a folder is
#: left to transformers, as is one declaring a special token tokenizer.json lacks
TRANSFORMERS_ONLY = ("split_special_tokens", "clean_up_tokenization_spaces")


class ChatTokenizer:
    """The subset of a transformers fast tokenizer that `engine.embedded_model` uses to turn a
    request into ids: calling it, `apply_chat_template(tokenize=False)`, `decode`, and the
    bos/eos ids."""

    def __init__(self, tokenizer, template: str, specials: dict[str, str]):
        self._tok = tokenizer
        self._lock = threading.Lock()  # encode_special_tokens is the Rust tokenizer's state
        self.chat_template = template
        self.special_tokens_map = specials
        self.bos_token_id = self._id(specials.get("bos_token"))
        self.eos_token_id = self._id(specials.get("eos_token"))
        self._compiled = _compile(template)  # a tag only transformers knows raises here

    def _id(self, token: str | None) -> int | None:
        return self._tok.token_to_id(token) if token else None

    @classmethod
    def load(cls, folder: Path) -> ChatTokenizer | None:
        """The folder's tokenizer, or None where only transformers can read it."""
        data, config = folder / "tokenizer.json", folder / "tokenizer_config.json"
        if not data.is_file() or not config.is_file() \
                or (folder / "special_tokens_map.json").is_file():
            return None  # (special tokens declared in a second file: transformers merges them)
        try:
            settings = json.loads(config.read_text(encoding="utf-8"))
            if not isinstance(settings, dict) or any(settings.get(k) for k in TRANSFORMERS_ONLY):
                return None
            template = _template(folder, settings)
            if template is None:
                return None
            specials = {name: token for name in NAMED
                        if (token := _content(settings.get(name))) is not None}
            from tokenizers import Tokenizer

            rust = Tokenizer.from_file(str(data))
            added = {t.content: t.special for t in rust.get_added_tokens_decoder().values()}
            if any(added.get(token) is not special
                   for token, special in _declared(settings, specials)):
                return None  # transformers adds a token tokenizer.json lacks, or marks it
            rust.no_truncation()  # as transformers calls it: no cut, no padding
            rust.no_padding()
            loaded = cls(rust, template, specials)
        except Exception:  # noqa: BLE001 (any reason at all: transformers reads it, or says why)
            return None
        return loaded

    def __call__(self, text: str, add_special_tokens: bool = True,
                 split_special_tokens: bool = False) -> dict[str, list[int]]:
        with self._lock:
            self._tok.encode_special_tokens = split_special_tokens
            try:
                ids = self._tok.encode(text, add_special_tokens=add_special_tokens).ids
            finally:
                self._tok.encode_special_tokens = False
        return {"input_ids": ids}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict], tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str:
        if tokenize:
            raise ValueError("ChatTokenizer renders text only (tokenize=False)")
        return self._compiled.render(messages=[dict(m) for m in messages], tools=None,
                                     documents=None, add_generation_prompt=add_generation_prompt,
                                     **self.special_tokens_map)


def _content(token) -> str | None:
    if isinstance(token, str):
        return token
    if isinstance(token, dict) and isinstance(token.get("content"), str):
        return token["content"]
    return None


def _declared(settings: dict, specials: dict[str, str]) -> list[tuple[str, bool]]:
    """Every token the config declares, with whether it is special: by role, in
    added_tokens_decoder, and in the lists transformers adds as special tokens."""
    out = [(token, True) for token in specials.values()]
    decoder = settings.get("added_tokens_decoder") or {}
    for token in (decoder.values() if isinstance(decoder, dict) else [None]):
        special = token.get("special", False) if isinstance(token, dict) else True
        out.append((_content(token) or "\x00unreadable", bool(special)))
    for name in ("additional_special_tokens", "extra_special_tokens"):
        more = settings.get(name) or []
        for token in (more.values() if isinstance(more, dict) else
                      more if isinstance(more, list) else [None]):
            out.append((_content(token) or "\x00unreadable", True))
    return out


def _template(folder: Path, settings: dict) -> str | None:
    """The default chat template: `chat_template.jinja` (transformers 5 saves it so) or the
    config's own string; a list of named templates picks "default" as transformers does."""
    path = folder / "chat_template.jinja"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    template = settings.get("chat_template") if isinstance(settings, dict) else None
    if isinstance(template, list):
        template = next((t.get("template") for t in template
                         if isinstance(t, dict) and t.get("name") == "default"), None)
    return template if isinstance(template, str) else None


def _compile(template: str):
    """jinja2's immutable sandbox with transformers' options and helpers."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    class Namespace(jinja2.utils.Namespace):
        """No dunder or private names on a namespace (transformers' TemplateNamespace)."""

        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"a namespace name may not start with _: "
                                                      f"{name!r}")

    class Dict:
        """`dict(...)` and `dict.fromkeys(...)` and nothing else (transformers' TemplateDict)."""

        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["namespace"] = Namespace
    env.globals["dict"] = Dict()
    return env.from_string(template)
