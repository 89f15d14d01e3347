"""Tiny random-weight Stable Diffusion models built offline, for the local provider's tests.

The UNet/VAE keep the SD 1.5 layout (4 blocks, 3 with cross-attention) shrunk to a few channels,
so they export to a single-file LDM checkpoint. Built once per session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

WORDS = ("a photo of cat dog red blue green house hill sky sun tree car girl boy big small "
         "painting forest river city night day smiling running").split()
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
HIDDEN = 16


@dataclass
class TinyModels:
    root: Path
    models_dir: Path  # IMAGEGEN_MODELS_DIR layout
    pipeline_dir: Path  # diffusers folder (models_dir/Stable-diffusion/tiny)
    lora: Path  # models_dir/Lora/tiny_style.safetensors
    controlnet: Path  # models_dir/ControlNet/tiny_openpose (folder)
    config_dir: Path  # configs only, no weights (for from_single_file)


_BUILT: dict[str, TinyModels] = {}


def tiny_models(tmp_path_factory) -> TinyModels:
    if "models" not in _BUILT:
        _BUILT["models"] = build_all(tmp_path_factory.mktemp("tiny_sd"))
    return _BUILT["models"]


def _bytes_to_unicode() -> dict[int, str]:
    from imagegen.providers.local._configs import _bytes_to_unicode

    return _bytes_to_unicode()


def write_tokenizer(folder: Path) -> None:
    """A CLIP-format BPE vocab: every byte character, each test word as one token, CLIP's specials last."""
    chars = list(_bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    merges: list[str] = []
    for word in WORDS:
        if len(word) < 2:
            continue
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        left = pieces[0]
        for right in pieces[1:]:
            merge = f"{left} {right}"
            if merge not in merges:
                merges.append(merge)
                vocab.append(left + right)
            left = left + right
    vocab += [BOS, EOS]
    ids = {token: index for index, token in enumerate(dict.fromkeys(vocab))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(ids))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": BOS, "eos_token": EOS,
        "unk_token": EOS, "pad_token": EOS, "do_lower_case": True}))


def build_pipeline(folder: Path):
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=3,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=HIDDEN))
    with torch.no_grad():  # a fresh LayerNorm gives zero-mean vectors; trained CLIP's do not
        getattr(text_encoder, "text_model", text_encoder).final_layer_norm.bias.normal_(0.3, 0.5)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 8, 16, 16), layers_per_block=1, sample_size=8, attention_head_dim=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=HIDDEN, norm_num_groups=4)
    vae = AutoencoderKL(
        block_out_channels=(4, 4, 8, 8), layers_per_block=1, norm_num_groups=2, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   image_encoder=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def build_lora(pipe, path: Path, seed: int = 1) -> None:
    """A UNet + text-encoder LoRA with random (non-zero) weights, saved in diffusers format."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    config = LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                        init_lora_weights=False)
    te_config = LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"],
                           init_lora_weights=False)
    name = f"fixture_{seed}"
    pipe.unet.add_adapter(config, adapter_name=name)
    inject_adapter_in_model(te_config, pipe.text_encoder, adapter_name=name)
    unet_layers = get_peft_model_state_dict(pipe.unet, adapter_name=name)
    te_layers = get_peft_model_state_dict(pipe.text_encoder, adapter_name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=unet_layers,
                                              text_encoder_lora_layers=te_layers, weight_name=path.name,
                                              safe_serialization=True)
    for model in (pipe.unet, pipe.text_encoder):
        _remove_lora_layers(model)
        if "peft_config" in model.__dict__:
            del model.peft_config
        if getattr(model, "_hf_peft_config_loaded", False):
            model._hf_peft_config_loaded = False


def _remove_lora_layers(model) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], module.get_base_layer())


def build_controlnet(pipe, folder: Path) -> None:
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(2)
    net = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(4, 4, 8, 8))
    with torch.no_grad():  # zero convolutions would make the ControlNet a no-op
        for module in [*net.controlnet_down_blocks, net.controlnet_mid_block]:
            module.weight.normal_(0, 0.5)
    net.save_pretrained(folder, safe_serialization=True)


def build_all(root: Path) -> TinyModels:
    models_dir = root / "models"
    pipeline_dir = models_dir / "Stable-diffusion" / "tiny"
    pipe = build_pipeline(pipeline_dir)
    lora = models_dir / "Lora" / "tiny_style.safetensors"
    build_lora(pipe, lora)
    build_lora(pipe, models_dir / "Lora" / "tiny_detail.safetensors", seed=2)
    controlnet = models_dir / "ControlNet" / "tiny_openpose"
    build_controlnet(pipe, controlnet)
    config_dir = root / "tiny_config"
    pipe.save_pretrained(config_dir, safe_serialization=True)
    for weights in config_dir.rglob("*.safetensors"):
        weights.unlink()
    return TinyModels(root, models_dir, pipeline_dir, lora, controlnet, config_dir)


def raw_pipeline(folder: Path):
    """The same checkpoint loaded by plain diffusers, as an independent reference."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# -- single-file (LDM layout) export ------------------------------------------------------


def _unet_prefix_map(unet) -> list[tuple[str, str]]:
    """(LDM prefix, diffusers prefix) for an SD 1.x-layout UNet of any depth/width."""
    config = unet.config
    layers = config.layers_per_block
    blocks = len(config.block_out_channels)
    pairs = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
             ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
             ("middle_block.0.", "mid_block.resnets.0."), ("middle_block.1.", "mid_block.attentions.0."),
             ("middle_block.2.", "mid_block.resnets.1.")]
    for i in range(blocks):
        down_attn = "CrossAttn" in config.down_block_types[i]
        up_attn = "CrossAttn" in config.up_block_types[i]
        for j in range(layers):
            ldm = (layers + 1) * i + j + 1
            pairs.append((f"input_blocks.{ldm}.0.", f"down_blocks.{i}.resnets.{j}."))
            if down_attn:
                pairs.append((f"input_blocks.{ldm}.1.", f"down_blocks.{i}.attentions.{j}."))
        if i < blocks - 1:
            pairs.append((f"input_blocks.{(layers + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
        for j in range(layers + 1):
            ldm = (layers + 1) * i + j
            pairs.append((f"output_blocks.{ldm}.0.", f"up_blocks.{i}.resnets.{j}."))
            if up_attn:
                pairs.append((f"output_blocks.{ldm}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < blocks - 1:
            slot = 2 if up_attn else 1
            pairs.append((f"output_blocks.{(layers + 1) * i + layers}.{slot}.", f"up_blocks.{i}.upsamplers.0."))
    return pairs


_RESNET_RENAMES = [("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("out_layers.0.", "norm2."),
                   ("out_layers.3.", "conv2."), ("emb_layers.1.", "time_emb_proj."),
                   ("skip_connection.", "conv_shortcut.")]


def _convert(state: dict, pairs: list[tuple[str, str]], inner: list[tuple[str, str]]) -> dict:
    out = {}
    for key, value in state.items():
        for ldm_prefix, hf_prefix in sorted(pairs, key=lambda p: -len(p[1])):
            if key.startswith(hf_prefix):
                rest = key[len(hf_prefix):]
                if ".resnets." in hf_prefix:
                    for ldm_name, hf_name in inner:
                        if rest.startswith(hf_name):
                            rest = ldm_name + rest[len(hf_name):]
                key = ldm_prefix + rest
                break
        else:
            raise KeyError(f"no LDM name for {key}")
        out[key] = value
    return out


def _vae_state(vae) -> dict:
    config = vae.config
    blocks = len(config.block_out_channels)
    layers = config.layers_per_block
    pairs = [("encoder.conv_in.", "encoder.conv_in."), ("encoder.conv_out.", "encoder.conv_out."),
             ("encoder.norm_out.", "encoder.conv_norm_out."), ("decoder.conv_in.", "decoder.conv_in."),
             ("decoder.conv_out.", "decoder.conv_out."), ("decoder.norm_out.", "decoder.conv_norm_out."),
             ("quant_conv.", "quant_conv."), ("post_quant_conv.", "post_quant_conv.")]
    for part in ("encoder", "decoder"):
        pairs += [(f"{part}.mid.block_{i + 1}.", f"{part}.mid_block.resnets.{i}.") for i in range(2)]
        pairs.append((f"{part}.mid.attn_1.", f"{part}.mid_block.attentions.0."))
    for i in range(blocks):
        for j in range(layers):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        for j in range(layers + 1):
            pairs.append((f"decoder.up.{blocks - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
        if i < blocks - 1:
            pairs.append((f"encoder.down.{i}.downsample.", f"encoder.down_blocks.{i}.downsamplers.0."))
            pairs.append((f"decoder.up.{blocks - 1 - i}.upsample.", f"decoder.up_blocks.{i}.upsamplers.0."))
    state = _convert(vae.state_dict(), pairs, [("nin_shortcut.", "conv_shortcut.")])
    attention = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    out = {}
    for key, value in state.items():
        if ".mid.attn_1." in key:
            head, rest = key.split(".mid.attn_1.")
            for hf_name, ldm_name in attention.items():
                if rest.startswith(hf_name):
                    rest = ldm_name + rest[len(hf_name):]
            if rest.endswith(".weight") and value.ndim == 2:
                value = value[:, :, None, None]  # LDM uses 1x1 convolutions here
            key = f"{head}.mid.attn_1.{rest}"
        out[key] = value
    return out


def export_single_file(pipe, path: Path) -> None:
    """Write ``pipe`` as an SD 1.x LDM checkpoint (what A1111 users have as .safetensors)."""
    from safetensors.torch import save_file

    state = {}
    unet = _convert(pipe.unet.state_dict(), _unet_prefix_map(pipe.unet), _RESNET_RENAMES)
    state.update({f"model.diffusion_model.{k}": v for k, v in unet.items()})
    state.update({f"first_stage_model.{k}": v for k, v in _vae_state(pipe.vae).items()})
    for key, value in pipe.text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else f"text_model.{key}"
        state[f"cond_stage_model.transformer.{key}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def build_sdxl_pipeline(folder: Path):
    """A tiny SDXL pipeline (two text encoders, text_time conditioning), saved as a diffusers folder."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=3,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=HIDDEN)
    torch.manual_seed(0)
    text_encoder, text_encoder_2 = CLIPTextModel(config), CLIPTextModelWithProjection(config)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=32, attention_head_dim=(2, 4),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + HIDDEN,
        cross_attention_dim=2 * HIDDEN, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(4, 8), layers_per_block=1, norm_num_groups=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
                                     unet=unet, scheduler=scheduler)
    pipe.save_pretrained(folder, safe_serialization=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def to_kohya(diffusers_lora: Path, target: Path) -> None:
    """Rewrite a diffusers-format LoRA in the kohya/A1111 layout (lora_unet_*/lora_te_*, down/up, alpha)."""
    from safetensors.torch import load_file, save_file

    out = {}
    for key, value in load_file(str(diffusers_lora)).items():
        component, rest = key.split(".", 1)
        module, kind = rest.rsplit(".lora_", 1)
        prefix = "lora_unet_" if component == "unet" else "lora_te_text_model_"
        name = prefix + module.replace(".", "_")
        out[f"{name}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = value
        if kind.startswith("A"):
            out[f"{name}.alpha"] = torch_tensor(float(value.shape[0]))  # alpha = rank: scale 1
    save_file(out, str(target))


def torch_tensor(value: float):
    import torch

    return torch.tensor(value)
