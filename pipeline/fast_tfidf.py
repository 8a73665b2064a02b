"""Fast inference for the fitted TF-IDF pipeline: the same scores, without per-n-gram Python.

scikit-learn's `TfidfVectorizer.transform` looks every n-gram of every sentence
up in a dict, one at a time; the character n-grams (3-5) make that about 300
lookups a sentence. Character n-grams of the `char_wb` analyzer never cross a
word boundary, so a sentence's character features are the sum of its words'.
`CompiledTfidf` caches, per distinct word, the array of its character-feature
indices, builds the whole batch's sparse counts with numpy, and applies
sublinear tf, idf, the per-block l2 norm and the one-vs-rest logistic
regressions as array operations. Its output equals `pipeline.predict_proba`
to floating-point precision (a test checks it).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class UnsupportedPipeline(ValueError):
    """The fitted pipeline uses an option the compiled scorer does not reproduce."""


def _check(vectorizer: Any, name: str) -> None:
    wanted = {
        "lowercase": True,
        "norm": "l2",
        "use_idf": True,
        "binary": False,
        "stop_words": None,
        "strip_accents": None,
        "preprocessor": None,
        "tokenizer": None,
    }
    for key, value in wanted.items():
        if getattr(vectorizer, key) != value:
            raise UnsupportedPipeline(f"{name}: {key}={getattr(vectorizer, key)!r}, need {value!r}")


class CompiledTfidf:
    """Scores of a fitted Pipeline(FeatureUnion(word, char_wb), OneVsRest(LogisticRegression))."""

    def __init__(self, pipeline: Any, cache_size: int = 200_000) -> None:
        features = pipeline.named_steps["features"]
        classifier = pipeline.named_steps["classifier"]
        blocks = dict(features.transformer_list)
        if set(blocks) != {"word", "char"} or features.transformer_weights:
            raise UnsupportedPipeline("expected an unweighted FeatureUnion of 'word' and 'char'")
        self.word = blocks["word"]
        self.char = blocks["char"]
        _check(self.word, "word")
        _check(self.char, "char")
        if self.word.analyzer != "word" or self.char.analyzer != "char_wb":
            raise UnsupportedPipeline("expected analyzers 'word' and 'char_wb'")
        self.word_analyzer = self.word.build_analyzer()
        self.char_analyzer = self.char.build_analyzer()
        self.word_vocab: dict[str, int] = self.word.vocabulary_
        self.char_vocab: dict[str, int] = self.char.vocabulary_
        n_word = len(self.word_vocab)
        coef = np.vstack([est.coef_.ravel() for est in classifier.estimators_])
        self.w_word = np.ascontiguousarray(coef[:, :n_word].T)
        self.w_char = np.ascontiguousarray(coef[:, n_word:].T)
        self.bias = np.array([est.intercept_[0] for est in classifier.estimators_])
        self.idf_word = self.word.idf_
        self.idf_char = self.char.idf_
        self.sublinear = (self.word.sublinear_tf, self.char.sublinear_tf)
        self.cache: dict[str, np.ndarray] = {}
        self.cache_size = cache_size

    def _word_indices(self, text: str) -> list[int]:
        vocab = self.word_vocab
        return [i for i in map(vocab.get, self.word_analyzer(text)) if i is not None]

    def _char_indices(self, text: str) -> list[np.ndarray]:
        out = []
        cache = self.cache
        for word in text.split():
            idx = cache.get(word)
            if idx is None:
                vocab = self.char_vocab
                idx = np.fromiter(
                    (i for i in map(vocab.get, self.char_analyzer(word)) if i is not None),
                    dtype=np.int64,
                )
                if len(cache) < self.cache_size:
                    cache[word] = idx
            out.append(idx)
        return out

    @staticmethod
    def _block_logits(
        rows: np.ndarray,
        cols: np.ndarray,
        n_rows: int,
        n_cols: int,
        idf: np.ndarray,
        weights: np.ndarray,
        sublinear: bool,
    ) -> np.ndarray:
        """Logit contributions of one TF-IDF block (l2-normalised per row)."""
        if not len(rows):
            return np.zeros((n_rows, weights.shape[1]))
        keys, counts = np.unique(rows * n_cols + cols, return_counts=True)
        r, c = np.divmod(keys, n_cols)
        tf = counts.astype(np.float64)
        if sublinear:
            tf = np.log(tf) + 1.0
        values = tf * idf[c]
        norms = np.sqrt(np.bincount(r, weights=values * values, minlength=n_rows))
        values = values / norms[r]
        contrib = values[:, None] * weights[c]
        return np.column_stack(
            [
                np.bincount(r, weights=contrib[:, k], minlength=n_rows)
                for k in range(weights.shape[1])
            ]
        )

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        n = len(texts)
        word_rows: list[np.ndarray] = []
        word_cols: list[list[int]] = []
        char_rows: list[np.ndarray] = []
        char_cols: list[np.ndarray] = []
        for i, text in enumerate(texts):
            lowered = text.lower()
            w = self._word_indices(lowered)
            word_cols.append(w)
            word_rows.append(np.full(len(w), i, dtype=np.int64))
            parts = self._char_indices(lowered)
            if parts:
                cols = np.concatenate(parts)
                char_cols.append(cols)
                char_rows.append(np.full(len(cols), i, dtype=np.int64))
        wr = np.concatenate(word_rows) if word_rows else np.zeros(0, dtype=np.int64)
        wc = np.fromiter((c for cols in word_cols for c in cols), dtype=np.int64, count=len(wr))
        cr = np.concatenate(char_rows) if char_rows else np.zeros(0, dtype=np.int64)
        cc = np.concatenate(char_cols) if char_cols else np.zeros(0, dtype=np.int64)
        logits = self.bias + self._block_logits(
            wr, wc, n, len(self.word_vocab), self.idf_word, self.w_word, self.sublinear[0]
        )
        logits += self._block_logits(
            cr, cc, n, len(self.char_vocab), self.idf_char, self.w_char, self.sublinear[1]
        )
        return 1.0 / (1.0 + np.exp(-logits))
