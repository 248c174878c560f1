"""The README's Results section is generated from study reports, tables and plots included."""

import os
import shutil

from experiments import readme_results

REPORT = """# A study

Intro.

## Results

2 runs. Each cell: mean.

| variant | test/seq_acc |
|---|---|
| `attention` | 0.9 ± 0.01 |

## Plots

![curve](plots/curve.png)

## Command, setting and machine

Command: `python -m experiments.a_study`
"""


def test_section_has_the_table_the_plot_and_the_command(tmp_path, monkeypatch):
    study = tmp_path / "a_study"
    (study / "plots").mkdir(parents=True)
    (study / "report.md").write_text(REPORT)
    (study / "plots" / "curve.png").write_bytes(b"\x89PNG")
    monkeypatch.setattr(readme_results, "ROOT", str(tmp_path / "repo"))
    text = readme_results.render([str(study)], key_plots=1, intro="Intro line.")
    assert "### A study (`a_study`)" in text and "| `attention` | 0.9 ± 0.01 |" in text
    assert "![curve.png](docs/results/a_study/plots/curve.png)" in text
    assert "Command: `python -m experiments.a_study`" in text
    assert os.path.exists(tmp_path / "repo" / "docs" / "results" / "a_study" / "plots" / "curve.png")
    shutil.rmtree(tmp_path / "repo")
