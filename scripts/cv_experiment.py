"""Cross-validate one model with overridden params, without touching models/, MLflow or DVC.

For choosing training params before a full `dvc repro`: prints the OOF figures
(the same procedure and metrics as the train stages) and writes them as JSON.

    python scripts/cv_experiment.py transformer epochs=5 learning_rate=5e-5 --out exp.json

Choosing params on the OOF figures that are then reported makes those figures
slightly optimistic; the note of the run that uses the result should say so.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import time
from dataclasses import fields, replace
from pathlib import Path

from pipeline.config import load_params
from pipeline.dataset import load_examples
from pipeline.evaluate import oof_metrics
from pipeline.schema import atomic_open, write_jsonl
from pipeline.training import cross_validate, oof_rows


def parse_override(text: str, allowed: set[str], section: str) -> tuple[str, object]:
    """`key=value` of the model's params section; the value is read as JSON when it parses."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"override {text!r}: expected key=value")
    if key not in allowed:
        raise SystemExit(
            f"override {text!r}: {section} has no param {key!r}; expected one of "
            + ", ".join(sorted(allowed))
        )
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["tfidf", "embed", "transformer"])
    parser.add_argument("overrides", nargs="*", help="key=value of the model's params section")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, help="write the figures and settings here (JSON)")
    parser.add_argument("--oof", type=Path, help="write the OOF rows here (JSONL)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    params = load_params(args.params)
    base = getattr(params, args.model)
    allowed = {f.name for f in fields(base)}
    cfg = replace(base, **dict(parse_override(o, allowed, args.model) for o in args.overrides))
    examples = load_examples(params.path("dataset_dir"))
    trainer = importlib.import_module(f"pipeline.train_{args.model}")
    learner = trainer.make_learner(replace(params, **{args.model: cfg}), examples)
    start = time.perf_counter()
    result = cross_validate(examples, learner)
    rows = oof_rows(examples, result)
    figures = oof_metrics(rows, params.evaluate.ece_bins, params.dataset.seed_prefix)
    seconds = time.perf_counter() - start
    per = figures["per_label"]
    seeds = figures["leave_seeds_out"]
    print(
        f"{args.model} {' '.join(args.overrides)}: macro-F1 {figures['macro_f1']:.3f} "
        + " ".join(f"{k} {v['f1']:.3f}" for k, v in per.items())
        + f" | seeds {seeds['macro_f1']:.3f} | {seconds:.0f} s"
    )
    if args.out:
        with atomic_open(args.out) as out:
            json.dump({"settings": learner.settings(), "seconds": seconds, "figures": figures}, out)
    if args.oof:
        write_jsonl(args.oof, rows)


if __name__ == "__main__":
    main()
