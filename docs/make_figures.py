"""Write the figures of docs/results.md from finished runs: `python docs/make_figures.py RUN_DIR NAME`.

Each rule of the run gives `docs/figures/<NAME>-<rule>.svg`: the seed groups' means with bootstrap intervals (the
same figure report.html shows), or the per-question figure when the run has no seed groups or none of its groups
has a rate (no model with enough kept answers per question).
"""

import json
import sys
from pathlib import Path

from emlab.report.charts import group_chart_svg, per_question_chart_svg

run, name = Path(sys.argv[1]), sys.argv[2]
summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
out = Path(__file__).parent / "figures"
out.mkdir(exist_ok=True)
for rule in [r["name"] for r in summary.get("rules") or []]:
    rated = any(g["rules"].get(rule, {}).get("mean") is not None for g in summary.get("groups") or [])
    svg = (group_chart_svg(summary, rule) if rated else None) or per_question_chart_svg(summary, rule)
    path = out / f"{name}-{rule}.svg"
    path.write_text(svg, encoding="utf-8")
    print(path)
