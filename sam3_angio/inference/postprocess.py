"""Model outputs -> named instances per image: the one postprocessing that validation, ``tools/eval.py``
and ``tools/predict.py`` share, so their numbers cannot disagree.

    last stage dict: pred_logits (Q, N, 1), presence_logit_dec (Q, 1), pred_boxes (Q, N, 4) cxcywh in [0, 1],
                     pred_masks (Q, N, h, w) logits, [view_features (B, C, h', w'), view_embedding (B, D)]
    find_input.img_ids (Q,) batch image of each text query;  metadata: original_image_id / _category_id (Q,),
                     original_size (Q, 2) = (H, W) of the frame as read
    -> {image_id: [instance, ...]} sorted by score, at most ``max_dets`` an image

An instance is a COCO result (``image_id``, ``category_id``, ``score``, ``bbox`` [x, y, w, h] px,
``segmentation`` compressed RLE at (H, W), ``area``) plus ``cass_name`` (the category's name),
``query_category_id`` and ``detection_score`` (the query that found it and its score) and, for a model
with a CASS head, ``cass_probs`` ({name: probability}); names follow ``naming.py``. A model with a
regression head adds its estimates on the predicted mask: ``predicted_stenosis_pct``,
``predicted_mld_mm``, ``predicted_reference_diameter_mm``. Scores are SAM3's
(sigmoid of the query logit times the presence probability); masks are SAM3's (bilinear to (H, W),
sigmoid > 0.5), as in its own ``PostProcessImage``.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from sam3_angio.cass import CASS_BY_ID, cass_name
from sam3_angio.inference.naming import check_rule, name_probabilities

QCA_KEYS = ("stenosis_pct", "mld_mm", "reference_diameter_mm")  # a regression head's outputs, in order


def _cass_name_or_id(category_id: int) -> str:
    return CASS_BY_ID[category_id].name if category_id in CASS_BY_ID else str(category_id)


def _rle(masks: torch.Tensor) -> List[dict]:
    """(M, H, W) bool -> compressed RLEs with str counts."""
    if masks.shape[0] == 0:
        return []
    arr = np.asfortranarray(masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8))
    rles = mask_utils.encode(arr)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def _dedup(order: List[int], cats: List[int], rles: List[dict], iou_thr: float) -> List[int]:
    """Greedy per-category mask NMS over ``order`` (best first): renaming can put two instances of one
    region under the same name, which COCO would count as a duplicate."""
    kept: List[int] = []
    for i in order:
        same = [j for j in kept if cats[j] == cats[i]]
        if same:
            ious = mask_utils.iou([rles[i]], [rles[j] for j in same], [0] * len(same))
            if np.max(ious) > iou_thr:
                continue
        kept.append(i)
    return kept


@torch.no_grad()
def predict_instances(
    last: Mapping[str, torch.Tensor],
    find_input,
    metadata,
    categories: Mapping[int, str],
    model: Optional[torch.nn.Module] = None,
    rule: str = "fused",
    max_dets: int = 100,
    dedup_iou: float = 0.7,
    use_presence: bool = True,
) -> Dict[int, List[dict]]:
    """Named instances of every image of a batch (see the module docstring). ``model``: the
    (unwrapped) model, whose CASS head names the predicted masks when it has one."""
    check_rule(rule)
    probs = last["pred_logits"].float().sigmoid()[..., 0]  # (Q, N)
    if use_presence and "presence_logit_dec" in last:
        probs = probs * last["presence_logit_dec"].float().sigmoid().view(-1, 1)
    q_img = find_input.img_ids.long().cpu()
    image_ids = torch.as_tensor(metadata.original_image_id).long().view(-1).cpu()
    cats = torch.as_tensor(metadata.original_category_id).long().view(-1).cpu()
    sizes = torch.as_tensor(metadata.original_size).long().view(-1, 2).cpu()
    has_features = "view_features" in last and "pred_masks" in last
    names_head = getattr(model, "cass_head", None) is not None and hasattr(model, "name_regions") and has_features
    regresses = getattr(model, "regression_head", None) is not None and has_features
    n_per_query = probs.shape[1]
    out: Dict[int, List[dict]] = {}
    for image_id in torch.unique(image_ids).tolist():
        qs = (image_ids == image_id).nonzero().flatten()
        flat = probs[qs.to(probs.device)].flatten()
        k = min(int(max_dets), flat.numel())
        top = flat.topk(k)
        idx = top.indices.cpu()
        q_sel, n_sel = qs[idx // n_per_query], idx % n_per_query
        score = top.values.cpu()
        query_cat = cats[q_sel]
        h, w = sizes[q_sel[0]].tolist() if k else (0, 0)

        low = last["pred_masks"][q_sel, n_sel].float() if "pred_masks" in last else None  # (k, h4, w4)
        if names_head:
            head_logits = model.name_regions(last["view_features"], low > 0, q_img[q_sel], last["view_embedding"])
            head = head_logits.float().softmax(dim=1).cpu()
            class_ids = list(model.class_ids)
            p = name_probabilities(rule, model.class_index(query_cat), score, head, len(class_ids))
        else:
            p, class_ids = None, []
        values = (model.regress_regions(last["view_features"], low > 0, q_img[q_sel], last["view_embedding"])
                  .float().cpu().tolist() if regresses and k else None)
        if p is None or rule == "query":
            final_cat, final_score = query_cat, score  # SAM3's own answer: the query's category and score
        else:
            best = p.argmax(dim=1)
            final_cat = torch.tensor([class_ids[i] for i in best.tolist()], dtype=torch.long)
            final_score = score * p.gather(1, best[:, None])[:, 0]

        if low is not None and k:
            masks = F.interpolate(low[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0] > 0
            rles = _rle(masks)
            areas = masks.flatten(1).sum(1).tolist()
        else:
            rles, areas = [None] * k, [None] * k
        boxes = last["pred_boxes"][q_sel, n_sel].float().cpu()  # (k, 4) cxcywh in [0, 1]
        xywh = torch.stack([(boxes[:, 0] - boxes[:, 2] / 2) * w, (boxes[:, 1] - boxes[:, 3] / 2) * h,
                            boxes[:, 2] * w, boxes[:, 3] * h], dim=1).tolist()

        order = sorted(range(k), key=lambda i: -float(final_score[i]))
        cat_list = final_cat.tolist()
        if rule != "query" and rles and rles[0] is not None:
            order = _dedup(order, cat_list, rles, dedup_iou)
        records = []
        for i in order:
            rec = {"image_id": int(image_id), "category_id": int(cat_list[i]), "score": float(final_score[i]),
                   "bbox": [round(float(v), 2) for v in xywh[i]],
                   "cass_name": categories.get(int(cat_list[i])) or _cass_name_or_id(int(cat_list[i])),
                   "query_category_id": int(query_cat[i]), "detection_score": float(score[i])}
            if rles[i] is not None:
                rec["segmentation"] = rles[i]
                rec["area"] = int(areas[i])
            if p is not None:  # the head's classes are CASS numbers: named from the CASS table
                rec["cass_probs"] = {cass_name(c): round(float(v), 4) for c, v in zip(class_ids, p[i].tolist())}
            if values is not None:
                rec.update({f"predicted_{key}": round(float(v), 3) for key, v in zip(QCA_KEYS, values[i])})
            records.append(rec)
        out[int(image_id)] = records
    return out
