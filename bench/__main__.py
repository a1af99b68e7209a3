"""The benchmarks' one entry point.

    python -m bench all [--quick]      every method side by side on needle and code cases
    python -m bench needle [--quick]   the same table, needle cases only
    python -m bench code [--quick]     the same table, code cases only
    python -m bench speed [--quick]    crossprefill's time next to a plain forward pass

`all`, `needle` and `code` run `bench.compare` (one markdown table: evidence kept,
target tokens against the budget, verbatim output, time per input); `speed` runs
`bench.speed`, with inputs of 1,000 and 4,000 tokens in quick mode. Other options go
to the chosen harness: `python -m bench all --help`.
"""

import sys

from . import compare, speed

QUICK_SPEED = ["--sizes", "1000,4000"]


def main() -> None:
    command, argv = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command in compare.BENCHMARKS:
        compare.run(command, argv)
    elif command == "speed":
        quick = "--quick" in argv
        sys.argv = ["python -m bench speed", *(QUICK_SPEED if quick else []),
                    *(a for a in argv if a != "--quick")]
        speed.main()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
