"""`emlab directions ...`: persona directions from a finished run, and how directions compare.

`emlab directions extract RUN --layers 6,12,18 --out DIR` writes a directions artifact (npz + JSON provenance,
see `analysis/directions.py`) with its separation per layer and a figure; a config then names DIR under
`directions:` and steers or ablates it (`interventions:`). `emlab directions compare A B ...` prints the cosine
similarity per layer between artifacts (and writes the figure with `--out`).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from emlab.atomic import write_text_atomic
from emlab.quiet import quiet_libraries

directions_app = typer.Typer(no_args_is_help=True, help="Persona directions: extract from a run, compare.")


def _layers(text: str) -> list[int]:
    try:
        layers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give layers as integers separated by commas, e.g. 6,12,18") from None
    if not layers or len(set(layers)) != len(layers):
        raise typer.BadParameter(f"{text!r}: give distinct layers, e.g. 6,12,18")
    return layers


def separation_lines(directions) -> list[str]:
    """A Markdown table of the separation per layer stored with a direction."""
    sep = directions.provenance.extra.get("separation") or {}

    def f(x):
        return "—" if x is None else f"{x:.3f}"

    lines = ["| layer | norm | AUROC | cross-fitted | random directions: median | max |",
             "|---:|---:|---:|---:|---:|---:|"]
    for layer, s in sep.items():
        lines.append(f"| {layer} | {s['norm']:.3f} | {f(s['auroc'])} | {f(s['auroc_cross_fitted'])} | "
                     f"{f(s.get('auroc_random_median'))} | {f(s.get('auroc_random_max'))} |")
    return lines


@directions_app.command("extract")
def extract(
    run_dir: Path = typer.Argument(..., help="A finished run's folder (summary.json and samples.jsonl)."),
    layers: str = typer.Option(..., "--layers", help="Layers to read, e.g. 6,12,18 (1 .. number of layers - 1)."),
    out: Path = typer.Option(..., "--out", help="Folder for directions.npz, directions.json and separation.svg."),
    kind: str = typer.Option("misaligned-vs-aligned", "--kind",
                             help="misaligned-vs-aligned | rules (with --positive/--negative) | finetuned-vs-base."),
    condition: Optional[List[str]] = typer.Option(None, "--condition", help="Conditions or seed groups to use (repeat); default every one without an intervention."),
    positive: Optional[str] = typer.Option(None, "--positive", help="With --kind rules: the positive class, e.g. \"spanish == true\"."),
    negative: Optional[str] = typer.Option(None, "--negative", help="With --kind rules: the negative class, e.g. \"spanish == false\"."),
    aligned_above: float = typer.Option(70.0, "--aligned-above", help="misaligned-vs-aligned: the aligned class is aligned > this (coherent only)."),
    position: str = typer.Option("answer_mean", "--position", help="answer_mean, prompt_last, answer_last, ..."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random baseline and of the cross-fitting folds."),
    read_with: Optional[str] = typer.Option(None, "--read-with", help="Read every answer through this model spec (default: the model that wrote it)."),
) -> None:
    """A difference-of-means direction per layer from a run's answers, with its separation and a random baseline."""
    from emlab.direction_extraction import extract_from_run
    from emlab.analysis.directions import save_directions
    from emlab.progress import progress_bar
    from emlab.report.interventions import separation_svg

    quiet_libraries()
    result = extract_from_run(run_dir, _layers(layers), kind, condition, positive, negative, aligned_above,
                              position, seed, progress=lambda total: progress_bar("activations", total),
                              read_with=read_with)
    save_directions(result.directions, out)
    write_text_atomic(out / "separation.svg", separation_svg(result.directions))
    d = result.directions
    typer.echo(f"{d.provenance.kind}: {d.n_positive} positive vs {d.n_negative} negative answers; "
               f"per condition {result.counts}; dropped {result.dropped or 'none'}")
    for line in separation_lines(d):
        typer.echo(line)
    typer.echo(f"wrote {out}/directions.npz, directions.json, separation.svg")


@directions_app.command("compare")
def compare(
    folders: List[Path] = typer.Argument(..., help="Two or more directions artifacts (folders)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write cosines.svg and cosines.md here."),
) -> None:
    """Cosine similarity per layer between every pair of directions (do organisms share one direction?)."""
    from emlab.analysis.directions import load_directions
    from emlab.report.interventions import cosine_svg, cosine_table
    from emlab.report.markdown import md_table

    if len(folders) < 2:
        raise typer.BadParameter("give at least two directions folders")
    named = [(f.name, load_directions(f)) for f in folders]
    sizes = {d.vectors.shape[1] for _, d in named}
    if len(sizes) > 1:
        raise typer.BadParameter(f"the directions have different hidden sizes {sorted(sizes)}: not one model's")
    text = md_table(cosine_table(named))
    typer.echo(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "cosines.md", text + "\n")
        write_text_atomic(out / "cosines.svg", cosine_svg(named))
        typer.echo(f"wrote {out}/cosines.md, cosines.svg")
