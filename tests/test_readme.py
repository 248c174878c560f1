"""The README's code runs as written, and CI runs the README's test command."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_snippets_run_in_order():
    """Every Python block but the Translator's, which needs a trained run (tests/test_translator.py runs it)."""
    namespace = {}
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert sum("Translator.from_workdir" in block for block in blocks) == 1
    for block in blocks:
        if "Translator.from_workdir" not in block:
            exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["logits"].shape == (2, 5, 50)
    assert namespace["weights"].shape == (2, 5, 7)


def test_ci_runs_the_readme_install_and_test_command():
    bash_blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_command = next(b for b in bash_blocks if "pytest" in b).strip()
    ci = (ROOT / ".ci" / "run").read_text()
    for step in test_command.split(" && "):
        step = step.replace(".venv/bin/pip install", ".venv/bin/pip install -q")
        assert step in ci, f"README step {step!r} is not in .ci/run"
