"""Generate a wild set, or score one.

    python -m bench.wild --out /tmp/wild-test --set test [--per-kind 150] [--seed 0] [--kinds a,b]
    python -m bench.wild score /tmp/wild-test [--model models/mnist/4] [--out bench/runs]

Scoring writes NAME.md (the table, also printed) and NAME.json (it, and every picture's answer).
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
    parser.add_argument("--per-kind", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", type=kind_list, default=None, help="comma-separated; all")
    return parser


def score_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.wild score")
    parser.add_argument("folder", type=Path, help="a set written by python -m bench.wild")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mnist" / "4")
    parser.add_argument("--out", type=Path, default=RUNS)
    parser.add_argument("--name", default="wild", help="report file names: NAME.md, NAME.json")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """`score FOLDER ...` scores a set; anything else generates one. `command` says which."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["score"]:
        return score_parser().parse_args(argv[1:], argparse.Namespace(command="score"))
    return generate_parser().parse_args(argv, argparse.Namespace(command="generate"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    if args.command == "score":
        from bench.wild.score import score_set, write_report  # imports the service

        outcomes = score_set(args.folder, args.model)
        print(write_report(outcomes, args.out, args.name), end="")
        took = time.perf_counter() - start
        print(f"{len(outcomes)} pictures scored in {took:.1f} s: {args.out / args.name}.md")
        return
    manifest = generate(args.out, args.split, args.per_kind, args.seed, args.kinds)
    took = time.perf_counter() - start
    print(f"{len(manifest)} {args.split} pictures in {args.out} ({took:.1f} s)")


if __name__ == "__main__":
    main()
