"""The one-time GGUF -> safetensors conversion of the bundled model, for real: the folder vLLM
loads gives the GGUF model's tokens and logits, and is not converted again. The conversion's
logic on a stand-in converter: tests/unit/test_vllm_server.py."""

from __future__ import annotations

import json
import time

import pytest

from engine import convert


@pytest.mark.slow
def test_real_conversion_matches_the_gguf_model(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ingest.tokenizers import embedded_model_file

    dest = tmp_path / "models" / "smollm2"
    t0 = time.monotonic()
    folder = convert.ensure_safetensors_model(dest)
    print(f"\nconversion: {time.monotonic() - t0:.1f} s")
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", convert.MARKER} <= names
    template = (folder / "chat_template.jinja").read_text() if "chat_template.jinja" in names \
        else json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template", "")
    assert "<|im_start|>" in template
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"

    gguf = embedded_model_file()
    ref_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with convert._quiet_gguf():
        ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                   dtype=torch.bfloat16).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert model.dtype == torch.bfloat16
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ref_tok.apply_chat_template(messages, tokenize=False,
                                               add_generation_prompt=True)
    ids = tok(text, return_tensors="pt")["input_ids"]
    assert ids.tolist() == ref_tok(text, return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        got, want = model(ids).logits[0], ref(ids).logits[0]
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    assert torch.allclose(got.float(), want.float(), atol=1e-2)

    def no_second_conversion(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(convert, "_convert", no_second_conversion)
    t0 = time.monotonic()
    assert convert.ensure_safetensors_model(dest) == folder
    assert time.monotonic() - t0 < 5
