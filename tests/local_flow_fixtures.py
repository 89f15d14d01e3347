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
    klein_base: Path  # the same weights marked not distilled (true CFG, as FLUX.2 [klein] base)
    sd3: Path  # StableDiffusion3Pipeline (two CLIPs + T5)

    @property
    def lora_dir(self) -> Path:
        return self.models_dir / "Lora"

    @property
    def dev_single(self) -> Path:
        """The dev transformer alone, as Flux weights are distributed (diffusers names)."""
        return self.models_dir / "Stable-diffusion" / "tiny_dev_single.safetensors"

    @property
    def dev_single_bfl(self) -> Path:
        """The dev transformer alone in BFL's original names (double_blocks..., img_attn.qkv)."""
        return self.models_dir / "Stable-diffusion" / "tiny_dev_bfl.safetensors"


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
        sample_size=4, patch_size=1, in_channels=16, num_layers=2, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=2 * HIDDEN, caption_projection_dim=16, pooled_projection_dim=2 * HIDDEN, out_channels=16,
        pos_embed_max_size=16)
    vae = _vae(16, shift_factor=0.0609, scaling_factor=1.5305)  # SD3's inpaint pipeline checks for 16
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    pipe = StableDiffusion3Pipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3, transformer=transformer)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


# -- LoRAs in the layouts people have -------------------------------------------------------

_ATTN = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]


def _peft_lora(transformer_cls: str, folder: Path, seed: int, targets: list[str] | str) -> dict:
    """A LoRA with random non-zero weights (rank 2, alpha 2: scale 1) as peft names it."""
    import diffusers
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    model = getattr(diffusers, transformer_cls).from_pretrained(folder / "transformer", local_files_only=True)
    torch.manual_seed(seed)
    model.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=targets, init_lora_weights=False))
    with torch.no_grad():  # random B too (peft's init leaves the LoRA's effect tiny otherwise)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.3)
    return {k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(model).items()}


def build_lora(transformer_cls: str, folder: Path, path: Path, pipeline_cls: str, seed: int = 11) -> None:
    import diffusers

    state = _peft_lora(transformer_cls, folder, seed, ["to_q", "to_k", "to_v", "to_out.0"])
    path.parent.mkdir(parents=True, exist_ok=True)
    getattr(diffusers, pipeline_cls).save_lora_weights(path.parent, transformer_lora_layers=state,
                                                       weight_name=path.name, safe_serialization=True)


def build_flux_loras(folder: Path, lora_dir: Path) -> None:
    """One FLUX.1 LoRA in four layouts (diffusers/peft, ai-toolkit, kohya, XLabs), plus a second
    diffusers one. q/k/v share their down matrix, so the fused kohya/XLabs qkv layers hold the
    same weights; the double blocks' attention and the single blocks' output are trained."""
    import torch
    from diffusers import FluxPipeline
    from safetensors.torch import save_file

    targets = r"(transformer_blocks\.\d+\.attn\.(" + "|".join(t.replace(".", r"\.") for t in _ATTN) + r"))" \
        r"|(single_transformer_blocks\.\d+\.proj_out)"
    state = _peft_lora("FluxTransformer2DModel", folder, 21, targets)
    for key in list(state):
        for first, others in (("to_q", ("to_k", "to_v")), ("add_q_proj", ("add_k_proj", "add_v_proj"))):
            if f".attn.{first}.lora_A" in key:
                for other in others:
                    state[key.replace(f".{first}.", f".{other}.")] = state[key].clone()
    lora_dir.mkdir(parents=True, exist_ok=True)
    FluxPipeline.save_lora_weights(lora_dir, transformer_lora_layers=state, weight_name="flux_diffusers.safetensors",
                                   safe_serialization=True)
    save_file({f"transformer.{k}": v for k, v in state.items()}, str(lora_dir / "flux_aitoolkit.safetensors"))
    kohya, xlabs = {}, {}
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks.")})
    for i in blocks:
        base = f"transformer_blocks.{i}.attn."
        for kname, xname, names in (("img_attn_qkv", "qkv_lora1", ["to_q", "to_k", "to_v"]),
                                    ("txt_attn_qkv", "qkv_lora2", ["add_q_proj", "add_k_proj", "add_v_proj"]),
                                    ("img_attn_proj", "proj_lora1", ["to_out.0"]),
                                    ("txt_attn_proj", "proj_lora2", ["to_add_out"])):
            down = state[f"{base}{names[0]}.lora_A.weight"]
            up = torch.cat([state[f"{base}{n}.lora_B.weight"] for n in names])
            kohya[f"lora_unet_double_blocks_{i}_{kname}.lora_down.weight"] = down
            kohya[f"lora_unet_double_blocks_{i}_{kname}.lora_up.weight"] = up
            kohya[f"lora_unet_double_blocks_{i}_{kname}.alpha"] = torch.tensor(2.0)
            xlabs[f"double_blocks.{i}.processor.{xname}.down.weight"] = down
            xlabs[f"double_blocks.{i}.processor.{xname}.up.weight"] = up
    for key in [k for k in state if k.startswith("single_transformer_blocks.") and "lora_A" in k]:
        i = int(key.split(".")[1])
        down, up = state[key], state[key.replace("lora_A", "lora_B")]
        kohya[f"lora_unet_single_blocks_{i}_linear2.lora_down.weight"] = down
        kohya[f"lora_unet_single_blocks_{i}_linear2.lora_up.weight"] = up
        kohya[f"lora_unet_single_blocks_{i}_linear2.alpha"] = torch.tensor(2.0)
        xlabs[f"single_blocks.{i}.processor.proj_lora.down.weight"] = down
        xlabs[f"single_blocks.{i}.processor.proj_lora.up.weight"] = up
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(lora_dir / "flux_kohya.safetensors"))
    save_file({k: v.contiguous() for k, v in xlabs.items()}, str(lora_dir / "flux_xlabs.safetensors"))
    second = _peft_lora("FluxTransformer2DModel", folder, 22, ["to_q", "to_v"])
    FluxPipeline.save_lora_weights(lora_dir, transformer_lora_layers=second, weight_name="flux_detail.safetensors",
                                   safe_serialization=True)


def to_bfl(transformer_file: Path, target: Path) -> None:
    """A diffusers FLUX.1 transformer file rewritten in BFL's original names (what
    black-forest-labs ships as flux1-dev.safetensors), fused qkv and all."""
    import torch
    from safetensors.torch import load_file, save_file

    sd = load_file(str(transformer_file))
    out: dict = {}

    def move(new: str, old: str) -> None:
        for suffix in ("weight", "bias"):
            if f"{old}.{suffix}" in sd:
                out[f"{new}.{suffix}"] = sd.pop(f"{old}.{suffix}")

    def cat(new: str, olds: list[str]) -> None:
        for suffix in ("weight", "bias"):
            if f"{olds[0]}.{suffix}" in sd:
                out[f"{new}.{suffix}"] = torch.cat([sd.pop(f"{o}.{suffix}") for o in olds])

    def swap_halves(value):  # diffusers' AdaLayerNormContinuous keeps (scale, shift); BFL (shift, scale)
        shift, scale = value.chunk(2, dim=0)
        return torch.cat([scale, shift], dim=0)

    for a, b in (("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
                 ("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
                 ("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
                 ("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
                 ("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
                 ("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
                 ("txt_in", "context_embedder"), ("img_in", "x_embedder"), ("final_layer.linear", "proj_out")):
        move(a, b)
    for suffix in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{suffix}"] = swap_halves(sd.pop(f"norm_out.linear.{suffix}"))
    doubles = sorted({int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks.")})
    for i in doubles:
        d, b = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        move(b + "img_mod.lin", d + "norm1.linear")
        move(b + "txt_mod.lin", d + "norm1_context.linear")
        cat(b + "img_attn.qkv", [d + "attn.to_q", d + "attn.to_k", d + "attn.to_v"])
        cat(b + "txt_attn.qkv", [d + "attn.add_q_proj", d + "attn.add_k_proj", d + "attn.add_v_proj"])
        out[b + "img_attn.norm.query_norm.scale"] = sd.pop(d + "attn.norm_q.weight")
        out[b + "img_attn.norm.key_norm.scale"] = sd.pop(d + "attn.norm_k.weight")
        out[b + "txt_attn.norm.query_norm.scale"] = sd.pop(d + "attn.norm_added_q.weight")
        out[b + "txt_attn.norm.key_norm.scale"] = sd.pop(d + "attn.norm_added_k.weight")
        move(b + "img_attn.proj", d + "attn.to_out.0")
        move(b + "txt_attn.proj", d + "attn.to_add_out")
        move(b + "img_mlp.0", d + "ff.net.0.proj")
        move(b + "img_mlp.2", d + "ff.net.2")
        move(b + "txt_mlp.0", d + "ff_context.net.0.proj")
        move(b + "txt_mlp.2", d + "ff_context.net.2")
    singles = sorted({int(k.split(".")[1]) for k in sd if k.startswith("single_transformer_blocks.")})
    for i in singles:
        s_, b = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        move(b + "modulation.lin", s_ + "norm.linear")
        cat(b + "linear1", [s_ + "attn.to_q", s_ + "attn.to_k", s_ + "attn.to_v", s_ + "proj_mlp"])
        out[b + "norm.query_norm.scale"] = sd.pop(s_ + "attn.norm_q.weight")
        out[b + "norm.key_norm.scale"] = sd.pop(s_ + "attn.norm_k.weight")
        move(b + "linear2", s_ + "proj_out")
    if sd:
        raise KeyError(f"no BFL name for {sorted(sd)}")
    save_file({k: v.contiguous() for k, v in out.items()}, str(target))


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
                        ckpt / "tiny_kontext", ckpt / "tiny_klein", ckpt / "tiny_klein_base", ckpt / "tiny_sd3")
    if (root / ".complete").is_file():
        return models
    partial = Path(tempfile.mkdtemp(prefix="imagegen-flow-build-"))
    pckpt = partial / "models" / "Stable-diffusion"
    build_flux(pckpt / "tiny_flux_dev", guidance=True)
    build_flux(pckpt / "tiny_flux_schnell", guidance=False)
    build_flux(pckpt / "tiny_kontext", guidance=True, kontext=True)
    build_klein(pckpt / "tiny_klein")
    shutil.copytree(pckpt / "tiny_klein", pckpt / "tiny_klein_base")
    index = pckpt / "tiny_klein_base" / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "is_distilled": False}, indent=2))
    build_sd3(pckpt / "tiny_sd3")
    loras = partial / "models" / "Lora"
    build_flux_loras(pckpt / "tiny_flux_dev", loras)
    build_lora("Flux2Transformer2DModel", pckpt / "tiny_klein", loras / "klein_style.safetensors", "Flux2KleinPipeline")
    build_lora("SD3Transformer2DModel", pckpt / "tiny_sd3", loras / "sd3_style.safetensors", "StableDiffusion3Pipeline")
    transformer = next((pckpt / "tiny_flux_dev" / "transformer").glob("*.safetensors"))
    shutil.copy(transformer, pckpt / "tiny_dev_single.safetensors")
    to_bfl(transformer, pckpt / "tiny_dev_bfl.safetensors")
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


# -- what the flow-model tests share ---------------------------------------------------------


def flow_provider(flow, home: Path):
    """A local provider over the tiny flow models' folder, on the CPU."""
    from imagegen.providers.local import LocalProvider

    from imagegen.settings import Settings

    return LocalProvider(Settings(models_dir=flow.models_dir, home=home, device="cpu"))


def pixels(image):
    """An image (ours or PIL) as int16 pixels, for exact and difference comparisons."""
    import numpy as np

    return np.asarray(image.pil() if hasattr(image, "pil") else image).astype(np.int16)


def gens(*seeds):
    """One CPU generator per seed, as the adapter makes them."""
    import torch

    return [torch.Generator("cpu").manual_seed(s) for s in seeds]
