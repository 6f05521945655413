"""Serve the benchmark gateway's fake (its conformance profile's, `bench/target.py`) in its own
process, so the benchmark's process holds only the service under test:
`python -m bench.fake_gateway [--delay SECONDS]`. Prints the base URL on stdout, then serves until
stdin closes."""

from __future__ import annotations

import argparse
import sys

from bench.target import target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    with target().profile.start() as fake:
        if args.delay:
            fake.set_fault("slow", seconds=args.delay, count=None)
        print(fake.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
