"""A1111 prompt embeddings on our own path: chunks, BREAK, weights, clip skip, schedules."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local._prompt import PromptEncoder, PromptPlan, tokenize_weighted  # noqa: E402

from tests.local_fixtures import raw_pipeline, tiny_models  # noqa: E402


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.set_num_threads(1)
    return raw_pipeline(tiny_models(tmp_path_factory).pipeline_dir)


def ids_of(pipe, text):
    return pipe.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_plain_prompt_embeddings_equal_diffusers_encode_prompt(pipe):
    ours, _ = PromptEncoder(pipe).encode("a red cat on a hill")
    reference = pipe.encode_prompt("a red cat on a hill", "cpu", 1, False)[0]
    assert ours.shape == (1, 77, 16)
    assert torch.equal(ours, reference)


def test_attention_weight_scales_the_token_vector_then_restores_the_mean(pipe):
    weighted, _ = PromptEncoder(pipe).encode("a (red:1.5) cat")
    plain = pipe.encode_prompt("a red cat", "cpu", 1, False)[0]
    expected = plain.clone()
    expected[0, 2] *= 1.5  # BOS, "a", "red"
    expected *= plain.mean() / expected.mean()
    assert torch.allclose(weighted, expected, atol=1e-6)
    assert not torch.allclose(weighted, plain)


def test_nested_brackets_multiply_by_1_1_per_level(pipe):
    chunk = tokenize_weighted(pipe.tokenizer, "a ((red)) [cat]")[0]
    assert chunk.multipliers[1:4] == pytest.approx([1.0, 1.21, 1 / 1.1])


def test_break_starts_a_new_chunk(pipe):
    chunks = tokenize_weighted(pipe.tokenizer, "a red cat BREAK a blue dog")
    assert len(chunks) == 2
    assert chunks[1].ids[1:4] == ids_of(pipe, "a blue dog")
    z, _ = PromptEncoder(pipe).encode("a red cat BREAK a blue dog")
    assert z.shape == (1, 154, 16)


def test_prompt_longer_than_75_tokens_is_split_into_77_token_chunks(pipe):
    text = " ".join(["cat dog"] * 50)  # 100 tokens
    chunks = tokenize_weighted(pipe.tokenizer, text)
    assert [len(c.ids) for c in chunks] == [77, 77]
    assert chunks[0].ids[1:76] == ids_of(pipe, text)[:75]
    assert chunks[1].ids[1:26] == ids_of(pipe, text)[75:]
    first_alone = pipe.encode_prompt(" ".join(["cat dog"] * 37) + " cat", "cpu", 1, False)[0]
    z, _ = PromptEncoder(pipe).encode(text)
    assert torch.equal(z[:, :77], first_alone)


def test_words_after_a_late_comma_move_to_the_next_chunk(pipe):
    text = " ".join(["cat"] * 70) + ", red dog sky sun tree car"  # the comma is token 71
    chunks = tokenize_weighted(pipe.tokenizer, text)
    comma = ids_of(pipe, ",")[0]
    assert chunks[0].ids[71] == comma and chunks[0].ids[72] == pipe.tokenizer.eos_token_id
    moved = ids_of(pipe, "red dog sky sun tree car")
    assert chunks[1].ids[1 : 1 + len(moved)] == moved


def test_clip_skip_2_is_the_penultimate_layer_through_the_final_layer_norm(pipe, monkeypatch):
    from transformers import CLIPTextModel

    ours, _ = PromptEncoder(pipe, clip_skip=2).encode("a red cat")
    plain, _ = PromptEncoder(pipe, clip_skip=1).encode("a red cat")
    # diffusers' own clip_skip (= A1111 N-1) needs `.text_model`, gone in transformers >= 5.6: shim it.
    if not hasattr(pipe.text_encoder, "text_model"):
        monkeypatch.setattr(CLIPTextModel, "text_model", property(lambda self: self), raising=False)
    reference = pipe.encode_prompt("a red cat", "cpu", 1, False, clip_skip=1)[0]
    assert torch.allclose(ours, reference, atol=1e-6)
    assert not torch.allclose(ours, plain)


def test_prompt_editing_gives_per_step_conditionings(pipe):
    encoder = PromptEncoder(pipe)
    plan = PromptPlan(encoder, "a [cat:dog:2]", "", steps=4, batch=2)
    cat, _ = encoder.encode("a cat")
    dog, _ = encoder.encode("a dog")
    assert plan.scheduled
    assert torch.equal(plan.at(1).cond[1:], cat) and torch.equal(plan.at(2).cond[:1], cat)
    assert torch.equal(plan.at(3).cond[:1], dog) and torch.equal(plan.at(4).cond[:1], dog)


def test_alternation_switches_every_step(pipe):
    encoder = PromptEncoder(pipe)
    plan = PromptPlan(encoder, "a [cat|dog]", "", steps=4, batch=1)
    cat, _ = encoder.encode("a cat")
    dog, _ = encoder.encode("a dog")
    assert [torch.equal(plan.at(step).cond, cat) for step in range(1, 5)] == [True, False, True, False]
    assert torch.equal(plan.at(2).cond, dog)


def test_cond_and_uncond_are_padded_to_the_same_length(pipe):
    encoder = PromptEncoder(pipe)
    plan = PromptPlan(encoder, " ".join(["cat"] * 100), "", steps=4, batch=1)
    empty, _ = encoder.encode("")
    segment = plan.at(1)
    assert segment.cond.shape == segment.uncond.shape == (1, 154, 16)
    assert torch.equal(segment.uncond[:, 77:], empty)
