"""The ``hypops`` command line. Commands: info (more arrive with the models layer)."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_info(args) -> int:
    import hypops
    from hypops._info import format_info

    d = hypops.info()
    print(json.dumps(d, indent=2) if args.json else format_info(d))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hypops", description="Fused Poincaré-ball ops for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="version, build (compiler, OpenMP, CUDA), torch/triton, threads, backends")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(fn=_cmd_info)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
