"""Writes the README's Results section from finished studies' reports — no number is typed by hand.

    python -m experiments.readme_results runs/bottleneck_vs_attention runs/reverse_source ... runs/g2p_cmudict

Each argument is a study directory holding a ``report.md`` written by that study's script. Its report and
every plot it links are copied to ``docs/results/<study dir name>/``; the README gets, per study, the
report's first results table, its first ``key_plots`` plots and the report's "Command, setting and
machine" text (or a line saying how it was run), between the ``<!-- results:begin/end -->`` markers.
"""

import argparse
import os
import re
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _section(report: str, heading: str) -> str:
    """The text under the first ``## heading`` (to the next ``## ``), or ''."""
    match = re.search(rf"^## {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", report, re.M | re.S)
    return match.group(1).strip() if match else ""


def _first_table(text: str) -> str:
    match = re.search(r"((?:^\|.*\|\n?)+)", text, re.M)
    return match.group(1).strip() if match else ""


def copy_report(study_dir: str, out_dir: str) -> tuple[str, list[str]]:
    """Copies ``report.md`` and its linked images; returns the report text and its image paths."""
    with open(os.path.join(study_dir, "report.md")) as f:
        report = f.read()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    os.makedirs(out_dir, exist_ok=True)
    shutil.copy(os.path.join(study_dir, "report.md"), os.path.join(out_dir, "report.md"))
    for image in images:
        os.makedirs(os.path.dirname(os.path.join(out_dir, image)), exist_ok=True)
        shutil.copy(os.path.join(study_dir, image), os.path.join(out_dir, image))
    return report, images


def study_section(study_dir: str, key_plots: int) -> str:
    name = os.path.basename(os.path.normpath(study_dir))
    out_dir = os.path.join(ROOT, "docs", "results", name)
    report, images = copy_report(study_dir, out_dir)
    title = re.search(r"^# (.*)$", report, re.M)
    rel = os.path.relpath(out_dir, ROOT)
    parts = [f"### {title.group(1) if title else name}", "",
             _first_table(_section(report, "Results")), ""]
    parts += [f"![{os.path.basename(image)}]({rel}/{image})" for image in images[:key_plots]]
    setup = _section(report, "Command, setting and machine")
    parts += ["", setup if setup else "", "", f"Full report: [{rel}/report.md]({rel}/report.md)", ""]
    return "\n".join(p for p in parts if p is not None)


def render(study_dirs, key_plots: int, intro: str) -> str:
    return "\n".join([intro, ""] + [study_section(d, key_plots) for d in study_dirs])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dirs", nargs="+", help="study directories with a report.md")
    parser.add_argument("--key_plots", type=int, default=2, help="plots shown per study in the README")
    parser.add_argument("--intro", default="", help="a paragraph put before the studies")
    args = parser.parse_args(argv)
    missing = [d for d in args.study_dirs if not os.path.exists(os.path.join(d, "report.md"))]
    if missing:
        parser.error(f"no report.md in {', '.join(missing)}: run the study first")
    readme_path = os.path.join(ROOT, "README.md")
    with open(readme_path) as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        parser.error(f"README.md lacks the {BEGIN} / {END} markers")
    body = render(args.study_dirs, args.key_plots, args.intro)
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(readme_path, "w") as f:
        f.write(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    print(f"wrote {len(args.study_dirs)} studies into {readme_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
