"""Tiny random-weight flow-match pipelines (FLUX.1, FLUX.1 Kontext, FLUX.2 klein, SD 3.5), built offline.

Every component is shrunk to a few channels; the tokenizers are made in code (a CLIP BPE, a T5
unigram and a Qwen byte-level BPE with a chat template), so nothing comes from a hub. The VAEs
keep 4 blocks (8x downsampling) so the size rules are the real ones (multiples of 16 for Flux).
Built once and kept on disk under the temp dir, keyed on this file and the library versions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.local_fixtures import WORDS, write_tokenizer

HIDDEN = 16
T5_PIECES = ["<pad>", "</s>", "<unk>", "\u2581"] + [f"\u2581{w}" for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz")
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@dataclass
class FlowModels:
    root: Path
    models_dir: Path  # IMAGEGEN_MODELS_DIR layout: Stable-diffusion/<name> folders, Lora/
    flux_dev: Path  # FluxPipeline with guidance embeddings (FLUX.1 [dev]-like)
    flux_schnell: Path  # no guidance embeddings (FLUX.1 [schnell]-like)
    kontext: Path  # FluxKontextPipeline (same transformer shape as dev)
    klein: Path  # Flux2KleinPipeline (Qwen3 text encoder), distilled
    sd3: Path  # StableDiffusion3Pipeline (two CLIPs + T5)


def write_t5_tokenizer(folder: Path):
    """A T5 tokenizer (unigram over the test words and letters) saved as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [(piece, 0.0 if index < 3 else -float(index)) for index, piece in enumerate(T5_PIECES)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                extra_ids=0, model_max_length=512)
    tokenizer.save_pretrained(folder)
    return T5TokenizerFast.from_pretrained(folder)


def write_qwen_tokenizer(folder: Path):
    """A Qwen2-style byte-level BPE tokenizer with the test words as tokens and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    from tests.local_fixtures import _bytes_to_unicode

    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        left = "\u0120" + word[0]  # byte-level space
        if left not in vocab:
            merges.append(("\u0120", word[0]))
            vocab[left] = len(vocab)
        for char in word[1:]:
            if left + char not in vocab:
                merges.append((left, char))
                vocab[left + char] = len(vocab)
            left = left + char
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(QWEN_SPECIALS)
    tokenizer = Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None, bos_token=None, model_max_length=512)
    tokenizer.chat_template = QWEN_CHAT
    tokenizer.save_pretrained(folder)
    return Qwen2TokenizerFast.from_pretrained(folder)


def _clip_pair(folder: Path, with_projection: bool = False, projection: int = HIDDEN):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    write_tokenizer(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=projection)
    torch.manual_seed(0)
    model = (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)
    return tokenizer, model


def _t5(folder: Path, d_model: int = HIDDEN):
    import torch
    from transformers import T5Config, T5EncoderModel

    tokenizer = write_t5_tokenizer(folder)
    torch.manual_seed(1)
    encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=32,
                                      num_layers=2, num_heads=2, relative_attention_num_buckets=8,
                                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    return tokenizer, encoder


def _vae(latent_channels: int, cls_name: str = "AutoencoderKL", **extra):
    import diffusers
    import torch

    torch.manual_seed(2)
    cls = getattr(diffusers, cls_name)
    return cls(in_channels=3, out_channels=3, block_out_channels=(4, 4, 4, 4), layers_per_block=1,
               norm_num_groups=2, latent_channels=latent_channels, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, sample_size=32, **extra)


def build_flux(folder: Path, *, guidance: bool, kontext: bool = False):
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxPipeline,
        FluxTransformer2DModel,
    )

    tokenizer, text_encoder = _clip_pair(folder / "tokenizer")
    tokenizer_2, text_encoder_2 = _t5(folder / "tokenizer_2")
    torch.manual_seed(3)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=HIDDEN, pooled_projection_dim=HIDDEN, guidance_embeds=guidance,
        axes_dims_rope=[2, 2, 4])
    vae = _vae(4, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=guidance, base_shift=0.5,
                                                max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    cls = FluxKontextPipeline if kontext else FluxPipeline
    pipe = cls(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
               text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def build_klein(folder: Path, *, distilled: bool = True):
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = write_qwen_tokenizer(folder / "tokenizer")
    torch.manual_seed(4)
    # 28 layers so the pipeline's default hidden-state layers (9, 18, 27) exist, as in the real 4B.
    text_encoder = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=16, num_hidden_layers=28,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024,
        tie_word_embeddings=True))
    torch.manual_seed(5)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=3 * HIDDEN, timestep_guidance_channels=32,
        axes_dims_rope=[2, 2, 2, 2], guidance_embeds=False)
    torch.manual_seed(6)
    vae = AutoencoderKLFlux2(in_channels=3, out_channels=3, block_out_channels=(4, 4, 4, 4), layers_per_block=1,
                             norm_num_groups=2, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
                             up_block_types=("UpDecoderBlock2D",) * 4, sample_size=32,
                             use_quant_conv=False, use_post_quant_conv=False)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    pipe = Flux2KleinPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                              transformer=transformer, is_distilled=distilled)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def build_sd3(folder: Path):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer, text_encoder = _clip_pair(folder / "tokenizer", with_projection=True)
    tokenizer_2, text_encoder_2 = _clip_pair(folder / "tokenizer_2", with_projection=True)
    tokenizer_3, text_encoder_3 = _t5(folder / "tokenizer_3", d_model=2 * HIDDEN)
    torch.manual_seed(7)
    transformer = SD3Transformer2DModel(
        sample_size=4, patch_size=1, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=2 * HIDDEN, caption_projection_dim=16, pooled_projection_dim=2 * HIDDEN, out_channels=4,
        pos_embed_max_size=16)
    vae = _vae(4, shift_factor=0.0609, scaling_factor=1.5305)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    pipe = StableDiffusion3Pipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3, transformer=transformer)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def _cache_key() -> str:
    import diffusers
    import torch
    import transformers

    text = Path(__file__).read_bytes() + f"{diffusers.__version__}|{transformers.__version__}|{torch.__version__}".encode()
    return hashlib.sha256(text).hexdigest()[:16]


def build_flow_models(root: Path | None = None) -> FlowModels:
    """Build (or reuse from the temp dir) every tiny flow-match pipeline."""
    root = root or Path(tempfile.gettempdir()) / f"imagegen-flow-fixtures-{_cache_key()}"
    ckpt = root / "models" / "Stable-diffusion"
    models = FlowModels(root, root / "models", ckpt / "tiny_flux_dev", ckpt / "tiny_flux_schnell",
                        ckpt / "tiny_kontext", ckpt / "tiny_klein", ckpt / "tiny_sd3")
    if (root / ".complete").is_file():
        return models
    partial = Path(tempfile.mkdtemp(prefix="imagegen-flow-build-"))
    pckpt = partial / "models" / "Stable-diffusion"
    build_flux(pckpt / "tiny_flux_dev", guidance=True)
    build_flux(pckpt / "tiny_flux_schnell", guidance=False)
    build_flux(pckpt / "tiny_kontext", guidance=True, kontext=True)
    build_klein(pckpt / "tiny_klein")
    build_sd3(pckpt / "tiny_sd3")
    (partial / "models" / "Lora").mkdir(parents=True)
    (partial / ".complete").write_text(json.dumps({"key": _cache_key()}))
    try:
        partial.rename(root)
    except OSError:  # another session finished first: use its copy
        shutil.rmtree(partial, ignore_errors=True)
    return models


def raw(folder: Path):
    """The folder loaded by plain diffusers (the reference the adapter must equal)."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe
