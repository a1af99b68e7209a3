"""Command-line options shared by the task-suite benchmarks (`question`, `evidence`)."""

import argparse


def suite_parser(description: str, *, tasks: list[str], cases: int,
                 rates: list[float]) -> argparse.ArgumentParser:
    """--draft, --device, --cases, --lengths, --rates and --tasks, with these defaults."""
    parser = argparse.ArgumentParser(description=description)
    numbers = lambda kind: lambda s: [kind(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", type=int, default=cases, help="cases per task and length")
    parser.add_argument("--lengths", type=numbers(int), default=[4000, 16000],
                        help="prompt sizes, target tokens")
    parser.add_argument("--rates", type=numbers(float), default=rates)
    parser.add_argument("--tasks", type=lambda s: s.split(","), default=tasks,
                        help=f"comma-separated, of: {', '.join(tasks)}")
    return parser


def parsed(parser: argparse.ArgumentParser, tasks: list[str]) -> argparse.Namespace:
    """The arguments, an unknown task being a usage error."""
    args = parser.parse_args()
    unknown = set(args.tasks) - set(tasks)
    if unknown:
        parser.error(f"unknown tasks: {', '.join(sorted(unknown))}")
    return args


def provenance(args: argparse.Namespace, target_name: str, detail: str, module: str) -> str:
    """The first line of a suite's table: when, where, with what, and the command."""
    import datetime
    import sys

    import torch

    from .compare import machine

    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}, "
            f"torch threads {torch.get_num_threads()}; target {target_name}; draft {args.draft}; "
            f"{detail}; command: python -m {module} {' '.join(sys.argv[1:])}\n")


def print_task_rows(columns: list[tuple[str, object]], tasks: list[str], *, share, tokens,
                    mean_label: str, mean_tokens: str = "", header: bool = True) -> None:
    """Markdown rows, one per task and a mean row: `share(task, key)` (a fraction) for
    each column's key, `tokens(task)` the task's mean prompt size; `header` prints the
    column names first."""
    if header:
        print("| task | tokens | " + " | ".join(label for label, _ in columns) + " |")
        print("|---|---:|" + "---:|" * len(columns))
    for task in tasks:
        cells = [f"{100 * share(task, key):.0f}%" for _, key in columns]
        print(f"| {task} | {tokens(task):.0f} | " + " | ".join(cells) + " |")
    means = [f"{100 * sum(share(task, key) for task in tasks) / len(tasks):.0f}%"
             for _, key in columns]
    print(f"| {mean_label} | {mean_tokens} | " + " | ".join(means) + " |")
