"""``sam3_tiny``: SAM3's own image-model classes at small sizes (about 15 M parameters, random init).

It is SAM3's architecture end to end (ViT + dual neck, text encoder, fusion encoder, DETR decoder with
presence token, geometry encoder, segmentation head, dot-product scoring) shrunk so that a training step
runs in seconds on a CPU. Used by the tests, the CPU demo and CI. It is never a trained model.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from sam3_angio.registry import MODELS

# d_model stays 256 (SAM3's): every head, FiLM and the CASS head see the real feature width.
D_MODEL = 256


def bpe_path() -> str:
    """The CLIP BPE vocabulary SAM3's tokenizer needs. The sam3 wheel ships no ``assets/``;
    open_clip ships the same file inside its package."""
    import os

    import open_clip

    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"BPE vocabulary not found at {path}: reinstall open_clip_torch "
            f"(pip install --force-reinstall open_clip_torch) or pass model.bpe_path"
        )
    return path


def _mha(dropout: float = 0.0, batch_first: bool = False, heads: int = 8):
    from sam3.model.model_misc import MultiheadAttentionWrapper

    return MultiheadAttentionWrapper(
        num_heads=heads, dropout=dropout, embed_dim=D_MODEL, batch_first=batch_first
    )


@MODELS.register()
def build_sam3_tiny(
    image_size: int = 224,
    vit_dim: int = 64,
    vit_depth: int = 2,
    vit_heads: int = 4,
    window_size: int = 8,
    text_width: int = 64,
    text_layers: int = 2,
    num_queries: int = 20,
    ffn_dim: int = 512,
    enable_segmentation: bool = True,
    eval_mode: bool = False,
    bpe: Optional[str] = None,
    seed: Optional[int] = 0,
) -> nn.Module:
    """SAM3 image model at small sizes (ViT dim 64 depth 2 at 224 px, 2-layer text encoder, 1-layer
    encoder/decoder, 20 queries, d_model 256): about 15 M parameters, finite random init."""
    from sam3.model.decoder import TransformerDecoder, TransformerDecoderLayer
    from sam3.model.encoder import TransformerEncoderFusion, TransformerEncoderLayer
    from sam3.model.geometry_encoders import SequenceGeometryEncoder
    from sam3.model.maskformer_segmentation import PixelDecoder, UniversalSegmentationHead
    from sam3.model.model_misc import MLP, DotProductScoring, TransformerWrapper
    from sam3.model.necks import Sam3DualViTDetNeck
    from sam3.model.position_encoding import PositionEmbeddingSine
    from sam3.model.sam3_image import Sam3Image
    from sam3.model.text_encoder_ve import VETextEncoder
    from sam3.model.tokenizer_ve import SimpleTokenizer
    from sam3.model.vitdet import ViT
    from sam3.model.vl_combiner import SAM3VLBackbone

    from sam3_angio import cpu_compat

    cpu_compat.apply()
    if image_size % 14 != 0 or (image_size // 14) % window_size != 0:
        raise ValueError(
            f"sam3_tiny: image_size {image_size} must be a multiple of the patch size 14 and give a "
            f"token grid divisible by window_size {window_size} (224 with window 8 works)"
        )
    gen_state = None
    if seed is not None:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
    try:
        def pos_enc():
            return PositionEmbeddingSine(num_pos_feats=D_MODEL, normalize=True, scale=None, temperature=10000)

        vit = ViT(
            img_size=image_size, pretrain_img_size=image_size, patch_size=14, embed_dim=vit_dim,
            depth=vit_depth, num_heads=vit_heads, mlp_ratio=4.0, norm_layer="LayerNorm",
            drop_path_rate=0.0, qkv_bias=True, use_abs_pos=True, tile_abs_pos=True,
            global_att_blocks=(vit_depth - 1,), rel_pos_blocks=(), use_rope=True,
            use_interp_rope=True, window_size=window_size, pretrain_use_cls_token=True,
            retain_cls_token=False, ln_pre=True, ln_post=False, return_interm_layers=False,
            bias_patch_embed=False,
        )
        neck = Sam3DualViTDetNeck(
            position_encoding=pos_enc(), d_model=D_MODEL, scale_factors=[4.0, 2.0, 1.0, 0.5], trunk=vit
        )
        text = VETextEncoder(
            tokenizer=SimpleTokenizer(bpe_path=bpe or bpe_path()), d_model=D_MODEL,
            width=text_width, heads=4, layers=text_layers,
        )
        # VETextEncoder leaves these to a checkpoint (torch.empty): NaN with random weights.
        nn.init.normal_(text.encoder.positional_embedding, std=0.01)
        proj = text.encoder.text_projection
        if isinstance(proj, nn.Parameter):
            nn.init.normal_(proj, std=text_width ** -0.5)
        backbone = SAM3VLBackbone(visual=neck, text=text, scalp=1)

        enc_layer = TransformerEncoderLayer(
            activation="relu", d_model=D_MODEL, dim_feedforward=ffn_dim, dropout=0.0,
            pos_enc_at_attn=True, pos_enc_at_cross_attn_keys=False, pos_enc_at_cross_attn_queries=False,
            pre_norm=True, self_attention=_mha(batch_first=True), cross_attention=_mha(batch_first=True),
        )
        encoder = TransformerEncoderFusion(
            layer=enc_layer, num_layers=1, d_model=D_MODEL, num_feature_levels=1, frozen=False,
            use_act_checkpoint=True, add_pooled_text_to_img_feat=False, pool_text_with_mask=True,
        )
        dec_layer = TransformerDecoderLayer(
            activation="relu", d_model=D_MODEL, dim_feedforward=ffn_dim, dropout=0.0,
            cross_attention=_mha(), n_heads=8, use_text_cross_attention=True,
        )
        decoder = TransformerDecoder(
            layer=dec_layer, num_layers=1, num_queries=num_queries, return_intermediate=True,
            box_refine=True, num_o2m_queries=0, dac=True, boxRPB="log", d_model=D_MODEL,
            frozen=False, interaction_layer=None, dac_use_selfatt_ln=True,
            resolution=image_size, stride=14, use_act_checkpoint=True, presence_token=True,
        )
        transformer = TransformerWrapper(encoder=encoder, decoder=decoder, d_model=D_MODEL)

        scoring = DotProductScoring(
            d_model=D_MODEL, d_proj=D_MODEL,
            prompt_mlp=MLP(input_dim=D_MODEL, hidden_dim=ffn_dim, output_dim=D_MODEL, num_layers=2,
                           dropout=0.0, residual=True, out_norm=nn.LayerNorm(D_MODEL)),
        )
        seg_head = None
        # Activation checkpointing off where SAM3 lets it be (segmentation head - its pixel decoder and,
        # in Sam3Image, the whole head - and the geometry encoder; the vision trunk by the profile's
        # model.activation_checkpointing): it trades compute for memory the tiny model does not need;
        # gradients are bit-identical (bench/bench_act_ckpt.py). SAM3's fusion encoder and decoder
        # assert it on in training, so theirs stays.
        if enable_segmentation:
            seg_head = UniversalSegmentationHead(
                hidden_dim=D_MODEL, upsampling_stages=3, aux_masks=False, presence_head=False,
                dot_product_scorer=None, act_ckpt=False, cross_attend_prompt=_mha(),
                pixel_decoder=PixelDecoder(num_upsampling_stages=3, interpolation_mode="nearest",
                                           hidden_dim=D_MODEL),
            )
        geo_layer = TransformerEncoderLayer(
            activation="relu", d_model=D_MODEL, dim_feedforward=ffn_dim, dropout=0.0,
            pos_enc_at_attn=False, pre_norm=True, self_attention=_mha(),
            pos_enc_at_cross_attn_queries=False, pos_enc_at_cross_attn_keys=True,
            cross_attention=_mha(),
        )
        geometry = SequenceGeometryEncoder(
            pos_enc=pos_enc(), encode_boxes_as_points=False, points_direct_project=True,
            points_pool=True, points_pos_enc=True, boxes_direct_project=True, boxes_pool=True,
            boxes_pos_enc=True, d_model=D_MODEL, num_layers=1, layer=geo_layer, use_act_ckpt=False,
            add_cls=True, add_post_encode_proj=True,
        )
        matcher = None
        if not eval_mode:
            from sam3.train.matcher import BinaryHungarianMatcherV2

            matcher = BinaryHungarianMatcherV2(
                focal=True, cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, alpha=0.25, gamma=2, stable=False
            )
        model = Sam3Image(
            backbone=backbone, transformer=transformer, input_geometry_encoder=geometry,
            segmentation_head=seg_head, num_feature_levels=1, o2m_mask_predict=True,
            dot_prod_scoring=scoring, use_instance_query=False, multimask_output=True,
            inst_interactive_predictor=None, matcher=matcher, use_act_checkpoint_seg_head=False,
        )
    finally:
        if gen_state is not None:
            torch.random.set_rng_state(gen_state)
    _check_finite(model)
    if eval_mode:
        model.eval()
    return model


def _check_finite(model: nn.Module) -> None:
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise RuntimeError(f"sam3_tiny: non-finite initial parameters in {bad[:5]}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

