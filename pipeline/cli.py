"""The `claims` command line: parses arguments, calls stage functions, nothing more."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from enum import StrEnum
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


@app.command()
@handled
def dataset(params: ParamsOpt = Path("params.yaml")) -> None:
    """Join labels to sentences and assign grouped CV folds (data/dataset)."""
    from pipeline.dataset import run_dataset

    summary = run_dataset(_params(params))
    typer.echo(
        f"dataset: {summary['real_sentences']} real sentences in {summary['n_folds']} folds, "
        f"{summary['authored_sentences']} authored (training only)"
    )


class ModelName(StrEnum):
    tfidf = "tfidf"
    embed = "embed"
    transformer = "transformer"


@app.command()
@handled
def train(
    model: Annotated[ModelName, typer.Option("--model", "-m", help="which model to train")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Cross-validate one model, write its OOF predictions, fit and save it (models/<name>)."""
    if model is ModelName.tfidf:
        from pipeline.train_tfidf import run_train_tfidf as run
    elif model is ModelName.embed:
        from pipeline.train_embed import run_train_embed as run
    else:
        from pipeline.train_transformer import run_train_transformer as run
    meta = run(_params(params))
    ev = meta["evaluation"]
    typer.echo(
        f"{model.value}: OOF macro-F1 {ev['macro_f1']:.3f}, leave-seeds-out "
        f"{ev['leave_seeds_out']['macro_f1']:.3f}; registered version {meta['version']}"
    )


@app.command()
@handled
def evaluate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Metrics and plots of every model from its OOF predictions; choose the champion."""
    from pipeline.evaluate import run_evaluate

    champion = run_evaluate(_params(params))
    typer.echo(
        f"champion: {champion['model']} (OOF macro-F1 {champion['macro_f1']:.3f}), "
        f"{champion['registered_model']} version {champion['version']}"
    )


@app.command("export-onnx")
@handled
def export_onnx(params: ParamsOpt = Path("params.yaml")) -> None:
    """Export the fine-tuned transformer to ONNX (fp32 and int8), checked against torch."""
    from pipeline.export_onnx import run_export_onnx

    summary = run_export_onnx(_params(params))
    default = summary["variants"][summary["default"]]
    typer.echo(
        f"ONNX default {summary['default']}: {default['sentences_per_s']} sentences/s, "
        f"labels identical to fp32 on {default['label_agreement']:.2%} of "
        f"{summary['checked_sentences']} sentences"
    )


PREDICT_HELP = """Tag the sentences of new articles with claim labels.

INPUT is any mix of .txt/.md/.html files, folders (read recursively), JSONL or CSV
files of articles (text column detected, or --text-column), or - for stdin.
With --sentences the rows are already sentences (id and text): one output record
per row, in input order.

Output: one JSON record per sentence (to stdout unless --output), or CSV, or a
self-contained HTML report. Files are written to a temporary name and renamed
when complete.

Exit codes: 0 all inputs tagged; 1 some inputs could not be read (each one is
named on stderr and, with --errors, recorded as JSONL); 2 usage error.
"""


@app.command(help=PREDICT_HELP)
@handled
def predict(
    inputs: Annotated[list[str], typer.Argument(help="files, folders, JSONL/CSV, or - (stdin)")],
    model: Annotated[
        str, typer.Option(help="champion, tfidf, embed, transformer, or a model folder")
    ] = "champion",
    sentences: Annotated[
        bool, typer.Option("--sentences", help="input rows are sentences (id, text)")
    ] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="file, or - for stdout")] = "-",
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or html")] = "jsonl",
    summary: Annotated[Path | None, typer.Option(help="per-article summary JSONL")] = None,
    errors: Annotated[Path | None, typer.Option(help="unreadable inputs as JSONL")] = None,
    report: Annotated[Path | None, typer.Option(help="also write the HTML report here")] = None,
    batch_size: Annotated[int, typer.Option(help="sentences per model batch")] = 64,
    text_column: Annotated[str | None, typer.Option(help="text column of JSONL/CSV")] = None,
    id_column: Annotated[str | None, typer.Option(help="id column of JSONL/CSV")] = None,
    max_bytes: Annotated[int, typer.Option(help="refuse files larger than this")] = 20_000_000,
    fail_on_errors: Annotated[
        bool, typer.Option(help="exit 1 when an input could not be read")
    ] = True,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    from pipeline.predict import PredictOptions, UsageError, run_predict

    try:
        opts = PredictOptions(
            model=model,
            sentences=sentences,
            output=output,
            fmt=fmt,
            summary=summary,
            errors=errors,
            report=report,
            batch_size=batch_size,
            text_column=text_column,
            id_column=id_column,
            max_bytes=max_bytes,
        )
        stats = run_predict(inputs, opts, _params(params))
    except UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if stats.errors and fail_on_errors:
        raise typer.Exit(1)


# --- the labeling loop: `claims label`, `claims labels export|import` ----------------------

StrategyOpt = Annotated[
    str | None,
    typer.Option(help="uncertain, disagree, random or audit (default: params.yaml label.strategy)"),
]
LimitOpt = Annotated[
    int | None, typer.Option(help="at most this many sentences; 0 = all (default: label.limit)")
]
SeedOpt = Annotated[int | None, typer.Option(help="seed of the random strategy (label.seed)")]
LabelModelOpt = Annotated[
    str, typer.Option(help="champion, tfidf, embed, transformer, or a model folder")
]


def _queue_options(params: Any, **overrides: Any) -> Any:
    from pipeline.label_queue import QueueOptions

    return QueueOptions.from_params(params, **overrides)


def _labeling(func: F) -> F:
    """Usage errors (no model, unknown strategy) exit 2, as in `claims predict`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pipeline.predict import UsageError
        from pipeline.strategies import StrategyError

        try:
            return func(*args, **kwargs)
        except (UsageError, StrategyError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@app.command("label")
@handled
@_labeling
def label(
    inputs: Annotated[
        list[str] | None, typer.Argument(help="more inputs for --from", show_default=False)
    ] = None,
    strategy: StrategyOpt = None,
    limit: LimitOpt = None,
    seed: SeedOpt = None,
    model: LabelModelOpt = "champion",
    from_: Annotated[
        list[str] | None,
        typer.Option(
            "--from",
            help="label new articles: any input `claims predict` reads (copied into "
            "data/articles/<batch>/ and segmented first)",
        ),
    ] = None,
    batch: Annotated[
        str | None, typer.Option(help="batch folder for --from (default: a UTC timestamp)")
    ] = None,
    annotator: Annotated[
        str | None, typer.Option(help="who is labeling (default: the OS user)")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Label sentences in the terminal with the model's suggestion (keys: 1 2 3 0 Enter s b ? q).

    Every decision is saved to labels/sentences.jsonl at once; the next start resumes.
    """
    from pipeline.label_tui import run_label

    sources = [*(from_ or []), *(inputs or [])]
    if inputs and not from_:
        typer.echo("error: inputs given without --from", err=True)
        raise typer.Exit(2)
    p = _params(params)
    opts = _queue_options(p, strategy=strategy, limit=limit, seed=seed, model=model)
    run_label(
        p, opts, annotator=annotator, from_inputs=sources or None, batch=batch, echo=typer.echo
    )


EXPORT_HELP = """Write labeling tasks with the model's labels as pre-annotations.

By default the unlabeled sentences, in the order of the strategy. Label Studio:
one JSON array of tasks for this labeling config:

\b
<View>
  <Header value="$title"/>
  <Text name="text" value="$text"/>
  <Choices name="claims" toName="text" choice="multiple" showInLine="true">
    <Choice value="control"/> <Choice value="casualty"/>
    <Choice value="heritage"/> <Choice value="unrelated"/>
  </Choices>
</View>

Prodigy: JSONL for the choice interface (textcat-multilabel). CSV: one row per sentence.
"""


@labels_app.command("export", help=EXPORT_HELP)
@handled
@_labeling
def labels_export(
    fmt: Annotated[str, typer.Option("--format", help="label-studio, prodigy or csv")],
    output: Annotated[str, typer.Option("--output", "-o", help="file, or - for stdout")],
    strategy: StrategyOpt = None,
    limit: LimitOpt = None,
    seed: SeedOpt = None,
    model: LabelModelOpt = "champion",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    from pipeline.interchange import EXPORT_FORMATS, run_export

    if fmt not in EXPORT_FORMATS:
        typer.echo(f"error: --format must be one of {', '.join(EXPORT_FORMATS)}", err=True)
        raise typer.Exit(2)
    p = _params(params)
    opts = _queue_options(p, strategy=strategy, limit=limit, seed=seed, model=model)
    n = run_export(p, opts, fmt, output)
    typer.echo(f"exported {n} {opts.strategy} tasks as {fmt} to {output}", err=True)


@labels_app.command("import")
@handled
def labels_import(
    file: Annotated[Path, typer.Argument(help="a Label Studio JSON or Prodigy JSONL export")],
    fmt: Annotated[str, typer.Option("--format", help="label-studio or prodigy")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="report what would change; write nothing")
    ] = False,
    annotator: Annotated[
        str | None,
        typer.Option(help="record this annotator (default: the file's, else the OS user)"),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Read annotations back: map, validate as `labels check` does, then add/update (source imported)."""
    from pipeline.interchange import IMPORT_FORMATS, run_import

    if fmt not in IMPORT_FORMATS:
        typer.echo(f"error: --format must be one of {', '.join(IMPORT_FORMATS)}", err=True)
        raise typer.Exit(2)
    result = run_import(_params(params), fmt, file, annotator=annotator, dry_run=dry_run)
    for problem in result.problems:
        typer.echo(f"error: {problem}", err=True)
    for item in result.skipped:
        typer.echo(f"skipped: {item}", err=True)
    if result.problems:
        typer.echo(f"import refused: {len(result.problems)} problem(s); nothing written", err=True)
        raise typer.Exit(1)
    verb = "would " if dry_run else ""
    for old, new in result.updated:
        typer.echo(
            f"{verb}update {new.sentence_id}: {'+'.join(old.labels)} -> {'+'.join(new.labels)}"
        )
    typer.echo(
        f"{verb}add {len(result.added)}, {verb}update {len(result.updated)}, "
        f"unchanged {result.unchanged}, skipped {len(result.skipped)}"
    )
