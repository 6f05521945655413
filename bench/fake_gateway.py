"""Serve the CardConnect fake in its own process, so the benchmark's process holds only the
service under test: `python -m bench.fake_gateway MERCHID USER PASSWORD [--delay SECONDS]`.
Prints the base URL on stdout, then serves until stdin closes."""

from __future__ import annotations

import argparse
import sys

from tests.fakes import CardConnectFake


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("merchid")
    parser.add_argument("user")
    parser.add_argument("password")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    with CardConnectFake(merchants={args.merchid: (args.user, args.password)}, shuffle=False) as fake:
        if args.delay:
            fake.set_fault("slow", seconds=args.delay, count=None)
        print(fake.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
