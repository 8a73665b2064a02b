"""Stage `export_onnx`: the fine-tuned transformer as ONNX, fp32 and dynamic int8.

Prediction with ONNX Runtime needs neither torch nor transformers: the model
folder `models/transformer-onnx/` holds the ONNX graphs, `tokenizer.json` and
the same labels, thresholds and calibration as `models/transformer/`. Each
variant is checked against the torch fp32 model on pool sentences (the unlabeled
ones first, topped up with labeled ones once the pool is nearly all labeled); the
fastest one whose labels agree on at least `onnx.min_agreement` of them, and of
the unlabeled ones among them, becomes the default (`weights` in model.json), and
the figures go to `metrics/onnx.json`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import Params
from pipeline.models import CARD, load_model, read_meta, write_meta
from pipeline.schema import LabeledSentence, Sentence, atomic_open, read_records

log = logging.getLogger(__name__)

FP32 = "model.onnx"
INT8 = "model.int8.onnx"
INT8_FFN = "model.int8-ffn.onnx"
INT8_MIXED = "model.int8-mixed.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_fp32(source: Path, target: Path, opset: int) -> None:
    """torch -> ONNX with the TorchScript exporter (its graphs quantize; see stack notes)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(source)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    sample = tokenizer(["an example sentence", "another"], return_tensors="pt", padding=True)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    with torch.inference_mode():
        torch.onnx.export(
            model,
            tuple(sample[name] for name in INPUTS),
            str(target),
            input_names=list(INPUTS),
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def _layer(name: str) -> int:
    match = re.search(r"layer\.(\d+)/", name)
    return int(match.group(1)) if match else -1


def weight_matmuls(source: Path, part: str = "all") -> list[str]:
    """Names of the MatMul nodes that multiply by a weight, of one part of the network.

    all: every one; ffn: the feed-forward ones; mixed: the attention projections of every
    layer plus the feed-forward input of the upper half of the layers (measured to keep
    fp32's labels where quantizing every weight does not).
    """
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    names = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    depth = 1 + max((_layer(n) for n in names), default=0)
    ffn_in = [n for n in names if "/intermediate/" in n]
    ffn_out = [n for n in names if "/output/" in n and "/attention/" not in n]
    if part == "ffn":
        return ffn_in + ffn_out
    if part == "mixed":
        attention = [n for n in names if "/attention/" in n]
        return attention + [n for n in ffn_in if _layer(n) >= depth // 2]
    return names


def quantize_int8(source: Path, target: Path, part: str = "all") -> None:
    """Dynamic int8, per channel, weights only (activation x activation products stay fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_quantize=weight_matmuls(source, part),
        extra_options={"MatMulConstBOnly": True},
    )


def check_texts(params: Params, limit: int) -> tuple[list[str], int]:
    """Distinct pool sentences to compare the variants on, and how many of them are unlabeled.

    Unlabeled sentences come first: text the model has not been trained on, as users meet
    it. When the pool holds fewer than `limit` of them (it is nearly all labeled), labeled
    pool sentences top the set up in file order, so one disagreement does not decide the
    default; the model has seen those, so their agreement alone would flatter a variant.
    """
    labeled = {r.sentence_id for r in read_records(params.path("labels"), LabeledSentence)}
    unseen: dict[str, None] = {}
    seen: dict[str, None] = {}
    for s in read_records(params.path("sentences"), Sentence):
        if s.article_id.startswith("seeds/"):
            continue
        (seen if s.sentence_id in labeled else unseen).setdefault(s.text, None)
    texts = list(unseen)[: limit or None]
    top_up = [t for t in seen if t not in unseen]
    if limit:
        top_up = top_up[: max(0, limit - len(texts))]
    return texts + top_up, len(texts)


def agreement(decided: np.ndarray, reference: np.ndarray) -> float:
    """Share of sentences whose labels are identical (1.0 for no sentences)."""
    return round(float(np.mean(np.all(decided == reference, axis=1))), 5) if len(decided) else 1.0


def timed_labels(model: Any, texts: list[str]) -> tuple[np.ndarray, float]:
    """A model's labels for these sentences and its speed (sentences/s)."""
    start = time.perf_counter()
    scores = model.scores(texts)
    rate = len(texts) / (time.perf_counter() - start)
    return model.post.decide(scores), rate


def run_export_onnx(params: Params) -> dict[str, Any]:
    cfg = params.onnx
    source = params.path("models_dir") / "transformer"
    target = params.path("models_dir") / "transformer-onnx"
    meta = read_meta(source)
    work = target.with_name(target.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    export_fp32(source, work / FP32, cfg.opset)
    quantize_int8(work / FP32, work / INT8)
    quantize_int8(work / FP32, work / INT8_FFN, part="ffn")
    quantize_int8(work / FP32, work / INT8_MIXED, part="mixed")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (source / name).exists():
            shutil.copy(source / name, work / name)

    texts, unseen = check_texts(params, cfg.check_sentences)
    reference, torch_rate = timed_labels(load_model(source), texts)
    variants: dict[str, dict[str, Any]] = {}
    base = {k: v for k, v in meta.items() if k not in ("format", "weights")}
    for variant, file in (
        ("fp32", FP32),
        ("int8", INT8),
        ("int8-ffn", INT8_FFN),
        ("int8-mixed", INT8_MIXED),
    ):
        write_meta(work, {**base, "kind": "onnx", "weights": file, "source": str(source)})
        decided, rate = timed_labels(load_model(work), texts)
        variants[variant] = {
            "file": file,
            "label_agreement": agreement(decided, reference),
            "unlabeled_label_agreement": agreement(decided[:unseen], reference[:unseen]),
            "cell_agreement": round(float(np.mean(decided == reference)), 5),
            "sentences_per_s": round(rate, 1),
        }
    eligible = [
        v
        for v, figures in variants.items()
        if min(figures["label_agreement"], figures["unlabeled_label_agreement"])
        >= cfg.min_agreement
    ]
    default = max(eligible, key=lambda v: variants[v]["sentences_per_s"]) if eligible else "fp32"
    summary = {
        "checked_sentences": len(texts),
        "unlabeled_sentences": unseen,
        "torch_fp32_sentences_per_s": round(torch_rate, 1),
        "min_agreement": cfg.min_agreement,
        "default": default,
        "variants": variants,
    }
    write_meta(
        work,
        {
            **base,
            "kind": "onnx",
            "weights": variants[default]["file"],
            "source": str(source),
            "onnx": summary,
        },
    )
    _card(work, meta, summary)
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    metrics = params.path("metrics_dir") / "onnx.json"
    with atomic_open(metrics) as fh:
        json.dump(summary, fh, indent=2)
        fh.write("\n")
    log.info(
        "export_onnx: default %s (%s sentences/s, label agreement %.4f)",
        default,
        variants[default]["sentences_per_s"],
        variants[default]["label_agreement"],
    )
    return summary


def _card(folder: Path, meta: dict[str, Any], summary: dict[str, Any]) -> None:
    rows = "\n".join(
        f"| {name} | `{v['file']}` | {v['label_agreement']:.4f} | "
        f"{v['unlabeled_label_agreement']:.4f} | {v['sentences_per_s']} |"
        for name, v in summary["variants"].items()
    )
    text = f"""# transformer (ONNX)

The fine-tuned MiniLM of `models/transformer/` exported to ONNX for prediction with
ONNX Runtime (no torch needed). Labels, thresholds and calibration are the same as the
torch model's (version {meta.get("version", "unregistered")}).

Compared with the torch fp32 model on {summary["checked_sentences"]} pool sentences, of which
{summary["unlabeled_sentences"]} are unlabeled (the rest are labeled sentences the model was
trained on; torch fp32: {summary["torch_fp32_sentences_per_s"]} sentences/s in-process):

| variant | file | labels identical | on the unlabeled | sentences/s |
|---|---|---:|---:|---:|
{rows}

Default (`weights` in model.json): **{summary["default"]}**, the fastest variant whose labels
agree with fp32 on at least {summary["min_agreement"]:.1%} of the sentences and of the unlabeled ones.

Training data note: authored sentences were used for training only, never for evaluation.
"""
    (folder / CARD).write_text(text, encoding="utf-8")
