"""Matrix products on this CPU: Thinc's default (BLIS, from the `blis` wheel)
against numpy's BLAS (`NumpyOps(use_blis=False)`), at the shapes of the CNN
tok2vec and span head in configs/*_cnn.cfg. Prints a table; if numpy's BLAS is
much faster here, set `spacy-binary-ner.cpu_ops.v1` in `[nlp] before_creation`
or call `spacy_binary_ner.ops.use_cpu_ops(use_blis=False)` (see README).

    OMP_NUM_THREADS=1 python bench/blas_benchmark.py
"""
import argparse
import statistics
import sys
import time

import numpy
from thinc.api import NumpyOps

# (rows, inner, out): tokens of a loop update and of spaCy's inference batch
# through a Maxout layer of width 96 with window 1 and 3 pieces (288 -> 288),
# and the span head's output layer (128 -> 8 labels, one row per span).
SHAPES = [(700, 288, 288), (8000, 288, 288), (200000, 128, 8)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=21)
    args = p.parse_args(argv)
    rng = numpy.random.default_rng(0)
    print("| rows x inner -> out | BLIS ms | numpy BLAS ms | BLIS GFLOP/s | numpy GFLOP/s | numpy speed-up |")
    print("|---|---|---|---|---|---|")
    for n, k, m in SHAPES:
        x = rng.normal(size=(n, k)).astype("f")
        w = rng.normal(size=(m, k)).astype("f")
        times = {}
        for name, ops in (("blis", NumpyOps(use_blis=True)), ("numpy", NumpyOps(use_blis=False))):
            ops.gemm(x, w, trans2=True)
            samples = []
            for _ in range(args.repeats):
                begin = time.perf_counter()
                ops.gemm(x, w, trans2=True)
                samples.append(time.perf_counter() - begin)
            times[name] = statistics.median(samples)
        flops = 2 * n * k * m
        print(f"| {n} x {k} -> {m} | {1000 * times['blis']:.2f} | {1000 * times['numpy']:.2f} | "
              f"{flops / times['blis'] / 1e9:.1f} | {flops / times['numpy'] / 1e9:.1f} | "
              f"{times['blis'] / times['numpy']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
