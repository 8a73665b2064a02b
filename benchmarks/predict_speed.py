"""Prediction speed and memory, as a user meets them.

For each model, the whole `claims predict --sentences FILE --model M` process
(start-up and model load included) tags the same N distinct pool sentences;
the naive `transformers.pipeline(...)` runs in-process on the same sentences
(its imports excluded, its model load included). Also: one-article
`claims predict` start-to-finish per model, and peak memory of each process.

    python benchmarks/predict_speed.py [--n 5000] [--json metrics/speed.json]

Not a test: it prints figures and writes them as JSON (a DVC metric).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("tfidf", "embed", "transformer")
TARGETS = {
    "transformer_vs_naive_ratio": 4.0,
    "tfidf_in_process_sentences_per_s": 10_000,
    "one_article_tfidf_s": 3.0,
    "one_article_transformer_s": 8.0,
    "peak_rss_mb": 1536,
}
MEASURE = (
    "import resource, subprocess, sys, time, json\n"
    "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], capture_output=True)\n"
    "dt = time.perf_counter() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "print(json.dumps({'seconds': dt, 'rss_mb': rss, 'rc': r.returncode,"
    " 'stderr': r.stderr.decode()[-500:]}))\n"
)


def distinct_sentences(n: int, seed: int = 7) -> list[dict[str, str]]:
    seen: set[str] = set()
    rows = []
    with open(ROOT / "data" / "sentences.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            key = " ".join(rec["text"].split()).lower()
            if rec["article_id"].startswith("fakes-") and key not in seen:
                seen.add(key)
                rows.append({"id": rec["sentence_id"], "text": rec["text"]})
    random.Random(seed).shuffle(rows)
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} distinct pool sentences, asked for {n}")
    return rows[:n]


def timed(cmd: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, cwd=ROOT
    )
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {result['stderr']}")
    return result


def claims(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "-q", "predict", *args]


def naive_pipeline(texts: list[str]) -> float:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import pipeline  # import excluded from the timing

    start = time.perf_counter()
    pipe = pipeline(
        "text-classification",
        model=str(ROOT / "models" / "transformer"),
        top_k=None,
        function_to_apply="sigmoid",
    )
    pipe(texts)
    return len(texts) / (time.perf_counter() - start)


def tfidf_in_process(texts: list[str]) -> tuple[float, float]:
    """(compiled, scikit-learn) sentences/s of the TF-IDF model in one process, load excluded."""
    sys.path.insert(0, str(ROOT))
    from pipeline.models import load_model

    model = load_model(ROOT / "models" / "tfidf")
    start = time.perf_counter()
    model.raw_scores(texts)
    compiled = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    model.pipeline.predict_proba(texts)
    sklearn = len(texts) / (time.perf_counter() - start)
    return compiled, sklearn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--json", type=Path, default=ROOT / "metrics" / "speed.json")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    rows = distinct_sentences(args.n)
    figures: dict[str, float] = {"sentences": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "sentences.jsonl"
        inp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        article = next((ROOT / "data" / "new").glob("*.txt"))
        for model in MODELS:
            out = Path(tmp) / f"{model}.jsonl"
            run = timed(claims("--sentences", str(inp), "--model", model, "-o", str(out)))
            figures[f"{model}_sentences_per_s"] = round(args.n / run["seconds"], 1)
            figures[f"{model}_peak_rss_mb"] = round(run["rss_mb"], 1)
            one = timed(claims(str(article), "--model", model, "-o", os.devnull))
            figures[f"one_article_{model}_s"] = round(one["seconds"], 2)
            print(
                f"{model:12s} {figures[f'{model}_sentences_per_s']:9.1f} sentences/s  "
                f"peak {run['rss_mb']:7.1f} MB  one article {one['seconds']:.2f} s"
            )
    compiled, sklearn = tfidf_in_process([r["text"] for r in rows])
    figures["tfidf_in_process_sentences_per_s"] = round(compiled, 1)
    figures["tfidf_sklearn_in_process_sentences_per_s"] = round(sklearn, 1)
    print(f"tfidf in-process: compiled {compiled:.0f}/s, scikit-learn transform {sklearn:.0f}/s")
    if not args.skip_naive:
        naive = naive_pipeline([r["text"] for r in rows])
        figures["naive_pipeline_sentences_per_s"] = round(naive, 1)
        figures["transformer_vs_naive_ratio"] = round(
            figures["transformer_sentences_per_s"] / naive, 2
        )
        print(f"{'naive':12s} {naive:9.1f} sentences/s  (transformers.pipeline, in-process)")
        print(f"ratio transformer/naive: {figures['transformer_vs_naive_ratio']:.2f}x")
    figures["cpu_count"] = os.cpu_count() or 0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"figures": figures, "targets": TARGETS}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
