"""``ViewConditionedSam3``: SAM3 whose image features are modulated by the C-arm view, plus a CASS head.

The wrapped ``Sam3Image`` (real or tiny) sits at ``self.detector`` - the same prefix the released
``sam3.pt`` uses. The wrapper runs SAM3's own stages itself, so that everything it adds is an ordinary
module call in the graph (hooks, ``torch.compile`` and activation checkpointing see it):

    batch.views: angles (B, 2) deg, known (B,) -> view encoder -> e (B, D)
    detector.backbone.forward_image(img) -> backbone_fpn[l] (B, 256, H_l, W_l) -> FiLM_l(f, e)
    detector.backbone.forward_text(phrases) ; detector.forward_grounding(...)  (SAM3, unchanged)
    backbone_fpn[-1] + segment regions -> CASS head -> cass_logits (N, K)

Outputs keep SAM3's structure (``SAM3Output``; SAM3's losses and matcher work unchanged); the last
step's dict gains ``cass_logits`` (N, K) / ``cass_targets`` (N,) / ``cass_image_idx`` (N,) for the
ground-truth regions of the batch (with a CASS head), ``qca_pred`` / ``qca_targets`` (N, 3) (with a
regression head: stenosis %/100, MLD mm, reference mm; targets NaN where not measured), and ``view_features`` (B, 256, h, w) / ``view_embedding`` (B, D), with
which ``name_regions`` names any other region - a predicted mask at inference. A fresh wrapper's SAM3
outputs equal plain SAM3's (FiLM starts at identity).

Training modes (``training.modes``, docs/training_modes.md): ``automatic`` is the pass above;
``proofread`` adds a prompt encoder's residual (clicks on one target segment, ``PROMPT_ENCODERS``) to the
FiLM-modulated FPN maps before grounding. With both, one step runs the backbone once and SAM3's
grounding twice (automatic, then proofread), and returns the automatic output with ``mode_outputs``
``{mode: SAM3Output}`` for the loss. At inference ``model(batch, clicks=Clicks)`` is the proofread pass.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
from sam3.model.geometry_encoders import Prompt
from sam3.model.model_misc import SAM3Output

import sam3_angio.model.cass_head  # noqa: F401  (registers the built-in CASS heads)
import sam3_angio.model.prompt_encoder  # noqa: F401  (registers the built-in prompt encoders)
import sam3_angio.model.regression_head  # noqa: F401  (registers the built-in regression heads)
import sam3_angio.model.view_encoder  # noqa: F401  (registers the built-in view encoders)
from sam3_angio.cass import class_ids as validate_class_ids
from sam3_angio.errors import ConfigError
from sam3_angio.model.film import FiLM
from sam3_angio.model.prompt_encoder import POINT_SAMPLING, Clicks, sample_clicks
from sam3_angio.model.text_cache import TextCache
from sam3_angio.registry import HEADS, MODELS, PROMPT_ENCODERS, VIEW_ENCODERS
from sam3_angio.view_angles import ViewBatch

log = logging.getLogger(__name__)

Spec = Union[str, Mapping[str, Any]]
MODES = ("automatic", "proofread")


def check_modes(modes: Sequence[str]) -> tuple:
    """``training.modes`` as a tuple; a ConfigError unless it is a non-empty list of distinct known modes
    (also run by ``--check``, before anything is built)."""
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    bad = [m for m in modes if m not in MODES]
    if not modes or bad or len(set(modes)) != len(modes):
        raise ConfigError(f"training.modes={list(modes)}: expected a non-empty list of distinct modes from "
                          f"{list(MODES)}, e.g. [automatic, proofread]")
    return modes


PROOFREAD_DEFAULTS = {"num_pos_points": 3, "num_neg_points": 1, "point_sampling": "uniform"}


@MODELS.register()
class ViewConditionedSam3(nn.Module):
    """SAM3 + view encoder + FiLM on the neck's feature maps + a region-pooled CASS head.

    Args:
        detector: a ``Sam3Image``.
        class_ids: CASS numbers the head names (default: the study's 14).
        view_conditioning: False = the same model that never sees the angles (the baseline).
        view_encoder: registered view encoder (``VIEW_ENCODERS``): a name or ``{name, ...args}``.
        unknown_angles: ``learned`` ("unknown" embedding) or ``identity`` (FiLM off for that frame).
        cass_head: registered head (``HEADS``): a name or ``{name, ...args}``; None: no CASS head (phase 3).
        regression_head: registered head (``HEADS``, e.g. ``qca_mlp``) predicting each region's stenosis %,
            MLD and reference diameter; None (default): none.
        cass_on_predictions: also teach the head on the predicted masks the matcher assigned to each
            ground-truth segment (what it names at inference), besides the ground-truth regions.
        freeze: ``{backbone, language_backbone, sam3_heads, view, cass_head, regression_head,
            prompt_encoder}``: True freezes that part (``language_backbone`` after ``backbone``, so
            it can freeze the text encoder alone).
        modes: training passes of a step, ``automatic`` and/or ``proofread`` (``training.modes``).
        prompt_encoder: registered prompt encoder (``PROMPT_ENCODERS``, default ``sparse_conv``), built
            only when ``proofread`` is a mode (a model trained without it takes no clicks).
        proofread: simulated clicks of the interactive sub-mode: ``num_pos_points``, ``num_neg_points``,
            ``point_sampling`` (uniform | centreline).
        text_cache: with a frozen language backbone, run it once per phrase and device
            (``sam3_angio.model.text_cache``) instead of on every step.
    """

    def __init__(
        self,
        detector: nn.Module,
        class_ids: Optional[Sequence[int]] = None,
        view_conditioning: bool = True,
        view_encoder: Spec = "sinusoidal",
        unknown_angles: str = "learned",
        cass_head: Optional[Spec] = "mlp",
        cass_on_predictions: bool = False,
        regression_head: Optional[Spec] = None,
        view_dim: int = 256,
        freeze: Optional[Dict[str, bool]] = None,
        modes: Sequence[str] = ("automatic",),
        prompt_encoder: Optional[Spec] = None,
        proofread: Optional[Mapping[str, Any]] = None,
        text_cache: bool = True,
    ):
        super().__init__()
        if unknown_angles not in ("learned", "identity"):
            raise ConfigError(f"model.view.unknown_angles={unknown_angles!r}: expected 'learned' or 'identity'")
        self.detector = detector
        self.class_ids: List[int] = validate_class_ids(class_ids)
        self.view_conditioning = bool(view_conditioning)
        self.unknown_angles = unknown_angles
        self.cass_on_predictions = bool(cass_on_predictions)
        channels = detector.hidden_dim
        vb = detector.backbone
        num_levels = len(vb.vision_backbone.scale_factors) - vb.scalp
        self.view_encoder = VIEW_ENCODERS.build(view_encoder, dim=view_dim)
        self.film = nn.ModuleList(FiLM(view_dim, channels) for _ in range(num_levels))
        self.cass_head = (HEADS.build(cass_head, num_classes=len(self.class_ids), channels=channels,
                                      view_dim=view_dim) if cass_head is not None else None)
        self.regression_head = (HEADS.build(regression_head, channels=channels, view_dim=view_dim)
                                if regression_head is not None else None)
        self.register_buffer("_cat_to_class", self._category_table(self.class_ids), persistent=False)
        self.modes = check_modes(modes)
        self.prompt_encoder = (PROMPT_ENCODERS.build(prompt_encoder or "sparse_conv", channels=channels,
                                                     num_classes=len(self.class_ids))
                               if "proofread" in self.modes else None)
        self.proofread = self._check_proofread(proofread)
        self.use_text_cache = bool(text_cache)
        self.text_cache = TextCache()
        self.set_trainable(freeze or {})

    # ----------------------------------------------------------------- configuration helpers

    @staticmethod
    def _category_table(class_ids: Sequence[int]) -> torch.Tensor:
        """COCO category id (= CASS number) -> class index, -1 for categories outside the set."""
        table = torch.full((max(max(class_ids), 64) + 1,), -1, dtype=torch.long)
        for i, c in enumerate(class_ids):
            table[c] = i
        return table

    @staticmethod
    def _check_proofread(proofread: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        cfg = {**PROOFREAD_DEFAULTS, **dict(proofread or {})}
        unknown = set(cfg) - set(PROOFREAD_DEFAULTS)
        if unknown:
            raise ConfigError(f"training.proofread keys {sorted(unknown)} unknown; expected {sorted(PROOFREAD_DEFAULTS)}")
        if cfg["point_sampling"] not in POINT_SAMPLING:
            raise ConfigError(f"training.proofread.point_sampling={cfg['point_sampling']!r}: expected one of "
                              f"{list(POINT_SAMPLING)}")
        if int(cfg["num_pos_points"]) < 1 or int(cfg["num_neg_points"]) < 0:
            raise ConfigError(f"training.proofread: num_pos_points={cfg['num_pos_points']} (need >= 1), "
                              f"num_neg_points={cfg['num_neg_points']} (need >= 0)")
        return cfg

    def set_trainable(self, freeze: Dict[str, bool]) -> None:
        """``freeze: {backbone, language_backbone, sam3_heads, view, cass_head, regression_head,
        prompt_encoder}``: True freezes that part."""
        parts = {
            "backbone": [self.detector.backbone],
            "language_backbone": [self.detector.backbone.language_backbone],
            "sam3_heads": [m for n, m in self.detector.named_children() if n != "backbone"],
            "view": [self.view_encoder, self.film],
            "cass_head": [self.cass_head] if self.cass_head is not None else [],
            "regression_head": [self.regression_head] if self.regression_head is not None else [],
            "prompt_encoder": [self.prompt_encoder] if self.prompt_encoder is not None else [],
        }
        unknown = set(freeze) - set(parts)
        if unknown:
            raise ConfigError(f"model.freeze keys {sorted(unknown)} unknown; expected {sorted(parts)}")
        for name in [n for n in parts if n in freeze]:
            frozen = freeze[name]
            for module in parts[name]:
                for p in module.parameters():
                    p.requires_grad_(not frozen)

    def back_convert(self, targets):  # the trainer calls this on the model it trains
        return self.detector.back_convert(targets)

    # ----------------------------------------------------------------- forward

    def views_of(self, batch) -> ViewBatch:
        """The batch's ViewBatch. A conditioned model given a batch without one is an error: calling
        every frame "unknown view" would silently train without the angles."""
        views = getattr(batch, "views", None)
        n = batch.img_batch.shape[0]
        if views is None:
            if self.view_conditioning:
                raise ConfigError(
                    "ViewConditionedSam3 got a batch without view angles (a plain SAM3 BatchedDatapoint): "
                    "collate with sam3_angio.data.dataset.collate_fn_angio, or set model.view.conditioning=false"
                )
            return ViewBatch.unknown(n, batch.img_batch.device)
        if len(views) != n:
            raise ValueError(f"batch has {n} images but views for {len(views)}")
        return views

    def embed_views(self, views: ViewBatch, device) -> torch.Tensor:
        """ViewBatch -> (B, D). Without conditioning every frame gets the "unknown" embedding."""
        known = views.known.to(device)
        if not self.view_conditioning:
            known = torch.zeros_like(known)
        return self.view_encoder(views.angles.to(device), known)

    def image_features(self, img: torch.Tensor, e: torch.Tensor, views: ViewBatch) -> Dict[str, Any]:
        """SAM3's backbone on ``img`` (B, 3, S, S), its FPN maps modulated by FiLM(e)."""
        out = dict(self.detector.backbone.forward_image(img))
        if self.view_conditioning:
            active = views.known.to(img.device) if self.unknown_angles == "identity" else None
            fpn = [film(f, e, active) for film, f in zip(self.film, out["backbone_fpn"])]
            out["backbone_fpn"] = fpn
            out["vision_features"] = fpn[-1]
        return out

    def text_features(self, phrases: List[str], device) -> Dict[str, torch.Tensor]:
        """SAM3's language backbone on the batch's phrases; from the text cache when the backbone is
        frozen and the cache is on."""
        backbone = self.detector.backbone
        if not (self.use_text_cache and self.text_cache.usable(backbone.language_backbone)):
            return backbone.forward_text(phrases, device=device)
        return self.text_cache(lambda p: backbone.forward_text(p, device=device), backbone.language_backbone,
                               phrases, device)

    def ground(self, backbone_out: Dict[str, Any], batch) -> SAM3Output:
        """SAM3's per-stage grounding (``Sam3Image.forward`` after its backbone calls), unchanged."""
        det = self.detector
        if len(batch.find_inputs) != 1:
            raise ValueError(f"image model: expected one find stage, got {len(batch.find_inputs)}")
        find_input, find_target = batch.find_inputs[0], batch.find_targets[0]
        prompt = Prompt(box_embeddings=find_input.input_boxes, box_mask=find_input.input_boxes_mask,
                        box_labels=find_input.input_boxes_label)
        steps = 0 if self.training else det.num_interactive_steps_val
        stage_outs: List[dict] = []
        for step in range(steps + 1):
            if step > 0:
                prompt, _ = det.interactive_prompt_sampler.sample(
                    geo_prompt=prompt, find_target=find_target, previous_out=stage_outs[-1])
            stage_outs.append(det.forward_grounding(backbone_out=backbone_out, find_input=find_input,
                                                    find_target=find_target, geometric_prompt=prompt.clone()))
        outputs = SAM3Output(iter_mode=SAM3Output.IterMode.LAST_STEP_PER_STAGE)
        outputs.append(stage_outs)
        return outputs

    def forward(self, batch, clicks: Optional[Clicks] = None):
        """Training: the passes of ``self.modes``. Otherwise: automatic, or proofread when ``clicks``
        are given (``Clicks`` on one target segment per frame)."""
        img = batch.img_batch
        views = self.views_of(batch)
        e = self.embed_views(views, img.device)
        base = {"img_batch_all_stages": img}
        base.update(self.image_features(img, e, views))
        base.update(self.text_features(batch.find_text_batch, img.device))
        if self.training:
            modes = self.modes
        else:
            modes = ("proofread",) if clicks is not None else ("automatic",)
        results = {}
        for mode in modes:
            backbone_out = dict(base)
            if mode == "proofread":
                if clicks is None:
                    clicks = self.simulate_clicks(batch)
                backbone_out = self.prompted(backbone_out, clicks)
            results[mode] = self._decode(backbone_out, batch, e)
            if mode == "proofread":
                last = results[mode].output[-1][-1]
                last["clicks"] = clicks
        outputs = results[modes[0]]
        if self.training and modes != ("automatic",):
            outputs.mode_outputs = results  # what AngioLoss reads
            # DDP (find_unused_parameters) looks for the graph in the returned lists and dicts only: the
            # other passes must be reachable from it, or their parameters count as unused.
            outputs.output[-1][-1]["other_mode_outputs"] = {m: results[m] for m in modes[1:]}
        return outputs

    def prompted(self, backbone_out: Dict[str, Any], clicks: Clicks) -> Dict[str, Any]:
        """The prompt encoder's residual added to the (FiLM-modulated) FPN maps."""
        if self.prompt_encoder is None:
            raise ConfigError("clicks given to a model without a prompt encoder: train it with "
                              "training.modes=[automatic,proofread] (or [proofread])")
        fpn = self.prompt_encoder(list(backbone_out["backbone_fpn"]), clicks)
        return {**backbone_out, "backbone_fpn": fpn, "vision_features": fpn[-1]}

    def simulate_clicks(self, batch) -> Clicks:
        """Interactive sub-mode: clicks on one ground-truth segment per frame (``self.proofread``)."""
        target, inputs, meta = batch.find_targets[0], batch.find_inputs[0], batch.find_metadatas[0]
        num = target.num_boxes.long().cpu()
        obj_image = torch.repeat_interleave(inputs.img_ids.long().cpu(), num)
        cats = torch.as_tensor(meta.original_category_id).long().view(-1).cpu()
        obj_class = self.class_index(torch.repeat_interleave(cats, num))
        segments = target.segments
        if segments is not None and segments.shape[0] != obj_image.shape[0]:
            segments = None
        if segments is None:
            segments = boxes_to_masks(target.boxes.view(-1, 4).cpu(), batch.img_batch.shape[-2:])
        cfg = self.proofread
        return sample_clicks(segments, obj_image, obj_class, batch.img_batch.shape[0],
                             num_pos_points=int(cfg["num_pos_points"]), num_neg_points=int(cfg["num_neg_points"]),
                             point_sampling=cfg["point_sampling"])

    def _decode(self, backbone_out: Dict[str, Any], batch, e: torch.Tensor) -> SAM3Output:
        features = backbone_out["backbone_fpn"][-1]
        outputs = self.ground(backbone_out, batch)
        last = outputs.output[-1][-1]
        last["view_features"] = features
        last["view_embedding"] = e
        if self.cass_head is not None or self.regression_head is not None:
            regions = self._target_regions(batch, features)
            if self.cass_head is not None:
                self._add_cass_outputs(last, features, e, *regions)
            if self.regression_head is not None:
                self._add_regression_outputs(last, batch, features, e, *regions)
        known = self.known_pixels(batch)
        if known is not None:
            last["semantic_known"] = known
        return outputs

    @staticmethod
    def known_pixels(batch) -> Optional[torch.Tensor]:
        """Fractionary sub-mode, chosen per frame from the data: in a partly labelled frame (its queries
        non-exhaustive: the image record's ``labels_exhaustive: false``, or ``data.labels_exhaustive=false``)
        a pixel outside every labelled segment of the frame is unknown. Returns (Q, H, W) bool, True =
        known (the semantic loss skips the rest), or None when every frame is fully labelled."""
        target, inputs = batch.find_targets[0], batch.find_inputs[0]
        exhaustive = getattr(target, "is_exhaustive", None)
        segments = target.segments
        if exhaustive is None or segments is None or bool(exhaustive.bool().all()):
            return None
        num = target.num_boxes.long().to(segments.device)
        img_of_query = inputs.img_ids.long().to(segments.device)
        obj_image = torch.repeat_interleave(img_of_query, num)
        h, w = segments.shape[-2:]
        labelled = torch.zeros(int(batch.img_batch.shape[0]), h, w, device=segments.device)
        labelled.index_add_(0, obj_image, segments.float())
        known = labelled[img_of_query] > 0
        known[exhaustive.bool().to(known.device)] = True
        return known

    # ----------------------------------------------------------------- naming regions

    def name_regions(self, features: torch.Tensor, masks: torch.Tensor, image_idx: torch.Tensor,
                     e: torch.Tensor) -> torch.Tensor:
        """CASS logits (N, K) for regions ``masks`` (N, H, W) of images ``image_idx`` (N,), given the
        (FiLM-modulated) ``features`` (B, C, h, w) and view embeddings ``e`` (B, D) of the batch."""
        return self.cass_head(features, masks.to(features.device), image_idx.to(features.device), e)

    def regress_regions(self, features: torch.Tensor, masks: torch.Tensor, image_idx: torch.Tensor,
                        e: torch.Tensor) -> torch.Tensor:
        """The regression head on regions ``masks`` (N, H, W): (N, 3) stenosis %, MLD mm, reference mm."""
        pred = self.regression_head(features, masks.to(features.device), image_idx.to(features.device), e)
        return self.regression_head.denormalise(pred)

    def _target_regions(self, batch, features: torch.Tensor):
        """The batch's ground-truth target regions: masks (N, H, W) (boxes when segmentation is off),
        their image (N,), their query's category (N,), and the image of each query (Q,)."""
        target = batch.find_targets[0]
        inputs = batch.find_inputs[0]
        meta = batch.find_metadatas[0]
        device = features.device
        num = target.num_boxes.to(device).long()  # (Q,) objects per query
        img_of_query = inputs.img_ids.to(device).long()  # (Q,)
        image_idx = torch.repeat_interleave(img_of_query, num)
        cats = torch.as_tensor(meta.original_category_id, device=device).long().view(-1)
        masks = target.segments  # None when segmentation is off: the boxes stand in
        if masks is None or masks.shape[0] != image_idx.shape[0]:
            masks = boxes_to_masks(target.boxes.view(-1, 4), features.shape[-2:])
        return masks, image_idx, torch.repeat_interleave(cats, num), img_of_query

    def _add_regression_outputs(self, last: dict, batch, features: torch.Tensor, e: torch.Tensor,
                                masks: torch.Tensor, image_idx: torch.Tensor, cats: torch.Tensor,
                                img_of_query: torch.Tensor) -> None:
        """Regress every target region (normalised, as the loss compares) beside its measured values."""
        n = image_idx.shape[0]
        targets = getattr(batch, "qca_targets", None)
        if targets is None or targets.shape[0] != n:  # a plain SAM3 batch, or values lost: none measured
            targets = features.new_full((n, 3), float("nan"))
        scale = self.regression_head.denormalise(features.new_ones(1, 3))[0]  # (3,) normalised -> units
        last["qca_pred"] = self.regression_head(features, masks.to(features.device), image_idx, e)
        last["qca_targets"] = targets.to(features.device, features.dtype) / scale
        last["qca_image_idx"] = image_idx

    def _add_cass_outputs(self, last: dict, features: torch.Tensor, e: torch.Tensor, masks: torch.Tensor,
                          image_idx: torch.Tensor, cats: torch.Tensor, img_of_query: torch.Tensor) -> None:
        """Name every target segment of the batch from its ground-truth region (and, with
        ``cass_on_predictions`` in training, from the predicted masks matched to it)."""
        device = features.device
        labels = self.class_index(cats)
        logits = self.name_regions(features, masks, image_idx, e)
        if self.training and self.cass_on_predictions and "indices" in last and "pred_masks" in last:
            q_idx, p_idx, t_idx = last["indices"]
            t_idx = torch.arange(len(q_idx), device=device) if t_idx is None else t_idx.to(device)
            pred = (last["pred_masks"][q_idx, p_idx].detach() > 0)  # (M, h4, w4) matched predictions
            logits = torch.cat([logits, self.name_regions(features, pred, img_of_query[q_idx.to(device)], e)])
            labels = torch.cat([labels, labels[t_idx]])
            image_idx = torch.cat([image_idx, img_of_query[q_idx.to(device)]])
        last["cass_logits"] = logits
        last["cass_targets"] = labels
        last["cass_image_idx"] = image_idx

    def class_index(self, category_ids: torch.Tensor) -> torch.Tensor:
        """COCO category ids (= CASS numbers) -> head class index, -1 outside the class set."""
        table = self._cat_to_class.to(category_ids.device)
        valid = (category_ids >= 0) & (category_ids < table.numel())
        return torch.where(valid, table[category_ids.clamp(0, table.numel() - 1)],
                           torch.full_like(category_ids, -1))


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
    allow_random_init: bool = False,
    lora: Optional[Mapping[str, Any]] = None,
    activation_checkpointing: bool = True,
    shared_image_work: bool = False,
    **wrapper_kwargs,
) -> ViewConditionedSam3:
    """Build the SAM3 a config asks for (see ``build_model``) and wrap it with view conditioning.
    With ``lora`` the detector gets its adapters after wrapping (so ``freeze`` cannot unfreeze it);
    the wrapper's own heads keep what ``freeze`` says."""
    from sam3_angio.model.builders import build_model
    from sam3_angio.model.lora import apply_lora

    detector = build_model(name=name, checkpoint_path=checkpoint_path, bpe_path=bpe_path,
                           enable_segmentation=enable_segmentation, image_size=image_size,
                           allow_random_init=allow_random_init,
                           activation_checkpointing=activation_checkpointing,
                           shared_image_work=shared_image_work)
    model = ViewConditionedSam3(detector, **wrapper_kwargs)
    apply_lora(model.detector, lora)
    return model
