"""Cost of ``base_fingerprint`` (adapter.pt's base check, computed at every LoRA checkpoint save) on
sam3_tiny and the real 840 M architecture (random weights, CPU, ~4 GB), and the adapter's size.

    python bench/bench_adapter_fingerprint.py
"""
import argparse
import time

import torch

from sam3_angio.cass import DEFAULT_CLASS_IDS
from sam3_angio.model.adapters import adapter_tensors, base_fingerprint
from sam3_angio.model.lora import DEFAULT_TARGETS, apply_lora
from sam3_angio.model.view_conditioned import build_view_conditioned

# --help before any work: the benchmark itself builds models (the real 840 M one: ~4 GB)
argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
torch.set_num_threads(1)
for name, size in (("sam3_tiny", None), ("sam3", 1008)):
    t0 = time.perf_counter()
    kw = {"image_size": size} if size else {}
    model = build_view_conditioned(name=name, checkpoint_path=None, allow_random_init=True,
                                   class_ids=list(DEFAULT_CLASS_IDS), **kw)
    apply_lora(model.detector, {"enabled": True, "r": 16, "alpha": 32, "targets": list(DEFAULT_TARGETS)})
    built = time.perf_counter() - t0
    n = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fp = base_fingerprint(model)
        times.append(time.perf_counter() - t)
    ad = adapter_tensors(model.state_dict())
    mb = sum(v.numel() * v.element_size() for v in ad.values()) / 2**20
    print(f"{name}: built {built:.0f} s, {n:,d} parameters ({frozen:,d} frozen); base_fingerprint {fp} "
          f"in {min(times):.3f} s (min of 3, 1 thread); adapter tensors {mb:.1f} MB")
    del model
