"""Build the untrained demo pipeline: tiny UNet, VAE, CLIP text encoder, tokenizer, scheduler.

Everything is made offline. The tokenizer is a CLIP-format BPE (vocab.json + merges.txt) learnt
from the caption words, so each caption word is one token and any other text still tokenizes.
"""

from __future__ import annotations

import json
from pathlib import Path

from imagegen.demo.shapes import CAPTION_WORDS, IMAGE_SIZE

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MODEL_MAX_LENGTH = 77  # what SD pipelines and A1111 prompt chunking expect
VAE_SCALE = 4  # 64 px images <-> 16 px latents: a quarter of the UNet work of 32 px latents
UNET_CHANNELS = (32, 64, 64)
TEXT_HIDDEN = 64

# The SD 1.x scheduler settings, so every A1111 sampler can be built from this config.
SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}


def build_tokenizer_files(folder: Path) -> None:
    """Write vocab.json, merges.txt and tokenizer_config.json for a CLIPTokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    # Byte-level alphabet of lowercase letters: identical to CLIP's byte-to-unicode map for a-z.
    alphabet = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token=EOS))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=10_000, min_frequency=1, special_tokens=[], initial_alphabet=alphabet,
        end_of_word_suffix="</w>", show_progress=False,
    )
    bpe.train_from_iterator([" ".join(CAPTION_WORDS)] * 2, trainer=trainer)
    learnt = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = {}
    for token in sorted(learnt["vocab"], key=learnt["vocab"].get):
        vocab.setdefault(token, len(vocab))
    for letter in alphabet:  # a lone letter at a word's end must still be a known token
        vocab.setdefault(letter + "</w>", len(vocab))
    # CLIP keeps the two specials as the highest ids.
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    merges = [m if isinstance(m, str) else " ".join(m) for m in learnt["merges"]]

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }, indent=2))


def build_pipeline(folder: Path, seed: int = 0, unet_channels: tuple[int, ...] = UNET_CHANNELS):
    """Create the untrained components, save them under ``folder`` and return the pipeline."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    build_tokenizer_files(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_HIDDEN, intermediate_size=TEXT_HIDDEN * 2,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MODEL_MAX_LENGTH,
        projection_dim=TEXT_HIDDEN, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, hidden_act="quick_gelu",
    ))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        block_out_channels=(16, 32, 64), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=8, sample_size=IMAGE_SIZE, mid_block_add_attention=False,
    )
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // VAE_SCALE, in_channels=4, out_channels=4,
        block_out_channels=unet_channels, layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_HIDDEN, attention_head_dim=4, norm_num_groups=16,
        # An attention-pooled caption vector added to the time embedding: a global path for
        # colours, which cross-attention alone learns slowly.
        addition_embed_type="text", addition_embed_type_num_heads=4,
    )
    scheduler = PNDMScheduler.from_config(SCHEDULER_CONFIG)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe
