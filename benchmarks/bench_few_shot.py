"""Few-shot accuracy and retrieval scores on a real embedding: the shared Caltech-101 one.

    python benchmarks/bench_few_shot.py
    python benchmarks/bench_few_shot.py --episodes 5 --no-retrieval

Reads `../shared/embeddings/caltech101-vgg16-conv/` (8,677 images, VGG16's 13 conv layers,
4,224 features, 101 classes; skipped with the reason where absent), draws the customary split
(30 training images per class, seeded, one repetition: the caltech101 environment's), and times
the few_shot pipeline's computation with the default settings (k = 1, 5, 10; 20 episodes;
nearest class mean and the logistic regression at C = 1) and the retrieval pipeline's (every
layer, the full network and the FNE, leave-one-out over every image). Prints the best embedding
per (method, k) and for search, wall and CPU seconds, and the load average.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from builders.project import PROJECT_ROOT
from load_average import load_average_line

from cnn_feature_behavior.transfer.few_shot import FewShotSettings, few_shot_results
from cnn_feature_behavior.transfer.retrieval import RetrievalSettings, retrieval_scores
from cnn_feature_behavior.transfer.splits import transfer_splits

EMBEDDING = PROJECT_ROOT.parent / "shared" / "embeddings" / "caltech101-vgg16-conv"


def load(folder: Path):
    manifest = pd.read_parquet(folder / "feature_manifest.parquet")
    table = pd.read_parquet(folder / "embedding.parquet")
    features = manifest["feature"].tolist()
    values = table[features].to_numpy(np.float32)
    index = pd.DataFrame(
        {
            "image_id": table["image_id"].astype(str),
            "label": table["label"].astype(np.int64),
            "class_name": table["class_name"].astype(str),
        }
    )
    return values, index, manifest["layer"].astype(str).tolist()


def timed(function, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding", type=Path, default=EMBEDDING)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--no-retrieval", action="store_true")
    args = parser.parse_args()
    if not (args.embedding / "embedding.parquet").is_file():
        print(f"SKIPPED: no real embedding at {args.embedding} (../shared is absent)")
        return
    logging.basicConfig(level=logging.WARNING)
    values, index, layers = load(args.embedding)
    splits = transfer_splits(
        index, {"use_official": False, "train_per_class": 30, "repetitions": 1}
    )
    is_train = {0: (splits["split"] == "train").to_numpy()}
    before = os.getloadavg()
    settings = FewShotSettings(episodes=args.episodes)
    few, wall, cpu = timed(few_shot_results, values, index["label"].to_numpy(), layers,
                           is_train, settings)  # fmt: skip
    print(f"few-shot: {len(values)} images, {values.shape[1]} features, {len(few)} rows: "
          f"wall {wall:.1f} s, CPU {cpu:.1f} s")  # fmt: skip
    for (method, k), group in few.groupby(["method", "k"]):
        best = group.loc[group["mean"].idxmax()]
        print(f"  {method} {k}-shot: best {best['layer'] or best['embedding']} "
              f"{best['mean']:.3f} [{best['ci_low']:.3f}, {best['ci_high']:.3f}], "
              f"{int(group['tied_with_best'].sum())} tied")  # fmt: skip
    if not args.no_retrieval:
        scores, wall, cpu = timed(retrieval_scores, values, index["label"].to_numpy(), layers,
                                  RetrievalSettings())  # fmt: skip
        print(f"retrieval: wall {wall:.1f} s, CPU {cpu:.1f} s")
        for _, row in scores.iterrows():
            print(f"  {row['layer'] or row['embedding']}: mAP@10 {row['map_at_k']:.3f} "
                  f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]{' tied' if row['tied_with_best'] else ''}"
                  f" ({row['seconds']:.1f} s)")  # fmt: skip
    print(load_average_line(before, os.getloadavg()))


if __name__ == "__main__":
    main()
