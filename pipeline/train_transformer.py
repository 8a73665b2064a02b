"""Stage `train_transformer`: fine-tune all-MiniLM-L6-v2 with a 3-label multi-label head.

A plain torch loop (the HF Trainer measured 4% slower here): AdamW without
decay on biases and LayerNorm, linear warmup then linear decay, BCE loss.
Deterministic on CPU: the seed is set before the head is created, batches
come from a seeded generator, and torch runs its deterministic kernels, so
the same params give the same metrics. Training batches are grouped by length
(shuffled chunks sorted by length, batch order shuffled) with dynamic padding,
which roughly halves the cost against padding to max_length.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import LABELS, ConfigError, Params, TransformerConfig
from pipeline.dataset import Example
from pipeline.models import (
    ENCODER_PACKAGE,
    WEIGHTS,
    batched_forward,
    configure_torch,
    encoder_path,
    package_version,
    quiet_transformers,
    sigmoid_logits,
)
from pipeline.segment import normalize_text

log = logging.getLogger(__name__)

NAME = "transformer"
MEGABATCH = 50


def length_grouped_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffle, sort each chunk of MEGABATCH batches by length, cut into batches, shuffle those."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * MEGABATCH
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk].tolist(), key=lambda i: -lengths[i])
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def positive_weights(y: np.ndarray, mode: str) -> Any:
    """Per-label BCE weight of positives: 1, sqrt(neg/pos) or neg/pos (1 for a label never seen)."""
    import torch

    pos = np.asarray(y, dtype=np.float64).sum(axis=0)
    ratio = np.where(pos > 0, (len(y) - pos) / np.maximum(pos, 1), 1.0)
    weights = {"none": np.ones_like(ratio), "sqrt": np.sqrt(ratio), "balanced": ratio}[mode]
    return torch.tensor(weights, dtype=torch.float32)


def load_base(cfg: TransformerConfig) -> tuple[Any, Any]:
    """Tokenizer and MiniLM with a fresh multi-label head, seeded so the head is reproducible."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    configure_torch(cfg.seed)
    quiet_transformers()
    source = encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(LABELS),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    return tokenizer, model


def fine_tune(
    texts: list[str], y: np.ndarray, cfg: TransformerConfig, tag: str = ""
) -> tuple[Any, Any]:
    """Fine-tune a fresh copy of the base model on these sentences; returns (tokenizer, model)."""
    import torch
    from rich.progress import Progress
    from transformers import get_linear_schedule_with_warmup

    tokenizer, model = load_base(cfg)
    encoded = tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    targets = torch.tensor(y, dtype=torch.float32)
    steps_per_epoch = -(-len(texts) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    if cfg.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    groups = [
        {
            "params": [p for n, p in trainable if not n.endswith(no_decay)],
            "weight_decay": cfg.weight_decay,
        },
        {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    # fused: one kernel per step instead of a Python loop over ~100 tensors (about 12% faster here)
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=positive_weights(y, cfg.pos_weight))
    rng = np.random.default_rng(cfg.seed)
    model.train()
    step = 0
    with Progress(transient=True) as progress:
        task = progress.add_task(f"fine-tuning {tag}", total=total)
        for epoch in range(cfg.epochs):
            losses = []
            for batch_idx in length_grouped_batches(lengths, cfg.batch_size, rng):
                if step >= total:
                    break
                batch = tokenizer.pad(
                    {"input_ids": [encoded[i] for i in batch_idx]}, return_tensors="pt"
                )
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                    logits = model(
                        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                    ).logits
                loss = loss_fn(logits.float(), targets[batch_idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                step += 1
                progress.advance(task)
            if losses:
                log.info(
                    "transformer %s epoch %d: mean loss %.4f over %d steps",
                    tag,
                    epoch + 1,
                    np.mean(losses),
                    len(losses),
                )
            if step >= total:
                break
    model.eval()
    return tokenizer, model


def distinct_examples(texts: list[str], y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`idx` with every example whose normalised text and labels an earlier one has, dropped."""
    seen: set[tuple[str, bytes]] = set()
    keep = []
    for i in idx:
        key = (normalize_text(texts[i]), y[i].tobytes())
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


class TransformerLearner:
    kind = NAME

    def __init__(self, examples: list[Example], cfg: TransformerConfig, n_folds: int) -> None:
        if n_folds % cfg.cv_folds:
            raise ConfigError(
                f"transformer.cv_folds ({cfg.cv_folds}) must divide dataset.n_folds ({n_folds})"
            )
        self.cfg = cfg
        self.texts = [e.text for e in examples]
        self.y = np.array([e.labels for e in examples], dtype=np.float32).reshape(-1, 3)

    def settings(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            **asdict(self.cfg),
            "base_model": ENCODER_PACKAGE,
            "base_model_version": package_version(ENCODER_PACKAGE),
        }

    def cv_fold(self, fold: int) -> int:
        return fold % self.cfg.cv_folds

    def fit(self, idx: np.ndarray, tag: str) -> tuple[Any, Any]:
        if self.cfg.dedupe:
            idx = distinct_examples(self.texts, self.y, idx)
        return fine_tune([self.texts[i] for i in idx], self.y[idx], self.cfg, tag)

    def raw_scores(self, fitted: tuple[Any, Any], idx: np.ndarray) -> np.ndarray:
        tokenizer, model = fitted
        texts = [self.texts[i] for i in idx]
        forward = sigmoid_logits(model)
        return batched_forward(
            texts, tokenizer, self.cfg.max_length, self.cfg.eval_batch_size, forward
        ).astype(np.float64)

    def save(self, fitted: tuple[Any, Any], folder: Path) -> dict[str, Any]:
        tokenizer, model = fitted
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        return {
            "weights": WEIGHTS[NAME],
            "max_length": self.cfg.max_length,
            "base_model": {
                "package": ENCODER_PACKAGE,
                "version": package_version(ENCODER_PACKAGE),
                "model": "sentence-transformers/all-MiniLM-L6-v2",
            },
        }


def make_learner(params: Params, examples: list[Example]) -> TransformerLearner:
    return TransformerLearner(examples, params.transformer, params.dataset.n_folds)


def run_train_transformer(params: Params) -> dict[str, Any]:
    from pipeline.training import run_training

    return run_training(params, NAME, make_learner)
