"""tools/predict.py --adapters on the tiny model: wall time with --vessel (one pass) vs the score rule
(one pass per group): 2 perturbed adapters on one random base, 4 frames of 128 px, CPU.

    python bench/bench_adapter_predict.py
"""
import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tiny_coco import cass_categories, write_tiny_coco  # noqa: E402

from sam3_angio.inference.adapters import AdapterPredictor  # noqa: E402
from sam3_angio.inference.predictor import build_run_model  # noqa: E402
from sam3_angio.model.adapters import OWN_HEADS, adapter_info, save_adapter  # noqa: E402
from sam3_angio.model.lora import LORA_KEY, canonical_key  # noqa: E402

# --help before any work: the benchmark itself builds models (the real 840 M one: ~4 GB)
argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
root = Path(tempfile.mkdtemp())
write_tiny_coco(str(root / "coco_cass"), cass_categories([1, 2, 12, 13]), n_train=1, n_val=4)
ov = ["model.name=sam3_tiny", "model.class_ids=[1,2,12,13]", "model.lora.enabled=true", "model.lora.r=4",
      f"paths.data_root={root}", "data.demo.generate_if_missing=false"]
cfg_path = "configs/angiography/cass.yaml"
torch.manual_seed(0)
_, model = build_run_model(cfg_path, ov, {"model": "sam3_tiny", "task": "cass"}, "x")
torch.save({canonical_key(k): v for k, v in model.state_dict().items()
            if LORA_KEY not in k and not k.startswith(OWN_HEADS)}, root / "base.pt")
for seed, g in enumerate(("rca", "left")):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n or n.startswith(OWN_HEADS):
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)) * 0.2)
    (root / "ad" / g).mkdir(parents=True)
    run = {"task": "cass", "model": "sam3_tiny", "class_ids": [1, 2, 12, 13], "vessel_group": g}
    save_adapter(m.state_dict(), str(root / "ad" / g / "adapter.pt"), adapter_info(m, run))
frames = [np.asarray(Image.open(p)) for p in sorted((root / "coco_cass" / "val" / "images").glob("*.png"))]
t = time.perf_counter()
ap = AdapterPredictor.from_base(str(root / "base.pt"), str(root / "ad"), config=cfg_path, overrides=ov, device="cpu")
print(f"built base + 2 merged adapters in {time.perf_counter() - t:.1f} s")
for vessel in ("rca", None):
    ap.vessel = vessel
    ap.predict(frames[:1], None, [0])  # warm-up
    ts = []
    for _ in range(3):
        t = time.perf_counter()
        ap.predict(frames, None, list(range(len(frames))))
        ts.append(time.perf_counter() - t)
    print(f"--vessel {vessel}: {min(ts) / len(frames):.3f} s/frame (min of 3 over {len(frames)} frames); choices "
          f"{[ap.choice_for(i)['group'] for i in range(len(frames))]}")
