"""The `claims` command line: parses arguments, calls stage functions, nothing more."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pipeline import __version__

app = typer.Typer(
    help="Tag the sentences of conflict news with the claims they make.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("pipeline")

ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read", dir_okay=False)]


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="warnings and errors only")] = False,
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


def handled(func: F) -> F:
    """Turn the project's expected errors into one clear line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pipeline.config import ConfigError
        from pipeline.reader import InputError
        from pipeline.schema import RecordError

        try:
            return func(*args, **kwargs)
        except (ConfigError, InputError, RecordError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _params(path: Path):  # noqa: ANN202
    from pipeline.config import load_params

    return load_params(path)


@app.command()
def version() -> None:
    """Print the version of claims."""
    typer.echo(f"claims {__version__}")


@app.command()
@handled
def segment(
    sources: Annotated[
        list[Path] | None,
        typer.Argument(help="article files or folders (default: the project's, from params.yaml)"),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Split articles into sentence records (data/sentences.jsonl)."""
    from pipeline.segment import run_segment

    n_articles, n_sentences, errors = run_segment(_params(params), sources or None)
    typer.echo(f"{n_articles} articles, {n_sentences} sentences, {len(errors)} unreadable inputs")
    if errors:
        raise typer.Exit(1)


labels_app = typer.Typer(
    help="Check and summarise the hand-labeled sentences.", no_args_is_help=True
)
app.add_typer(labels_app, name="labels")


@labels_app.command("check")
@handled
def labels_check(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate the label files; report every problem with its line; exit 1 on any."""
    from pipeline.labels import run_check

    problems = run_check(_params(params))
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        typer.echo(f"labels check: {len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo("labels check: ok")


@labels_app.command("stats")
@handled
def labels_stats(
    params: ParamsOpt = Path("params.yaml"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the figures as JSON here")
    ] = None,
) -> None:
    """Counts per label, source and article, and inter-annotator agreement."""
    from pipeline.labels import compute_stats, print_stats, write_json

    p = _params(params)
    stats = compute_stats(p)
    print_stats(stats)
    if json_out is not None:
        write_json(json_out, stats)
