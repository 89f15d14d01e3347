"""Prompt embeddings the A1111 way, on our own path instead of `pipe.encode_prompt`.

Attention weights with mean restore ("Original" emphasis), `BREAK`, 75-token chunks with comma
backtrack, clip skip (A1111 numbering), and prompt editing/alternation as per-step embeddings.
Rules from A1111 1.10 `sd_hijack_clip.py`/`sd_emphasis.py`, reimplemented (sd_local.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagegen.prompt.a1111 import BREAK, parse_prompt_attention
from imagegen.prompt.a1111_schedule import prompt_at_step, prompt_schedule

COMMA_PADDING_BACKTRACK = 20  # A1111 option `comma_padding_backtrack` default


@dataclass
class Chunk:
    ids: list[int]  # model_max_length ids: BOS, tokens, EOS, padding
    multipliers: list[float]


def tokenize_weighted(tokenizer: Any, text: str, runs: dict[int, int] | None = None) -> list[Chunk]:
    """Split a prompt into 77-token chunks carrying per-token attention multipliers.

    ``runs``: first token id -> length of a textual-inversion embedding's token run, which A1111
    never splits across chunks."""
    chunk_len = tokenizer.model_max_length - 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    comma = comma if comma != tokenizer.unk_token_id else None
    parsed = parse_prompt_attention(text)
    pieces = [t for t, w in parsed if not (t == BREAK and w == -1)]
    encoded = iter(tokenizer(pieces, truncation=False, add_special_tokens=False)["input_ids"] if pieces else [])

    chunks: list[Chunk] = []
    tokens: list[int] = []
    mults: list[float] = []
    last_comma = -1

    def next_chunk() -> None:
        nonlocal tokens, mults, last_comma
        fill = chunk_len - len(tokens)
        ids = [bos] + tokens + [eos] * fill + [eos]
        # Everything after the first EOS becomes the pad token (matters where pad != EOS, e.g. SDXL's 2nd).
        first_eos = ids.index(eos)
        ids = ids[: first_eos + 1] + [pad] * (len(ids) - first_eos - 1)
        chunks.append(Chunk(ids, [1.0] + mults + [1.0] * fill + [1.0]))
        tokens, mults, last_comma = [], [], -1

    for piece, weight in parsed:
        if piece == BREAK and weight == -1:
            next_chunk()
            continue
        for token in next(encoded):
            if comma is not None and token == comma:
                last_comma = len(tokens)
            elif len(tokens) == chunk_len and last_comma != -1 and len(tokens) - last_comma <= COMMA_PADDING_BACKTRACK:
                # A full chunk whose last comma is near the end: carry the words after it over.
                cut = last_comma + 1
                moved, moved_mults = tokens[cut:], mults[cut:]
                tokens, mults = tokens[:cut], mults[:cut]
                next_chunk()
                tokens, mults = moved, moved_mults
            if len(tokens) == chunk_len:
                next_chunk()
            if runs and token in runs and len(tokens) + runs[token] > chunk_len:
                next_chunk()
            tokens.append(token)
            mults.append(weight)
    if tokens or not chunks:
        next_chunk()
    return chunks


def torch_no_grad(fn):  # keeps torch out of import time
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


class PromptEncoder:
    """Encodes prompts with the pipeline's tokenizer(s) and text encoder(s), cached per text."""

    def __init__(self, pipe: Any, clip_skip: int | None = None, embeddings: Any = None):
        self.pipe = pipe
        self.embeddings = embeddings  # local_embeddings.Embeddings loaded into this pipeline
        self.clip_skip = clip_skip or 1  # A1111 numbering: 1 = last layer
        self.is_sdxl = getattr(pipe, "text_encoder_2", None) is not None
        self._cache: dict[str, tuple[Any, Any]] = {}

    def encode(self, text: str) -> tuple[Any, Any]:
        """(embeddings (1, 77*k, C), pooled (1, P) for SDXL else None)."""
        if text not in self._cache:
            self._cache[text] = self._encode(text)
        return self._cache[text]

    def _encode(self, text: str) -> tuple[Any, Any]:
        import torch

        pipe = self.pipe
        pairs = [(pipe.tokenizer, pipe.text_encoder)]
        if self.is_sdxl:
            pairs = [(t, e) for t, e in [(pipe.tokenizer, pipe.text_encoder),
                                         (pipe.tokenizer_2, pipe.text_encoder_2)] if e is not None]
        parts, pooled = [], None
        embeddings = self.embeddings if self.embeddings is not None and self.embeddings.vectors else None
        if embeddings is not None:
            text = embeddings.expand(text)
        for index, (tokenizer, encoder) in enumerate(pairs):
            runs = embeddings.runs(tokenizer) if embeddings is not None else None
            chunks = tokenize_weighted(tokenizer, text, runs)
            zs = []
            for number, chunk in enumerate(chunks):
                z, chunk_pooled = self._encode_chunk(encoder, chunk)
                zs.append(z)
                if self.is_sdxl and index == len(pairs) - 1 and number == 0:
                    pooled = chunk_pooled  # A1111 takes the pooled output of the first chunk
            parts.append(zs)
        if len(parts) == 1:
            return torch.cat(parts[0], dim=1), None
        # SDXL: both encoders see the same chunks (same tokenizer vocab); join features per chunk.
        joined = [torch.cat(pair, dim=-1) for pair in zip(*parts, strict=True)]
        return torch.cat(joined, dim=1), pooled

    @torch_no_grad
    def _encode_chunk(self, encoder: Any, chunk: Chunk) -> tuple[Any, Any]:
        import torch

        device = encoder.device
        ids = torch.tensor([chunk.ids], device=device)
        out = encoder(ids, output_hidden_states=True)
        if self.is_sdxl:
            # A1111 (and diffusers) use the penultimate layer, without the final layer norm, for SDXL.
            z = out.hidden_states[-2]
            pooled = out[0] if out[0].ndim == 2 else None
        elif self.clip_skip > 1:
            z = out.hidden_states[-self.clip_skip]
            z = getattr(encoder, "text_model", encoder).final_layer_norm(z)
            pooled = None
        else:
            z, pooled = out.last_hidden_state, None
        multipliers = torch.tensor(chunk.multipliers, device=device, dtype=z.dtype)
        if any(m != 1.0 for m in chunk.multipliers):
            # "Original" emphasis: scale token vectors, then restore the chunk's mean.
            original_mean = z.mean()
            z = z * multipliers[None, :, None]
            z = z * (original_mean / z.mean())
        return z, pooled


@dataclass
class Conditioning:
    """Embeddings for one stretch of steps (prompt editing changes them mid-run)."""

    end_step: int
    cond: Any
    uncond: Any
    pooled: Any = None
    uncond_pooled: Any = None


class PromptPlan:
    """Per-step conditionings for a prompt/negative pair over ``steps`` sampling steps."""

    def __init__(self, encoder: PromptEncoder, prompt: str, negative: str, steps: int, batch: int,
                 dtype: Any = None, hires_steps: int | None = None):
        import torch

        pos = prompt_schedule(prompt, steps, hires_steps)
        neg = prompt_schedule(negative, steps, hires_steps)
        ends = sorted({end for end, _ in pos} | {end for end, _ in neg})
        encoded = {text: encoder.encode(text) for _, text in pos + neg}
        chunks = max(z.shape[1] for z, _ in encoded.values())
        empty, _ = encoder.encode("")

        def padded(z):
            # cond and uncond must have equal length: pad with empty-prompt chunks (A1111 pad_cond).
            missing = (chunks - z.shape[1]) // empty.shape[1]
            z = torch.cat([z] + [empty] * missing, dim=1) if missing else z
            z = z.repeat(batch, 1, 1)
            return z.to(dtype) if dtype is not None else z

        def pool(p):
            if p is None:
                return None
            p = p.repeat(batch, 1)
            return p.to(dtype) if dtype is not None else p

        self.segments = []
        for end in ends:
            ptext, ntext = prompt_at_step(pos, end), prompt_at_step(neg, end)
            (pz, pp), (nz, np_) = encoded[ptext], encoded[ntext]
            self.segments.append(Conditioning(end, padded(pz), padded(nz), pool(pp), pool(np_)))
        self.scheduled = len(self.segments) > 1

    def at(self, step: int) -> Conditioning:
        """The conditioning for 1-based sampling step ``step``."""
        for segment in self.segments:
            if step <= segment.end_step:
                return segment
        return self.segments[-1]

    def pipeline_kwargs(self) -> dict[str, Any]:
        first = self.segments[0]
        kwargs = {"prompt_embeds": first.cond, "negative_prompt_embeds": first.uncond}
        if first.pooled is not None:
            kwargs["pooled_prompt_embeds"] = first.pooled
            kwargs["negative_pooled_prompt_embeds"] = first.uncond_pooled
        return kwargs

    def step_tensors(self, pipe: Any, step: int) -> dict[str, Any]:
        """Tensors a step-end callback returns so the next step uses step ``step``'s prompt."""
        import torch

        segment = self.at(step)
        cfg = getattr(pipe, "do_classifier_free_guidance", True)
        out = {"prompt_embeds": torch.cat([segment.uncond, segment.cond]) if cfg else segment.cond}
        if segment.pooled is not None:
            out["add_text_embeds"] = (torch.cat([segment.uncond_pooled, segment.pooled]) if cfg
                                      else segment.pooled)
        return out

