"""The files QCA writes: ``qca.json`` (every segment with its lesions, docs/qca.md) and ``qca.csv``
(one row per lesion), into a folder that appears complete or not at all.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import List, Union

from .batch import QCAReport

PathLike = Union[str, Path]
JSON_NAME = "qca.json"
CSV_NAME = "qca.csv"
CSV_COLUMNS = ("input", "frame", "cass_segment", "cass_name", "lesion", "percent_diameter_stenosis", "mld",
               "reference_diameter", "lesion_length", "position", "units", "open_end")


def csv_rows(report: QCAReport) -> List[dict]:
    """One row per lesion (lesion-free segments are in qca.json only); lengths in the row's ``units``."""
    rows = []
    for seg in report.segments:
        for k, les in enumerate(seg.lesions, 1):
            d = les.to_dict()
            u = seg.units
            rows.append({
                "input": seg.source, "frame": seg.meta.get("frame") or "",
                "cass_segment": "" if seg.meta.get("cass_segment") is None else seg.meta["cass_segment"],
                "cass_name": seg.meta.get("cass_name") or "", "lesion": k,
                "percent_diameter_stenosis": d["percent_diameter_stenosis"], "mld": d[f"mld_{u}"],
                "reference_diameter": d[f"reference_diameter_{u}"], "lesion_length": d[f"lesion_length_{u}"],
                "position": d[f"position_{u}"], "units": u, "open_end": d["open_end"] or "",
            })
    return rows


def write_report(report: QCAReport, folder: PathLike, profile: bool = False) -> None:
    """Write ``qca.json`` and ``qca.csv`` into ``folder`` (the caller makes the folder atomic)."""
    folder = Path(folder)
    with open(folder / JSON_NAME, "w", encoding="utf-8") as f:
        json.dump(report.to_dict(profile=profile), f, indent=2)
        f.write("\n")
    with open(folder / CSV_NAME, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(csv_rows(report))
