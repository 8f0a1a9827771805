"""Shared helper: a seeded word corpus for the batch benchmarks, cached under benchmarks/data/.

``corpus_path(n_words)`` returns the path of a text file holding exactly ``n_words`` words drawn
from a fixed 10,000-word vocabulary (Zipf-ish by default, or uniform), written as plain lines of
10-20 words separated by single spaces. The file is generated once per (words, vocabulary,
distribution, seed) and reused by later runs; generation is never part of a timed section.

Run it directly to (re)generate and describe a corpus:

    PYTHONPATH=src python3 benchmarks/gen_corpus.py [--words 10000000] [--dist zipf|uniform]
"""

from __future__ import annotations

import argparse
import os
import random
import string
import sys
import time
from itertools import accumulate

__all__ = ["DATA_DIR", "corpus_path", "vocabulary"]

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
VOCAB_SIZE = 10_000
SEED = 42


def vocabulary(size: int = VOCAB_SIZE, seed: int = SEED) -> list[str]:
    """``size`` distinct lower-case words of 2-10 letters, deterministic for ``seed``."""
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        w = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def _write(path: str, n_words: int, dist: str, seed: int) -> None:
    vocab = vocabulary(VOCAB_SIZE, seed)
    rng = random.Random(seed + 1)
    if dist == "zipf":
        # Zipf-like with exponent 1: P(rank r) ~ 1 / r.
        cum = list(accumulate(1.0 / r for r in range(1, VOCAB_SIZE + 1)))
    elif dist == "uniform":
        cum = None
    else:
        raise ValueError(f"dist={dist!r} must be 'zipf' or 'uniform'")
    tmp = f"{path}.tmp-{os.getpid()}"
    written = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        buf: list[str] = []
        while written < n_words:
            k = min(rng.randint(10, 20), n_words - written)
            if cum is None:
                line = rng.choices(vocab, k=k)
            else:
                line = rng.choices(vocab, cum_weights=cum, k=k)
            buf.append(" ".join(line))
            written += k
            if len(buf) >= 10_000:
                fh.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            fh.write("\n".join(buf) + "\n")
    os.replace(tmp, path)


def corpus_path(n_words: int = 10_000_000, dist: str = "zipf", seed: int = SEED) -> str:
    """Path of the cached corpus of ``n_words`` words, generating it on first use."""
    os.makedirs(DATA_DIR, exist_ok=True)
    path = os.path.join(DATA_DIR, f"corpus-{n_words}w-{dist}-v{VOCAB_SIZE}-s{seed}.txt")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        print(f"[gen_corpus] generating {n_words:,} words -> {path}", file=sys.stderr, flush=True)
        _write(path, n_words, dist, seed)
        print(
            f"[gen_corpus] done in {time.perf_counter() - t0:.1f}s "
            f"({os.path.getsize(path) / 1e6:.1f} MB)",
            file=sys.stderr,
            flush=True,
        )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--words", type=int, default=10_000_000)
    ap.add_argument("--dist", choices=["zipf", "uniform"], default="zipf")
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args()
    path = corpus_path(a.words, a.dist, a.seed)
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB, {a.words:,} words")


if __name__ == "__main__":
    main()
