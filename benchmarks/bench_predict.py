"""Benchmark of the predict pipeline against the feature_extraction pipeline, same network and crops.

    python benchmarks/bench_predict.py [--images 24] [--crops 1] [--batch-size 10] [--rounds 6]
        [--source-model vgg16_imagenet]

Both sides run on the same 4N real JPEGs of ../shared/datasets, in alternation (a sixth of the
images at a time, the order swapped every round) so that the machine's load hits both alike:
- extraction: the feature_extraction pipeline's work (`bench_feature_extraction.pipeline_seconds`:
  plan, decode, crop, forward pass of every layer, crop mean, shard writes);
- predict: `export.predict.predict_folder` on a folder of those images (listing, decode, crop,
  the exported classifier's forward pass, the top-5 table) with an exported model of the
  heaviest configuration, the full network (every layer tapped), written to a .keras file and
  read back as the predict pipeline reads it.
Both are warmed first (one untimed image each: model tracing). Prints images/s of each, and

    RESULT predict ratio=<predict / extraction> predict_ips=<a> extraction_ips=<b>

(target: ratio >= 0.9), then the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_feature_extraction import Extraction, _setup, pipeline_seconds
from load_average import load_average_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from builders.exported_models import exported_classifier, random_linear_map  # noqa: E402


def exported_full_network(backbone, spec, layers, settings, crops: int, folder: Path):
    """An exported classifier on every feature (random weights: speed only), read back from its
    file as the predict pipeline reads it."""
    from cnn_feature_behavior.export.keras_model import Geometry
    from cnn_feature_behavior.export.model_file import load_model_file, save_model_file

    classifier = exported_classifier(
        backbone,
        layers,
        lambda manifest: random_linear_map(
            np.arange(len(manifest)), [f"class{k}" for k in range(10)], standardise=False
        ),
        Geometry(crops, settings["resize"], settings["crop"]),
        preprocessing=spec["preprocessing"],
    )
    path = folder / "classifier.keras"
    save_model_file(classifier, path)
    return load_model_file(path)


def round_folders(raw: Path, index, parts, root: Path) -> list[Path]:
    """One folder per round holding copies of that round's images (predict reads a folder)."""
    folders = []
    for number, part in enumerate(parts):
        folder = root / f"round{number}"
        folder.mkdir(parents=True)
        for k, path in enumerate(index["path"].iloc[part]):
            shutil.copyfile(raw / path, folder / f"{k:04d}{Path(path).suffix}")
        folders.append(folder)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="N; speed is measured on 4N images")
    parser.add_argument("--crops", type=int, default=1, choices=[1, 10])
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--source-model", default="vgg16_imagenet")
    args = parser.parse_args()

    from cnn_feature_behavior.export.predict import PredictSettings, predict_folder

    load_before = os.getloadavg()
    count = 4 * args.images
    settings, spec, backbone, layers, raw, index = _setup(count, args.source_model)
    if index["image_id"].str.contains("#").any():
        sys.exit(f"--images {args.images}: more images than the shared datasets hold (700 / 4)")
    extraction = Extraction(
        backbone, spec, tuple(layers), settings, args.crops, args.batch_size, args.batch_size * 4
    )
    predict_settings = PredictSettings(
        batch_size=args.batch_size, decode_workers=settings["decode_workers"]
    )
    parts = np.array_split(np.arange(count), args.rounds)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        exported = exported_full_network(backbone, spec, layers, settings, args.crops, root)
        folders = round_folders(raw, index, [*parts, np.arange(1)], root)
        pipeline_seconds(index.iloc[:1], raw, extraction)  # warm: tracing, not timed
        predict_folder(exported, folders[-1], predict_settings)
        wall = {"extraction": 0.0, "predict": 0.0}
        cpu = dict(wall)
        for number, part in enumerate(parts):
            sides = ["extraction", "predict"] if number % 2 == 0 else ["predict", "extraction"]
            for side in sides:
                start, start_cpu = time.perf_counter(), time.process_time()
                if side == "extraction":
                    pipeline_seconds(index.iloc[part], raw, extraction)
                else:
                    predictions, _ = predict_folder(exported, folders[number], predict_settings)
                    assert len(predictions) == len(part), "every image is classified"
                wall[side] += time.perf_counter() - start
                cpu[side] += time.process_time() - start_cpu
    load_after = os.getloadavg()

    extraction_ips, predict_ips = count / wall["extraction"], count / wall["predict"]
    print(
        f"command: python benchmarks/bench_predict.py --images {args.images} --crops {args.crops} "
        f"--batch-size {args.batch_size} --rounds {args.rounds} --source-model {args.source_model}"
    )
    print(
        f"{args.source_model}, {len(layers)} layers tapped, {args.crops} crop(s)/image, "
        f"{count} images in {args.rounds} alternated rounds"
    )
    for side, ips in (("extraction", extraction_ips), ("predict", predict_ips)):
        print(
            f"{side} pipeline: {ips:.2f} images/s ({wall[side]:.1f} s wall, "
            f"{cpu[side]:.1f} s CPU of all threads)"
        )
    print(f"CPU time per image, predict / extraction: {cpu['predict'] / cpu['extraction']:.3f}")
    print(
        f"RESULT predict ratio={predict_ips / extraction_ips:.3f} predict_ips={predict_ips:.3f} "
        f"extraction_ips={extraction_ips:.3f}"
    )
    print(load_average_line(load_before, load_after))


if __name__ == "__main__":
    main()
