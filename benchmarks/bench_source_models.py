"""Source models compared: images/s of VGG16 and EfficientNet-Lite0, through the pipeline and bare.

    python benchmarks/bench_source_models.py [--images 16 64] [--crops 1] [--batch-size 10]
        [--repeats 2] [--models vgg16_imagenet efficientnet_lite0_imagenet] [--decode-workers N]

Prints, measured in this one run on real images of ../shared/datasets, for each source model:
images/s through the extraction pipeline (plan, decode, crop, forward, shard writes) and of the
bare forward pass on the same crops already in memory, the ratio pipeline / bare (target >= 0.9:
decode and crop keep up with the model), then each model's images/s against the first's (target
for EfficientNet-Lite0 against VGG16: >= 4). Each model's speed is bench_feature_extraction.py's
speed run (4N images, pipeline and bare timed in alternation, both warmed up: steady state, the
pipeline's one-off model tracing printed apart) in a process of its own; the models
take turns `--repeats` times so that a change in the machine's load hits all of them, and the
figures add their turns up. The time each pipeline run spends on what does not grow with its
images (planning, and writing and syncing its shard of every feature column) is printed with the
ratio left without it: with few images a run it, not decoding, is most of what a fast model's
pipeline loses. Needs the weights of `make setup`.
"""

from __future__ import annotations

import argparse
import os

from bench_feature_extraction import run_child
from load_average import load_average_line


def speed_run(model: str, images: int, args: argparse.Namespace) -> dict:
    """One speed run of bench_feature_extraction.py for `model`, in a process of its own."""
    return run_child("speed", 4 * images, args, model, warm=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        type=int,
        nargs="+",
        default=[16, 64],
        help="N per model (one value: all); speed is measured on 4N images, in `--rounds` runs "
        "of the pipeline: a fast model needs more images for a run's fixed costs to amortise",
    )
    parser.add_argument(
        "--decode-workers", type=int, help="decoding threads (default: feature_extraction's)"
    )
    parser.add_argument("--crops", type=int, default=1, choices=[1, 10])
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=512, help="as feature_extraction's")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="turns each model takes")
    parser.add_argument(
        "--models", nargs="+", default=["vgg16_imagenet", "efficientnet_lite0_imagenet"]
    )
    args = parser.parse_args()
    images = dict(
        zip(args.models, args.images * len(args.models) if len(args.images) == 1 else args.images)
    )
    if len(images) != len(args.models):
        parser.error("--images: one value, or one per model")

    load_before = os.getloadavg()
    totals = {
        model: {"images": 0, "pipeline_s": 0.0, "bare_s": 0.0, "warm_up_s": 0.0, "per_run_s": 0.0}
        for model in args.models
    }
    features = {}
    for _ in range(args.repeats):
        for model in args.models:
            run = speed_run(model, images[model], args)
            features[model] = run["features"]
            for key in totals[model]:
                totals[model][key] += run[key]
    load_after = os.getloadavg()

    print(
        f"command: python benchmarks/bench_source_models.py --images {' '.join(map(str, args.images))} "
        f"--crops {args.crops} --batch-size {args.batch_size} --shard-size {args.shard_size} "
        f"--rounds {args.rounds} --repeats {args.repeats} --models {' '.join(args.models)}"
        + ("" if args.decode_workers is None else f" --decode-workers {args.decode_workers}")
    )
    rates = {}
    for model, total in totals.items():
        pipeline = total["images"] / total["pipeline_s"]
        bare = total["images"] / total["bare_s"]
        rates[model] = (pipeline, bare)
        print(
            f"{model} ({features[model]} features): pipeline {pipeline:.2f} images/s, bare "
            f"{bare:.2f} images/s, pipeline / bare {pipeline / bare:.3f} (target >= 0.9), over "
            f"{total['images']} images; one-off pipeline warm-up (model tracing) "
            f"{total['warm_up_s'] / args.repeats:.1f} s per run, not timed"
        )
        runs = args.repeats * args.rounds
        print(
            f"  of the pipeline's {total['pipeline_s']:.2f} s, {total['per_run_s']:.2f} s are what "
            f"each of its {runs} runs of {total['images'] // runs} images pays once (planning, a "
            f"shard of every feature column written and synced: "
            f"{1000 * total['per_run_s'] / runs:.0f} ms a run); pipeline / bare without them "
            f"{total['bare_s'] / (total['pipeline_s'] - total['per_run_s']):.3f}"
        )
    first = args.models[0]
    for model in args.models[1:]:
        print(
            f"{model} / {first}: pipeline {rates[model][0] / rates[first][0]:.2f}x, bare "
            f"{rates[model][1] / rates[first][1]:.2f}x (target for EfficientNet-Lite0 / VGG16 >= 4)"
        )
    print(load_average_line(load_before, load_after))


if __name__ == "__main__":
    main()
