#!/usr/bin/env python3
"""Write a copy of a training config whose corpora read `.spacy` files.

The shipped configs read teach JSONL directly (`spacy-binary-ner.TeachCorpus.v1`);
the project converts the answers first (`python -m spacy_binary_ner convert`,
which accounts for every record) and trains on the DocBins with spaCy's own
`spacy.Corpus.v1`. Everything else in the config is kept as it is.

    python scripts/corpus_config.py configs/en_cnn.cfg corpus/config.cfg
"""

import argparse
from pathlib import Path

# confection alone, not spaCy: this step should not pay for importing spaCy.
from confection import Config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=Path, help="training config whose corpora read JSONL")
    p.add_argument("output", type=Path, help="config to write, corpora reading ${paths.train} / ${paths.dev}")
    args = p.parse_args()
    config = Config().from_disk(args.config, interpolate=False)
    for name in ("train", "dev"):
        if name not in config["corpora"]:
            raise SystemExit(f"{args.config} has no [corpora.{name}] section to replace")
        config["corpora"][name] = {
            "@readers": "spacy.Corpus.v1",
            "path": f"${{paths.{name}}}",
            "gold_preproc": False,
            "max_length": 0,
            "limit": 0,
            "augmenter": None,
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    config.to_disk(args.output)
    print(f"Wrote {args.output}: {args.config} with [corpora.train] and [corpora.dev] reading .spacy files")


if __name__ == "__main__":
    main()
