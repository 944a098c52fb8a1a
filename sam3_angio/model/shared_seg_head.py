"""SAM3's segmentation head with its image-only work done once per image, not once per (image, phrase).

SAM3's ``UniversalSegmentationHead`` copies every FPN level per query (``feat[image_ids]``) and runs its
pixel decoder on each copy: with 14 CASS phrases a frame, the image-only half of every upsampling conv
runs 14 times. Each stage is ``relu(GN(conv(feat + up2(prev))))`` with ``prev`` per query, and a conv is
linear, so

    conv(feat[img] + up2(prev)) = conv(feat)[img] + conv_nobias(up2(prev))

``conv(feat)`` (B, 256, H, W) runs once per image. ``up2`` is nearest-neighbour upsampling by 2, so the
per-query conv of ``up2(prev)`` is a 2x2 conv per output phase at ``prev``'s resolution (4 taps an
output pixel instead of 9). The head's 1x1 ``instance_seg_head`` is folded into the mask embeddings
(``einsum(E, W P + b) = einsum(E W, P) + E b``), so it no longer runs on every query's 4x map.
The results equal SAM3's up to float rounding (tests/model/test_shared_seg_head.py); the weights, their
names and the state-dict keys are SAM3's own, so checkpoints load either way. With fewer than 2 queries
an image (phase 1: one phrase) there is nothing to share and SAM3's own code runs.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from sam3.model.maskformer_segmentation import UniversalSegmentationHead

from sam3_angio.errors import ConfigError

# The shared path pays for one image-level conv per stage: with about one query per image it would
# cost more than SAM3's (a full conv per image + a 4/9 conv per query, against one full conv per query).
MIN_QUERIES_PER_IMAGE = 2


def conv3x3_of_nearest_up2(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode='nearest'), weight, padding=1)`` without the upsampled
    input: x (N, C, h, w), weight (O, C, 3, 3) -> (N, O, 2h, 2w).

    Output row 2i reads upsampled rows 2i-1, 2i, 2i+1 = input rows i-1, i, i (kernel rows 0 | 1+2); row
    2i+1 reads input rows i, i, i+1 (kernel rows 0+1 | 2); the same for columns. So each of the 4 output
    phases is a 2x2 conv of the (zero-padded) input, and one conv with 4 O output channels computes all."""
    n, _, h, w = x.shape
    o = weight.shape[0]

    def halves(k: torch.Tensor, dim: int):  # 3 taps along dim -> (phase 0, phase 1) with 2 taps each
        k0, k1, k2 = k.unbind(dim)
        return torch.stack([k0, k1 + k2], dim), torch.stack([k0 + k1, k2], dim)

    kernels = [kc for kr in halves(weight, 2) for kc in halves(kr, 3)]  # (a, b) = 00, 01, 10, 11
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), torch.cat(kernels, 0))  # (N, 4 O, h + 1, w + 1)
    y = y.view(n, 2, 2, o, h + 1, w + 1)
    rows = [torch.stack([y[:, a, b, :, a:a + h, b:b + w] for b in (0, 1)], -1) for a in (0, 1)]
    return torch.stack(rows, -3).reshape(n, o, 2 * h, 2 * w)  # (N, O, h, 2, w, 2) -> (N, O, 2h, 2w)


class SharedImageSegmentationHead(UniversalSegmentationHead):
    """A ``UniversalSegmentationHead`` (same modules, same keys) whose forward shares the image-only part.

    Built from an existing head: ``SharedImageSegmentationHead(detector.segmentation_head)``; the
    submodules are the head's own objects, not copies. Shapes, with Q queries of B images:

        backbone_feats[l] (B, 256, H_l, W_l), finest first; encoder_hidden_states (HW, Q, 256)
        -> per image: conv_k(backbone_feats[l]) (B, 256, H_l, W_l), once
        -> per query: prev (Q, 256, h, w) -> relu(GN(conv_k(feat)[img] + conv_k(up2(prev))))
        -> pixel_embed (Q, 256, H_0, W_0) -> pred_masks (Q, N, H_0, W_0), semantic_seg (Q, 1, H_0, W_0)
    """

    def __init__(self, head: UniversalSegmentationHead):
        if type(head) is not UniversalSegmentationHead:
            raise ConfigError(f"model.shared_image_work: expected SAM3's UniversalSegmentationHead, got "
                              f"{type(head).__name__}; set model.shared_image_work=false for this model")
        if not head.use_encoder_inputs:
            raise ConfigError("model.shared_image_work: the segmentation head does not use the encoder's "
                              "output; set model.shared_image_work=false")
        # Take over the head's state (modules, parameters, hooks, flags) as it is; the containers are
        # copied so the two objects do not share dicts.
        state = {k: (type(v)(v) if isinstance(v, (dict, set)) else v) for k, v in vars(head).items()}
        self.__dict__.update(state)

    def forward(
        self,
        backbone_feats: List[torch.Tensor],
        obj_queries: torch.Tensor,
        image_ids,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        prompt: Optional[torch.Tensor] = None,
        prompt_mask: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Dict[str, Optional[torch.Tensor]]:
        assert encoder_hidden_states is not None
        num_images, num_queries = backbone_feats[0].shape[0], encoder_hidden_states.shape[1]
        if num_queries < MIN_QUERIES_PER_IMAGE * num_images or not self._upsamples_by_2(backbone_feats):
            return super().forward(backbone_feats, obj_queries, image_ids, encoder_hidden_states,
                                   prompt=prompt, prompt_mask=prompt_mask, **kwargs)
        bs = num_queries
        # SAM3's prompt cross-attention and presence head (UniversalSegmentationHead.forward), per query.
        if self.cross_attend_prompt is not None:
            tgt2 = self.cross_attn_norm(encoder_hidden_states)
            tgt2 = self.cross_attend_prompt(query=tgt2, key=prompt, value=prompt, key_padding_mask=prompt_mask)[0]
            encoder_hidden_states = tgt2 + encoder_hidden_states
        presence_logit = None
        if self.presence_head is not None:
            pooled_enc = encoder_hidden_states.mean(0)
            presence_logit = self.presence_head(pooled_enc.view(1, bs, 1, self.d_model), prompt=prompt,
                                                prompt_mask=prompt_mask).squeeze(0).squeeze(1)

        pixel_embed = self._embed_pixels_shared(backbone_feats, image_ids, encoder_hidden_states)
        if self.no_dec:
            mask_pred = self.mask_predictor(self.instance_seg_head(pixel_embed))
        else:
            mask_pred = self._folded_mask_pred(obj_queries if self.aux_masks else obj_queries[-1], pixel_embed)
        return {"pred_masks": mask_pred, "semantic_seg": self.semantic_seg_head(pixel_embed),
                "presence_logit": presence_logit}

    def _upsamples_by_2(self, backbone_feats: List[torch.Tensor]) -> bool:
        """The phase trick holds for nearest upsampling by exactly 2 between consecutive levels."""
        if self.pixel_decoder.interpolation_mode != "nearest":
            return False
        sizes = [tuple(f.shape[-2:]) for f in backbone_feats]
        return all(a == (2 * b[0], 2 * b[1]) for a, b in zip(sizes[:-1], sizes[1:]))

    def _embed_pixels_shared(self, backbone_feats: List[torch.Tensor], image_ids,
                             encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """SAM3's ``_embed_pixels`` + ``PixelDecoder.forward``, the image-only conv term once per image."""
        device = self.device
        dec = self.pixel_decoder
        feats = [f.to(device) for f in backbone_feats]
        # encoder_hidden_states (HW, Q, C) -> the coarsest level's map per query (Q, C, h, w), as SAM3 does.
        spatial_dim = math.prod(feats[-1].shape[-2:])
        prev = encoder_hidden_states.permute(1, 2, 0)[..., :spatial_dim].reshape(-1, *feats[-1].shape[1:])
        # Image-only: conv_k(feat) with the bias, (B, C, H, W) per stage, finest level last.
        stages = []
        for k, feat in enumerate(feats[:-1][::-1]):
            conv = dec.conv_layers[0 if dec.shared_conv else k]
            stages.append((conv.weight, dec.norms[0 if dec.shared_conv else k], conv(feat)))
        ids = image_ids.to(device).long()

        def per_query(prev: torch.Tensor, *image_terms: torch.Tensor) -> torch.Tensor:
            for (weight, norm, _), image_term in zip(stages, image_terms):
                image_term = image_term if image_term.shape[0] == 1 else image_term[ids]
                prev = F.relu(norm(image_term + conv3x3_of_nearest_up2(prev, weight)))
            return prev

        image_terms = [t for _, _, t in stages]
        if self.act_ckpt:
            return checkpoint.checkpoint(per_query, prev, *image_terms, use_reentrant=False)
        return per_query(prev, *image_terms)

    def _folded_mask_pred(self, obj_queries: torch.Tensor, pixel_embed: torch.Tensor) -> torch.Tensor:
        """``MaskPredictor(obj_queries, instance_seg_head(pixel_embed))`` with the 1x1 conv folded into
        the mask embeddings: E (..., Q, N, d) @ W (d, C) -> (..., Q, N, C), then one einsum with
        pixel_embed (Q, C, H, W), plus E @ b."""
        head = self.instance_seg_head
        embed = self.mask_predictor.mask_embed(obj_queries)
        weight = head.weight.view(head.weight.shape[0], -1)  # (d, C)
        spec = "bqc,bchw->bqhw" if embed.dim() == 3 else "lbqc,bchw->lbqhw"
        mask = torch.einsum(spec, embed @ weight, pixel_embed)
        if head.bias is not None:
            mask = mask + (embed @ head.bias)[..., None, None]
        return mask


def share_image_work(detector: nn.Module, enabled: bool = True) -> nn.Module:
    """``model.shared_image_work``: swap ``detector.segmentation_head`` (SAM3's) for
    :class:`SharedImageSegmentationHead` on the same weights. A detector without a segmentation head
    is left as it is."""
    head = getattr(detector, "segmentation_head", None)
    if enabled and head is not None and not isinstance(head, SharedImageSegmentationHead):
        detector.segmentation_head = SharedImageSegmentationHead(head)
    return detector
