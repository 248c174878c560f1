"""Writes the README's Results section from finished studies' `claims.json` — no number is typed by hand.

    python -m experiments.readme_results runs/cpu/bottleneck_vs_attention runs/cpu/reverse_source ...

Each argument is a study directory holding the `report.md` and `claims.json` its study wrote. The section
starts with one table, a row per claim: claim | the paper's finding | ours (estimate, 95% interval,
setting, n seeds) | verdict; then each study's `summary.md` (where it wrote one), one key plot per claim
and links to the full reports, which are copied (with every plot they link) to `docs/results/<study dir
name>/`. A claim measured in the `quick` setting never sits next to a published number: its paper column
says so instead.
"""

import argparse
import json
import os
import re
import shutil
import sys

from seq2seq_jax import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def copy_report(study_dir: str, out_dir: str) -> list[str]:
    """Copies `report.md`, `claims.json`, `results.csv` (every run's metrics and wall time) and `summary.md`
    (where the study wrote them) and every image the report links; returns the images' paths."""
    with open(os.path.join(study_dir, "report.md"), encoding="utf-8") as f:
        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", f.read())
    os.makedirs(out_dir, exist_ok=True)
    tables = [f for f in ("results.csv", "summary.md") if os.path.exists(os.path.join(study_dir, f))]
    if os.path.exists(out_dir) and os.path.samefile(study_dir, out_dir):  # a study already in docs/results, e.g. from an earlier session
        return images
    for name in ("report.md", "claims.json", *tables, *images):
        os.makedirs(os.path.dirname(os.path.join(out_dir, name)), exist_ok=True)
        shutil.copy(os.path.join(study_dir, name), os.path.join(out_dir, name))
    return images


def key_plot(claim: dict, images: list[str]) -> str | None:
    """The plot that shows a claim: by length for a claim on a length bucket, else the overall bars, else
    the study's first plot."""
    metric = claim["quantity"].rpartition(": ")[2].split(",")[0].rpartition("/")[2]
    wanted = f"plots/by_length_{metric}.png" if "length bucket" in claim["quantity"] else f"plots/overall_{metric}.png"
    return wanted if wanted in images else (images[0] if images else None)


def _ours(claim: dict) -> str:
    if claim["estimate"] is None:
        return f"no finished runs ({claim['setting']})"
    interval = "" if claim["low"] is None else f" [{claim['low']:.3g}, {claim['high']:.3g}]"
    return f"{claim['estimate']:.3g}{interval} ({claim['setting']}, n={claim['n']})"


def render(study_dirs: list[str]) -> str:
    """The Results section's body; copies each study's report and plots to `docs/results/`."""
    rows, whys, summaries, plots, links = [], [], [], [], []
    for study_dir in study_dirs:
        name = os.path.basename(os.path.normpath(study_dir))
        out_dir = os.path.join(ROOT, "docs", "results", name)
        rel = os.path.relpath(out_dir, ROOT).replace(os.sep, "/")
        images = copy_report(study_dir, out_dir)
        with open(os.path.join(study_dir, "claims.json"), encoding="utf-8") as f:
            claims = json.load(f)
        for claim in claims:
            paper = ("(not shown: measured in the quick setting)" if claim["setting"] == "quick"
                     else claim.get("paper") or "—")
            rows.append(f"| {claim['claim']} (`{name}`) | {paper} | {_ours(claim)} | **{claim['verdict']}** |")
            if claim.get("why"):
                whys.append(f"- {claim['claim']} (`{name}`), **{claim['verdict']}**: {claim['why']}")
            plot = key_plot(claim, images)
            if plot:
                plots.append(f"**{claim['claim']}** (`{name}`):\n\n![{name}: {os.path.basename(plot)}]({rel}/{plot})")
        summary_path = os.path.join(study_dir, "summary.md")
        if os.path.exists(summary_path):
            with open(summary_path, encoding="utf-8") as f:  # its sections become subsections of Results
                summaries.append(re.sub(r"^## (.*)$", rf"### \1 (`{name}`)", f.read().strip(), flags=re.M))
        links.append(f"- [`{name}`]({rel}/report.md)")
    table = ["| claim | the paper's finding | ours: difference [95% interval] (setting, seeds) | verdict |",
             "|---|---|---|---|", *rows]
    why = ["Why not reproduced:\n\n" + "\n".join(whys)] if whys else []
    return "\n\n".join(["\n".join(table), *why, *summaries, *plots, "Full reports:\n\n" + "\n".join(links)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dirs", nargs="+", help="study directories with a report.md and claims.json")
    args = parser.parse_args(argv)
    missing = [d for d in args.study_dirs
               if not all(os.path.exists(os.path.join(d, f)) for f in ("report.md", "claims.json"))]
    if missing:
        parser.error(f"no report.md and claims.json in {', '.join(missing)}: run the study first")
    readme_path = os.path.join(ROOT, "README.md")
    with open(readme_path, encoding="utf-8") as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        parser.error(f"README.md lacks the {BEGIN} / {END} markers")
    body = render(args.study_dirs)
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    files.write_atomic(readme_path, f"{head}{BEGIN}\n{body}\n{END}{tail}")
    print(f"wrote {len(args.study_dirs)} studies into {readme_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
