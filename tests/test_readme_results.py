"""The README's Results section is generated from the studies' claims.json: one table of claims, a key plot
per claim, links to the full reports; a quick-setting number never sits next to a published one."""

import json
import os

import pytest

from experiments import readme_results

REPORT = """# A study

## Plots

![by_length_seq_acc](plots/by_length_seq_acc.png)
![overall_seq_acc](plots/overall_seq_acc.png)
"""


def write_study(root, name, setting, claims):
    study = root / name
    (study / "plots").mkdir(parents=True)
    (study / "report.md").write_text(REPORT)
    for plot in ("by_length_seq_acc.png", "overall_seq_acc.png"):
        (study / "plots" / plot).write_bytes(b"\x89PNG")
    (study / "claims.json").write_text(json.dumps([{"setting": setting, "study": name, **c} for c in claims]))
    if setting == "cpu":
        (study / "results.csv").write_text("run_id,status,seconds\n")
    return str(study)


LONG = {"claim": "Attention wins on long inputs", "quantity": "attention − bottleneck: test/seq_acc, length bucket -1",
        "estimate": 0.62, "low": 0.55, "high": 0.7, "n": 3, "verdict": "reproduced", "paper": "26.75 vs 17.82 BLEU"}
ONE_SEED = {"claim": "Reversal helps", "quantity": "bottleneck_reversed − bottleneck: test/seq_acc",
            "estimate": 0.1, "low": None, "high": None, "n": 1, "verdict": "inconclusive", "paper": "BLEU 25.9 → 30.6",
            "why": "one seed, and this metric has no per-example outcomes to bootstrap."}


def test_one_table_of_claims_with_the_papers_number_ours_and_the_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr(readme_results, "ROOT", str(tmp_path / "repo"))
    cpu = write_study(tmp_path, "bottleneck_vs_attention", "cpu", [LONG])
    quick = write_study(tmp_path, "reverse_source", "quick", [ONE_SEED])
    text = readme_results.render([cpu, quick])
    assert ("| Attention wins on long inputs (`bottleneck_vs_attention`) | 26.75 vs 17.82 BLEU | "
            "0.62 [0.55, 0.7] (cpu, n=3) | **reproduced** |") in text
    # A quick-setting number is never next to a published one; one seed prints no interval and no ±.
    assert ("| Reversal helps (`reverse_source`) | (not shown: measured in the quick setting) | 0.1 (quick, n=1) | "
            "**inconclusive** |") in text
    assert "BLEU 25.9" not in text and "±" not in text
    # A claim not reproduced says why, under the table; a reproduced one has nothing to explain.
    assert ("- Reversal helps (`reverse_source`), **inconclusive**: one seed, and this metric has no per-example "
            "outcomes to bootstrap.") in text
    assert text.count("\n- ") - text.count("\n- [") == 1
    # One key plot per claim (by length for a claim on a length bucket), and links to the copied reports.
    assert "![bottleneck_vs_attention: by_length_seq_acc.png](docs/results/bottleneck_vs_attention/plots/by_length_seq_acc.png)" in text
    assert "![reverse_source: overall_seq_acc.png](docs/results/reverse_source/plots/overall_seq_acc.png)" in text
    assert "- [`reverse_source`](docs/results/reverse_source/report.md)" in text
    for name in ("report.md", "claims.json", "results.csv", "plots/by_length_seq_acc.png"):
        assert os.path.exists(tmp_path / "repo" / "docs" / "results" / "bottleneck_vs_attention" / name)
    assert not os.path.exists(tmp_path / "repo" / "docs" / "results" / "reverse_source" / "results.csv")  # none


def test_main_replaces_only_the_marked_section_and_refuses_a_study_without_claims(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text(f"intro\n{readme_results.BEGIN}\nold\n{readme_results.END}\noutro\n")
    monkeypatch.setattr(readme_results, "ROOT", str(repo))
    study = write_study(tmp_path, "bottleneck_vs_attention", "cpu", [LONG])
    assert readme_results.main([study]) == 0
    readme = (repo / "README.md").read_text()
    assert readme.startswith("intro\n<!-- results:begin -->\n| claim |") and readme.endswith("<!-- results:end -->\noutro\n")
    assert "old" not in readme
    os.remove(os.path.join(study, "claims.json"))
    with pytest.raises(SystemExit):
        readme_results.main([study])
    assert "no report.md and claims.json in" in capsys.readouterr().err


def test_a_studys_summary_is_quoted_under_the_claims_as_a_subsection_and_copied(tmp_path, monkeypatch):
    monkeypatch.setattr(readme_results, "ROOT", str(tmp_path / "repo"))
    study = write_study(tmp_path, "bible_es_en", "cpu", [LONG])
    (tmp_path / "bible_es_en" / "summary.md").write_text("## Test scores\n\n| model | BLEU |\n|---|---|\n")
    other = write_study(tmp_path, "reverse_source", "cpu", [ONE_SEED])  # writes no summary: none quoted
    text = readme_results.render([study, other])
    assert "### Test scores (`bible_es_en`)\n\n| model | BLEU |" in text
    assert text.index("Why not reproduced") < text.index("### Test scores") < text.index("![")
    assert text.count("### ") == 1
    assert os.path.exists(tmp_path / "repo" / "docs" / "results" / "bible_es_en" / "summary.md")


def test_a_study_already_in_docs_results_is_quoted_where_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(readme_results, "ROOT", str(tmp_path / "repo"))
    study = write_study(tmp_path / "repo" / "docs" / "results", "reverse_source", "cpu", [ONE_SEED])
    assert "![reverse_source: overall_seq_acc.png](docs/results/reverse_source/plots/overall_seq_acc.png)" in (
        readme_results.render([study]))
