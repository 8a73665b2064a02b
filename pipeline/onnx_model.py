"""The ONNX Runtime transformer: prediction without torch or transformers.

Tokenizes with the `tokenizers` library straight from `tokenizer.json`, sorts
sentences by length, pads each batch only to its longest sentence, and runs
the graph with all of the machine's cores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.models import ClaimModel


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class OnnxModel(ClaimModel):
    """A `models/transformer-onnx` folder: the fine-tuned MiniLM as an ONNX graph."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        super().__init__(path, meta)
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(path / meta["weights"]), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        self.batch_size = int(meta.get("training", {}).get("eval_batch_size", 64))
        self._lengths: dict[str, int] = {}

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids cut at max_length (keeping the final [SEP]); full lengths remembered."""
        ids = []
        limit = self.max_length
        self._lengths = {}
        for text, enc in zip(texts, self.tokenizer.encode_batch(texts), strict=True):
            full = enc.ids
            self._lengths[text] = len(full)
            ids.append(full if len(full) <= limit else [*full[: limit - 1], full[-1]])
        return ids

    def truncation_flags(self, texts: list[str]) -> list[bool]:
        """Whether each sentence was longer than the model's limit (after `raw_scores`)."""
        missing = [t for t in texts if t not in self._lengths]
        if missing:
            for text, enc in zip(missing, self.tokenizer.encode_batch(missing), strict=True):
                self._lengths[text] = len(enc.ids)
        return [self._lengths[t] > self.max_length for t in texts]

    def raw_scores(self, texts: list[str]) -> np.ndarray:
        return self._run(self.session, self._encode(texts))

    def _run(self, session: Any, encoded: list[list[int]]) -> np.ndarray:
        """Sigmoid of the logits, batches sorted by length and padded to their longest."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(encoded), len(self.labels)), dtype=np.float64)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in idx)
            input_ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, : len(encoded[i])] = encoded[i]
                mask[row, : len(encoded[i])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            (logits,) = session.run(["logits"], feed)
            out[idx] = _sigmoid(logits.astype(np.float64))
        return out
