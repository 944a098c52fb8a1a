"""Vessel groups: train one adapter per group of coronary vessels (``data.vessel_group``).

``data.vessel_groups`` (YAML) maps a group name to the ``vessel_name`` values it holds (default
``rca: [RCA, PDA]``, ``left: [LM, LAD, LCX, Ramus]``). With ``data.vessel_group`` set, a COCO split keeps
only the annotations whose vessel is in the group, and only the frames left with at least one of them.
An annotation's vessel is its own ``vessel_name`` (the CASS and stenosis exports write one per
annotation); when it has none, its frame's ``vessel_name`` (the injected vessel of that frame: the
phase 1 whole-tree masks carry no per-annotation vessel).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from sam3_angio.errors import ConfigError, DataError

DEFAULT_GROUPS: Dict[str, Tuple[str, ...]] = {"rca": ("RCA", "PDA"), "left": ("LM", "LAD", "LCX", "Ramus")}


def as_groups(groups: Optional[Mapping[str, Sequence[str]]]) -> Optional[Dict[str, List[str]]]:
    """A ``data.vessel_groups`` table (an OmegaConf node or a dict) as plain ``{str: [str, ...]}``."""
    return {str(k): [str(v) for v in vs] for k, vs in groups.items()} if groups else None


def group_vessels(group: str, groups: Optional[Mapping[str, Sequence[str]]] = None) -> Tuple[str, ...]:
    """The ``vessel_name`` values of ``group`` in ``groups`` (default ``DEFAULT_GROUPS``); an unknown
    group is a ConfigError naming ``data.vessel_group`` and the groups that exist."""
    groups = DEFAULT_GROUPS if groups is None else groups
    if group not in groups:
        raise ConfigError(
            f"data.vessel_group={group!r}: not a group of data.vessel_groups; the groups are "
            f"{', '.join(sorted(groups)) or '(none)'} (or null for every vessel)")
    vessels = groups[group]
    if isinstance(vessels, str) or not vessels:
        raise ConfigError(f"data.vessel_groups.{group}: expected a list of vessel names (e.g. [RCA, PDA]), "
                          f"found {vessels!r}")
    return tuple(str(v) for v in vessels)


def annotation_vessel(ann: Mapping[str, Any], image: Mapping[str, Any]) -> Optional[str]:
    """The vessel an annotation shows: its own ``vessel_name``, else its frame's; None when neither."""
    name = ann.get("vessel_name") or image.get("vessel_name")
    return str(name) if name else None


def filter_grouped(grouped: List[dict], group: str, groups: Optional[Mapping[str, Sequence[str]]],
                   where: str) -> List[dict]:
    """SAM3's per-image records ``[{"image": rec, "annotations": [...]}, ...]`` restricted to ``group``:
    only the group's annotations, only frames with at least one left. ``where``: the file, for errors."""
    vessels = {v.lower() for v in group_vessels(group, groups)}
    named = False
    out: List[dict] = []
    for entry in grouped:
        image = entry["image"]
        keep = []
        for ann in entry["annotations"]:
            vessel = annotation_vessel(ann, image)
            named = named or vessel is not None
            if vessel is not None and vessel.lower() in vessels:
                keep.append(ann)
        if keep:
            out.append({**entry, "annotations": keep})
    if not named:
        raise ConfigError(
            f"data.vessel_group={group!r}: {where} has no vessel_name on its annotations or images, so it cannot "
            f"be split by vessel (ARCADE has none); use data made by tools/convert_to_coco.py from the study CSV "
            f"or the synthetic demo, or set data.vessel_group=null. "
            f"Groups: {', '.join(sorted(groups or DEFAULT_GROUPS))}")
    if not out:
        raise DataError(
            f"data.vessel_group={group!r}: no frame of {where} has an annotation of {', '.join(sorted(vessels))} "
            f"(vessel_name); check data.vessel_groups.{group} or the split")
    return out


def filter_coco(data: Mapping[str, Any], group: str, groups: Optional[Mapping[str, Sequence[str]]],
                where: str) -> Dict[str, Any]:
    """A COCO dataset dict restricted to ``group`` (see ``filter_grouped``): the kept images and their
    kept annotations, categories unchanged."""
    anns: Dict[Any, List[dict]] = {}
    for ann in data.get("annotations", []):
        anns.setdefault(ann.get("image_id"), []).append(ann)
    grouped = [{"image": im, "annotations": anns.get(im.get("id"), [])} for im in data.get("images", [])]
    kept = filter_grouped(grouped, group, groups, where)
    return {**data, "images": [e["image"] for e in kept], "annotations": [a for e in kept for a in e["annotations"]]}
