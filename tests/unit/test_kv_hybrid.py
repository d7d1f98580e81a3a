"""The embedded engine's KV buffer in Llama 4's hybrid shape (issue 29, item 1): the chunked
local layers keep only their current attention chunk, the global layers every token, and what
comes out is what transformers' own forward gives, across chunk edges, with prefix blocks reused
from host memory and from disk, and through decoding over an edge. KV memory is the planner's.

The model is a tiny random Llama4ForCausalLM built in-process (fp32, 8 layers, 32-token chunks,
so edges fall inside short prompts); on CPU, as every unit test: the CUDA path is the same code
on another device, checked here only where a GPU can be stood in for (its free memory)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.arch import arch_from_config  # noqa: E402
from engine.generate import decode, prefill, save_blocks  # noqa: E402
from engine.kvbuffer import KVBuffer, local_layers  # noqa: E402
from engine.kvcache import PrefixCache  # noqa: E402
from engine.types import EngineError  # noqa: E402

CHUNK, LAYERS, VOCAB = 32, 8, 512


@pytest.fixture(scope="module")
def model():
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    cfg = Llama4TextConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, intermediate_size_mlp=128,
        num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=1,
        max_position_embeddings=4096, attention_chunk_size=CHUNK, floor_scale=16,
        attn_temperature_tuning=True, attn_scale=0.1, no_rope_layer_interval=4,
        use_qk_norm=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Llama4ForCausalLM(cfg).eval()


def ids_of(n: int, seed: int = 1) -> list[int]:
    return torch.randint(3, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@torch.inference_mode()
def reference(model, ids: list[int]) -> torch.Tensor:
    """transformers' own one-shot forward (its chunked mask, no cache of ours)."""
    return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def test_the_config_has_local_and_global_layers(model):
    chunk, local = local_layers(model.config)
    assert chunk == CHUNK and sorted(local) == [0, 1, 2, 4, 5, 6]  # 3 and 7 are global (NoPE)


@pytest.mark.parametrize("piece", [10_000, CHUNK, 20, 7])  # one token a step: decoding
def test_chunked_prefill_on_the_hybrid_buffer_equals_one_shot(model, piece):
    ids = ids_of(3 * CHUNK + 11)
    result = prefill(model, ids, piece)
    assert result.buffer.chunk == CHUNK and result.buffer.local_store.shape[4] == CHUNK
    assert float((result.logits - reference(model, ids)).abs().max()) < 1e-4


def test_kv_memory_is_the_planners_global_figure_plus_one_chunk_per_local_layer(model):
    """Issue 29's target on the tiny shape: KV per token of capacity is the planner's
    global-layers figure; the local layers add a fixed chunk each, whatever the length."""
    arch = arch_from_config(model.config.to_dict(), "tiny")
    per_token = arch.kv_bytes_per_token_layer(4) * arch.n_global  # fp32
    local = arch.kv_bytes_per_token_layer(4) * arch.n_local * CHUNK
    for capacity in (100, 1000, 10_000):
        buffer = KVBuffer.for_model(model, capacity)
        assert buffer.nbytes == per_token * capacity + local
        assert buffer.nbytes == KVBuffer.bytes_needed(model, capacity)
        full = KVBuffer.for_model(model, capacity, hybrid=False)
        assert full.nbytes == arch.kv_bytes_per_token_layer(4) * LAYERS * capacity
    assert arch.n_global == 2 and arch.n_local == 6


def test_prefix_blocks_from_memory_and_disk_give_the_same_logits_and_answer(model, tmp_path):
    """Blocks are copied out while the local layers still hold them; a later prompt that shares
    the prefix loads every block into the global layers and its last chunk into the local ones,
    from host memory or, in another cache (a restart), from disk."""
    ids = ids_of(4 * CHUNK + 21)  # reuse ends mid-chunk: the local layers need its first half
    ref = reference(model, ids)
    cache = PrefixCache("tiny-llama4", 16, tmp_path / "kv")
    cold = prefill(model, ids, 24, cache)
    # stored in the prefix cache as they completed, every layer, in host memory
    assert cold.cached_tokens == 0 and cold.stored == len(ids) // 16
    held = [cache.memory.get(k) for k in cache.keys(ids)]
    assert all(b is not None and b.kv.device.type == "cpu" and b.kv.shape[1] == LAYERS
               for b in held)
    save_blocks(cache, cold)
    warm = prefill(model, ids, 24, cache)
    restarted = PrefixCache("tiny-llama4", 16, tmp_path / "kv")
    disk = prefill(model, ids, 13, restarted)
    cached = (len(ids) - 1) // 16 * 16
    assert cached % CHUNK == 16
    assert warm.cached_tokens == disk.cached_tokens == cached and restarted.hits_disk > 0
    for result in (cold, warm, disk):
        assert float((result.logits - ref).abs().max()) < 1e-4
    # other prompts sharing a prefix that ends on a chunk edge, and mid-chunk
    for kept in (2 * CHUNK, 2 * CHUNK + 16):
        other = ids[:kept] + ids_of(CHUNK + 9, seed=kept)
        shared = prefill(model, other, 24, cache)
        assert shared.cached_tokens == kept
        assert float((shared.logits - reference(model, other)).abs().max()) < 1e-4


def test_decoding_across_a_chunk_edge_follows_the_one_shot_forward(model, tmp_path):
    ids = ids_of(3 * CHUNK - 4)  # the 5th generated token starts a new chunk
    tokens = list(decode(model, prefill(model, ids, 16), 10, frozenset()))
    expected, seq = [], list(ids)
    for _ in range(10):
        expected.append(int(reference(model, seq).argmax()))
        seq.append(expected[-1])
    assert tokens == expected


def test_a_block_size_that_does_not_divide_the_chunk_keeps_every_layer(model, tmp_path):
    """A 12-token block would straddle a 32-token chunk edge: the buffer keeps all layers'
    KV (a plain model's shape), and reuse is still exact."""
    ids = ids_of(3 * CHUNK)
    cache = PrefixCache("tiny-llama4-12", 12, tmp_path / "kv")
    cold = prefill(model, ids, 20, cache)
    assert cold.buffer.chunk == 0 and cold.stored == 0
    save_blocks(cache, cold)
    warm = prefill(model, ids, 20, cache)
    assert warm.cached_tokens == (len(ids) - 1) // 12 * 12
    assert float((warm.logits - reference(model, ids)).abs().max()) < 1e-4


def test_a_piece_across_a_chunk_edge_is_refused_not_silently_wrong(model):
    buffer = KVBuffer.for_model(model, 100)
    with pytest.raises(ValueError, match="crosses the attention chunk edge at 32"):
        model(input_ids=torch.tensor([ids_of(40)]), cache=buffer.cache, use_cache=True)


def test_a_context_larger_than_the_gpus_free_memory_is_refused_in_the_planners_words(
        model, monkeypatch):
    """No GPU here: its free memory is stood in for, the check is the real one."""
    from engine.embedded import ACTIVATION_HEADROOM, EmbeddedBackend

    backend = EmbeddedBackend.__new__(EmbeddedBackend)
    backend.resident, backend.prefix_cache = None, None
    backend.lm = type("LM", (), {"model": model})()
    per_token = KVBuffer.bytes_needed(model, 2) - KVBuffer.bytes_needed(model, 1)
    fixed = KVBuffer.bytes_needed(model, 0) - per_token
    free = ACTIVATION_HEADROOM + fixed + 5120 * per_token  # 5,000 + max_tokens, rounded up
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (free, 80 << 30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "NVIDIA H100 80GB HBM3")
    backend._check_kv_fits(5000)
    with pytest.raises(EngineError) as err:
        backend._check_kv_fits(6000)
    message = str(err.value)
    assert "6,000 tokens need" in message and f"({per_token:,} bytes per token)" in message
    assert "about 5,120 tokens fit" in message and "\n" not in message
    # a 12-token block cannot keep to 32-token chunks: every layer keeps every token, and the
    # check counts that buffer, not the hybrid one
    backend.prefix_cache = PrefixCache("tiny-12", 12, None)
    full = KVBuffer.bytes_needed(model, 2, hybrid=False) - KVBuffer.bytes_needed(
        model, 1, hybrid=False)
    with pytest.raises(EngineError, match=f"5,000 tokens need .* \\({full:,} bytes per token\\)"):
        backend._check_kv_fits(5000)


# --- --device on the command line ----------------------------------------------------------------

def test_device_cuda_without_a_gpu_is_one_line(tmp_path, bundled_model):
    from helpers import db_cli, one_line_error

    home = bundled_model.parents[1]
    (tmp_path / "p.txt").write_text("hello")
    prompt = ("-p", str(tmp_path / "p.txt"))
    line = one_line_error(db_cli("complete", "--device", "cuda", *prompt, home=home),
                          "--device cuda", "sees no CUDA GPU here")
    assert "--device cpu" in line
    from engine.embedded_model import load_model

    with pytest.raises(EngineError, match=r"^unknown device 'tpu': auto \| cuda \| cpu$"):
        load_model(bundled_model, device="tpu")


def test_device_cpu_and_auto_answer_on_the_cpu_and_say_where(tmp_path, bundled_model):
    import json

    from helpers import db_cli

    home = bundled_model.parents[1]
    (tmp_path / "p.txt").write_text("Say hi")
    done = db_cli("complete", "--device", "cpu", "--max-tokens", "3", "--json",
                  "-p", str(tmp_path / "p.txt"), home=home)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["usage"]["completion_tokens"] >= 1
    from engine.embedded import EmbeddedBackend

    assert EmbeddedBackend(bundled_model, device="auto").describe()["device"] == "cpu"


# --- the device tier: the last buffer, reused in place ----------------------------------------

def _close(result, model, ids) -> float:
    return float((result.logits - reference(model, ids)).abs().max())


def test_a_follow_up_reuses_the_resident_buffer_in_place(model):
    """The next prompt sharing the prefix starts from the buffer the last one left on the
    device: the same tensors, nothing copied, the shared blocks counted as cached."""
    from engine.generate import Resident

    cache = PrefixCache("tiny-res-1", 16, None)
    first = ids_of(3 * CHUNK + 20)
    a = prefill(model, first, 24, cache)
    list(decode(model, a, 5, frozenset()))  # the answer's tokens are in the buffer too
    save_blocks(cache, a)
    store = a.buffer.store
    follow = first[:3 * CHUNK + 16] + ids_of(30, seed=3)  # shares 112 tokens, mid-chunk
    b = prefill(model, follow, 24, cache, resident=Resident(first, a.buffer))
    assert b.buffer is a.buffer and b.buffer.store is store
    assert b.cached_tokens == 3 * CHUNK + 16
    assert _close(b, model, follow) < 1e-4


@pytest.mark.parametrize("host_kept", [True, False])
def test_a_shorter_shared_prefix_reloads_only_the_local_layers_chunk(model, host_kept):
    """The shared prefix ends in an earlier chunk than the resident's last: the global layers
    keep theirs in place, the local layers' chunk comes from the host tier; without it the reuse
    stops at that chunk's start (where the local layers need nothing)."""
    from engine.generate import Resident

    cache = PrefixCache(f"tiny-res-2-{host_kept}", 16, None)
    first = ids_of(4 * CHUNK + 10)
    a = prefill(model, first, 24, cache)
    save_blocks(cache, a)
    if not host_kept:
        cache.memory.clear()
    follow = first[:CHUNK + 16] + ids_of(40, seed=4)
    b = prefill(model, follow, 24, cache, resident=Resident(first, a.buffer))
    assert b.buffer is a.buffer
    assert b.cached_tokens == (CHUNK + 16 if host_kept else CHUNK)
    assert _close(b, model, follow) < 1e-4


def test_when_the_host_tier_holds_more_the_resident_buffer_is_let_go(model):
    from engine.generate import Resident

    cache = PrefixCache("tiny-res-3", 16, None)
    older = ids_of(3 * CHUNK + 3)
    save_blocks(cache, prefill(model, older, 24, cache))
    other = ids_of(2 * CHUNK, seed=5)
    latest = prefill(model, other, 24, cache)
    resident = Resident(other, latest.buffer)
    again = older[:3 * CHUNK] + [7]
    c = prefill(model, again, 24, cache, resident=resident)
    assert resident.buffer is None and c.buffer is not latest.buffer
    assert c.cached_tokens == 3 * CHUNK and _close(c, model, again) < 1e-4


def test_the_backend_keeps_its_last_buffer_for_the_next_question(bundled_model):
    """End to end on the bundled model: the second question over the same prefix reports the
    prefix cached and runs on the very buffer the first left."""
    from engine.embedded import EmbeddedBackend
    from engine.types import CompletionRequest

    backend = EmbeddedBackend(bundled_model, dtype="float32", kv_dir=None)
    prefix = "".join(f"Crate {i} holds {i * 7 % 13} apples.\n" for i in range(12))
    first = backend.stream(CompletionRequest(prompt="Which crate holds 5?", prefix=prefix,
                                             max_tokens=4))
    "".join(first)
    buffer = backend.resident.buffer
    second = backend.stream(CompletionRequest(prompt="And which holds 6?", prefix=prefix,
                                              max_tokens=4))
    "".join(second)
    assert backend.resident.buffer is buffer
    assert second.result.usage.cached_tokens >= len(backend.encode(CompletionRequest(
        prompt="", prefix=prefix))) - 32


def test_blocks_stored_during_prefill_keep_to_the_memory_budget(model):
    """Blocks leave for the prefix cache piece by piece; nothing holds them beside it, so host
    memory is the memory tier's budget, whatever the prompt's length."""
    one = KVBuffer.bytes_needed(model, 16, hybrid=False) // 16 * 16  # a block, every layer
    cache = PrefixCache("tiny-budget", 16, None, memory_bytes=3 * one)
    ids = ids_of(6 * CHUNK)
    result = prefill(model, ids, 24, cache)
    assert result.stored == len(ids) // 16 and len(cache.memory) == 3
    assert cache.memory.bytes <= 3 * one and not hasattr(result, "captured")


def test_a_follow_up_needing_more_room_gets_a_new_buffer_not_a_doubled_one(model):
    from engine.generate import ROOM, Resident

    cache = PrefixCache("tiny-room", 16, None)
    first = ids_of(2 * CHUNK + 8)
    a = prefill(model, first, 24, cache, capacity=len(first))
    save_blocks(cache, a)
    follow = first[:2 * CHUNK] + ids_of(20, seed=9)
    # a little longer than the last: the room a new buffer is given takes it, in place
    a2 = prefill(model, follow, 24, cache, capacity=len(follow) + 64,
                 resident=Resident(first, a.buffer))
    assert a2.buffer is a.buffer and a2.buffer.capacity == ROOM
    # past that room: a new buffer, the old one let go first
    resident = Resident(follow, a2.buffer)
    b = prefill(model, follow, 24, cache, capacity=ROOM + 64, resident=resident)
    assert b.buffer is not a.buffer and resident.buffer is None
    assert b.buffer.capacity == 2 * ROOM and b.cached_tokens == (len(follow) - 1) // 16 * 16
    assert _close(b, model, follow) < 1e-4


def test_the_resident_is_kept_when_the_host_tier_lost_the_prefix_start(model):
    """The memory tier evicts a long prompt's first blocks first: the host tiers then cannot
    serve that prefix at all, so the resident buffer that shares it is the one to use."""
    from engine.generate import Resident

    cache = PrefixCache("tiny-lost", 16, None)
    doc = ids_of(3 * CHUNK)
    a = prefill(model, doc + ids_of(5, seed=10), 24, cache)
    save_blocks(cache, a)
    cache.memory._blocks.pop(cache.keys(doc)[0])  # evicted
    again = doc + ids_of(5, seed=11)  # no more room than the resident has
    b = prefill(model, again, 24, cache, resident=Resident(doc + ids_of(5, seed=10), a.buffer))
    assert b.buffer is a.buffer and b.cached_tokens == 3 * CHUNK
    assert _close(b, model, again) < 1e-4


def test_a_hybrid_buffer_attends_with_no_mask_built(model):
    """Every layer's keys are what its queries may see (the global layers' all, the local
    layers' chunk), so attention is lower-right causal SDPA and transformers builds no
    [piece x context] mask; the model's own setting is back after each call."""
    from transformers import AttentionInterface

    import engine.attention as att

    seen = []

    def spy(module, query, key, value, mask, **kwargs):
        seen.append((query.shape[2], key.shape[2], mask))
        return att.lower_right_attention(module, query, key, value, mask, **kwargs)

    AttentionInterface.register(att.NAME, spy)
    try:
        ids = ids_of(3 * CHUNK + 11)
        result = prefill(model, ids, 20)
        list(decode(model, result, 3, frozenset()))
    finally:
        AttentionInterface.register(att.NAME, att.lower_right_attention)
    assert seen and all(mask is None for *_, mask in seen)
    assert max(k for _, k, _ in seen) == len(ids) + 3  # a global layer, the third token fed
    assert {k for q, k, _ in seen if q > 1} >= {20, 32, 52}  # local chunks, a global layer
    assert model.config._attn_implementation == "sdpa"
    assert float((result.logits - reference(model, ids)).abs().max()) < 1e-4
