"""``ViewConditionedSam3``: SAM3 whose image features are modulated by the C-arm view, plus a CASS head.

The wrapped ``Sam3Image`` (real or tiny) sits at ``self.detector`` - the same prefix the released
``sam3.pt`` uses - and runs unchanged. During a forward the wrapper modulates the output of
``detector.backbone.forward_image`` (the neck's FPN maps, ``backbone_fpn``) with FiLM:

    batch.view_angles (B, 2) deg, view_known (B,) -> view encoder -> e (B, 256)
    backbone_fpn[l] (B, 256, H_l, W_l) -> FiLM_l(f, e) -> SAM3 encoder / decoder / seg head (unchanged)
    backbone_fpn[-1] (B, 256, H/14, W/14) + segment regions -> CASS head -> cass_logits (N, K)

Outputs keep SAM3's structure (``SAM3Output``; SAM3's losses, matcher and postprocessors work
unchanged); the last step's dict gains ``cass_logits`` (N, K), ``cass_targets`` (N,) and
``cass_image_idx`` (N,). A fresh wrapper's SAM3 outputs equal plain SAM3's (FiLM starts at identity).
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from sam3_angio.cass import class_ids as validate_class_ids
from sam3_angio.model.cass_head import CassHead
from sam3_angio.model.film import FiLM
from sam3_angio.model.view_encoder import build_view_encoder
from sam3_angio.registry import MODELS

log = logging.getLogger(__name__)


@MODELS.register()
class ViewConditionedSam3(nn.Module):
    """SAM3 + view encoder + FiLM on the neck's feature maps + a region-pooled CASS head."""

    def __init__(
        self,
        detector: nn.Module,
        class_ids: Optional[Sequence[int]] = None,
        view_conditioning: bool = True,
        view_encoder: str = "sinusoidal",
        unknown_angles: str = "learned",
        cass_pooling: str = "region",
        box_regressor: bool = False,
        view_dim: int = 256,
        freeze: Optional[Dict[str, bool]] = None,
    ):
        super().__init__()
        if unknown_angles not in ("learned", "identity"):
            raise ValueError(f"unknown_angles={unknown_angles!r}: expected 'learned' or 'identity'")
        self.detector = detector
        self.class_ids: List[int] = validate_class_ids(class_ids)
        self.view_conditioning = bool(view_conditioning)
        self.unknown_angles = unknown_angles
        channels = detector.hidden_dim
        vb = detector.backbone
        num_levels = len(vb.vision_backbone.scale_factors) - vb.scalp
        self.view_encoder = build_view_encoder(view_encoder, dim=view_dim)
        self.film = nn.ModuleList(FiLM(view_dim, channels) for _ in range(num_levels))
        self.cass_head = CassHead(num_classes=len(self.class_ids), channels=channels, view_dim=view_dim,
                                  pooling=cass_pooling, box_regressor=box_regressor)
        self.register_buffer("_cat_to_class", self._category_table(self.class_ids), persistent=False)
        self.set_trainable(freeze or {})

    # ----------------------------------------------------------------- configuration helpers

    @staticmethod
    def _category_table(class_ids: Sequence[int]) -> torch.Tensor:
        """COCO category id (= CASS number) -> class index, -1 for categories outside the set."""
        table = torch.full((max(max(class_ids), 64) + 1,), -1, dtype=torch.long)
        for i, c in enumerate(class_ids):
            table[c] = i
        return table

    def set_trainable(self, freeze: Dict[str, bool]) -> None:
        """``freeze: {backbone, sam3_heads, view, cass_head}``: True freezes that part."""
        parts = {
            "backbone": [self.detector.backbone],
            "sam3_heads": [m for n, m in self.detector.named_children() if n != "backbone"],
            "view": [self.view_encoder, self.film],
            "cass_head": [self.cass_head],
        }
        unknown = set(freeze) - set(parts)
        if unknown:
            raise ValueError(f"model freeze keys {sorted(unknown)} unknown; expected {sorted(parts)}")
        for name, frozen in freeze.items():
            for module in parts[name]:
                for p in module.parameters():
                    p.requires_grad_(not frozen)

    def back_convert(self, targets):  # the trainer calls this on the model it trains
        return self.detector.back_convert(targets)

    # ----------------------------------------------------------------- forward

    def embed_views(self, angles: Optional[torch.Tensor], known: Optional[torch.Tensor], batch: int,
                    device) -> torch.Tensor:
        """(B, 2) degrees + (B,) known -> (B, D). Without conditioning every frame is "unknown"."""
        if angles is None or known is None or not self.view_conditioning:
            angles = torch.zeros(batch, 2, device=device)
            known = torch.zeros(batch, dtype=torch.bool, device=device)
        return self.view_encoder(angles.to(device), known.to(device))

    def forward(self, batch):
        img = batch.img_batch
        known = getattr(batch, "view_known", None)
        e = self.embed_views(getattr(batch, "view_angles", None), known, img.shape[0], img.device)
        active = None
        if self.unknown_angles == "identity" and known is not None:
            active = known.to(img.device)
        captured: Dict[str, torch.Tensor] = {}
        backbone = self.detector.backbone
        original = backbone.forward_image

        def forward_image(samples):
            out = original(samples)
            fpn = out["backbone_fpn"]
            if self.view_conditioning:
                fpn = [film(f, e, active) for film, f in zip(self.film, fpn)]
                out = {**out, "backbone_fpn": fpn, "vision_features": fpn[-1]}
            captured["features"] = fpn[-1]
            return out

        backbone.forward_image = forward_image  # instance attribute: shadows the method for this call
        try:
            outputs = self.detector(batch)
        finally:
            del backbone.forward_image
        self._add_cass_outputs(outputs, batch, captured["features"], e)
        return outputs

    def _add_cass_outputs(self, outputs, batch, features: torch.Tensor, e: torch.Tensor) -> None:
        """Name every target segment of the batch (its ground-truth region) with the CASS head."""
        target = batch.find_targets[0]
        inputs = batch.find_inputs[0]
        meta = batch.find_metadatas[0]
        num = target.num_boxes.to(features.device).long()  # (Q,) objects per query
        img_of_query = inputs.img_ids.to(features.device).long()  # (Q,)
        image_idx = torch.repeat_interleave(img_of_query, num)
        cats = torch.as_tensor(meta.original_category_id, device=features.device).long().view(-1)
        cat_of_obj = torch.repeat_interleave(cats, num)
        table = self._cat_to_class.to(features.device)
        valid = (cat_of_obj >= 0) & (cat_of_obj < table.numel())
        labels = torch.where(valid, table[cat_of_obj.clamp(0, table.numel() - 1)], torch.full_like(cat_of_obj, -1))
        masks = target.segments  # None when segmentation is off: the boxes stand in
        if masks is None or masks.shape[0] != image_idx.shape[0]:
            masks = boxes_to_masks(target.boxes.view(-1, 4), features.shape[-2:])
        head = self.cass_head(features, masks.to(features.device), image_idx, e)
        last = outputs.output[-1][-1] if hasattr(outputs, "output") else outputs[-1][-1]
        last.update(head)
        last["cass_targets"] = labels
        last["cass_image_idx"] = image_idx


def boxes_to_masks(boxes_cxcywh: torch.Tensor, size) -> torch.Tensor:
    """Normalised (cx, cy, w, h) boxes (N, 4) -> filled rectangles (N, h, w) bool."""
    h, w = int(size[0]), int(size[1])
    ys = (torch.arange(h, device=boxes_cxcywh.device) + 0.5) / h
    xs = (torch.arange(w, device=boxes_cxcywh.device) + 0.5) / w
    cx, cy, bw, bh = boxes_cxcywh.unbind(-1)
    inside_x = (xs[None] >= (cx - bw / 2)[:, None]) & (xs[None] <= (cx + bw / 2)[:, None])
    inside_y = (ys[None] >= (cy - bh / 2)[:, None]) & (ys[None] <= (cy + bh / 2)[:, None])
    return inside_y[:, :, None] & inside_x[:, None, :]


@MODELS.register()
def build_view_conditioned(
    name: str = "auto",
    checkpoint_path: Optional[str] = None,
    bpe_path: Optional[str] = None,
    enable_segmentation: bool = True,
    image_size: int = 224,
    **wrapper_kwargs,
) -> ViewConditionedSam3:
    """Build the SAM3 a config asks for (see ``build_model``) and wrap it with view conditioning."""
    from sam3_angio.model.builders import build_model

    detector = build_model(name=name, checkpoint_path=checkpoint_path, bpe_path=bpe_path,
                           enable_segmentation=enable_segmentation, image_size=image_size)
    return ViewConditionedSam3(detector, **wrapper_kwargs)
