"""Generate a wild set, or score one.

python -m bench.wild --out /tmp/wild-test --set test [--per-kind 200] [--seed 0] [--kinds a,b]
python -m bench.wild score /tmp/wild-test [--model models/mnist/3] [--out bench/runs]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.harness import ROOT, RUNS
from bench.wild import SPLITS
from bench.wild.kinds import KINDS
from bench.wild.sets import generate


def kind_list(text: str) -> list[str]:
    kinds = [kind for kind in text.split(",") if kind]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"no such kind: {', '.join(unknown)}; kinds: {', '.join(KINDS)}"
        )
    return kinds


def generate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wild", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", choices=SPLITS, default="test", dest="split")
    parser.add_argument("--per-kind", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", type=kind_list, default=None, help="comma-separated; all")
    return parser


def score_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.wild score")
    parser.add_argument("folder", type=Path, help="a set written by python -m bench.wild")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mnist" / "3")
    parser.add_argument("--out", type=Path, default=RUNS)
    parser.add_argument("--name", default="wild", help="report file names: NAME.md, NAME.json")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["score"]:
        from bench.wild.score import score_set, write_report  # imports the service

        args = score_parser().parse_args(argv[1:])
        start = time.perf_counter()
        outcomes = score_set(args.folder, args.model)
        print(write_report(outcomes, args.out, args.name), end="")
        took = time.perf_counter() - start
        print(f"{len(outcomes)} pictures scored in {took:.1f} s: {args.out / args.name}.md")
        return
    args = generate_parser().parse_args(argv)
    start = time.perf_counter()
    manifest = generate(args.out, args.split, args.per_kind, args.seed, args.kinds)
    print(
        f"{len(manifest)} {args.split} pictures in {args.out} ({time.perf_counter() - start:.1f} s)"
    )


if __name__ == "__main__":
    main()
