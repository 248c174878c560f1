"""A study's claims: what each asserts, its estimate over seeds with a 95% interval, and its verdict.

A claim compares two variants on one quantity, per seed (paired by seed). Over n >= 2 seeds, the estimate is
the mean difference with a paired-t 95% interval; with one seed, a paired bootstrap over the test examples
both variants were scored on (for per-example metrics: seq_acc, wer). Verdict: `reproduced` if the interval
lies above 0, `not reproduced` if below, `inconclusive` otherwise; `why` says in words why a claim is not
reproduced.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import math
import os
import statistics

import ml_collections
import numpy as np
from scipy import stats

from experiments import sweep
from seq2seq_jax import inference
from seq2seq_jax import metrics as metrics_lib
from seq2seq_jax import workdir as workdir_lib

# Metrics that are an average of a per-example 0/1 outcome: with one seed, their claims are bootstrapped
# over the test examples (paired: both variants scored on each resample).
PER_EXAMPLE = ("seq_acc", "wer")
BOOTSTRAP_SAMPLES = 4000


@dataclasses.dataclass(frozen=True)
class Claim:
    """`better − worse` on `metric` is expected to be > 0 (`worse − better` when `lower_is_better`).

    `metric` is a key of a run's final metrics (`test/seq_acc`, `grad_init/log10_per_step`); with `bucket`
    (an index into the test split's source-length buckets, -1 = the longest sources) the metric after
    `test/` is read from that bucket of `eval/test.json`. `paper` is the published finding, for the README;
    `caveat` what in this study's settings may hide it, printed whenever the claim is not reproduced.
    """

    text: str
    better: str
    worse: str
    metric: str
    bucket: int | None = None
    lower_is_better: bool = False
    paper: str = ""
    caveat: str = ""


def claim_estimate(pairs: Sequence[tuple[float, float]],
                   outcomes: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> dict:
    """The expected-positive difference `a − b` over seeds: `{estimate, low, high, n, method}`.

    `pairs` are `(a, b)` per seed (paired by seed). n >= 2: mean difference, paired-t 95% interval.
    n = 1 with `outcomes = [(a_values, b_values)]`, the per-example values both variants' metric averages
    over the same test examples (in the same order): a paired bootstrap over the examples, each resample
    scoring both variants on the same examples (fixed seed, so a report regenerates identically). Otherwise
    the interval is None.
    """
    diffs = [a - b for a, b in pairs]
    n = len(diffs)
    if n == 0:
        return {"estimate": None, "low": None, "high": None, "n": 0, "method": "no finished runs"}
    mean = statistics.fmean(diffs)
    if n >= 2:
        sd = statistics.stdev(diffs)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        return {"estimate": mean, "low": mean - half, "high": mean + half, "n": n, "sd": sd,
                "method": f"paired t over {n} seeds"}
    if outcomes and len(outcomes[0][0]) > 0:
        per_example = np.asarray(outcomes[0][0], float) - np.asarray(outcomes[0][1], float)  # [examples]
        rng = np.random.default_rng(0)
        boot = np.concatenate([per_example[rng.integers(0, len(per_example), (500, len(per_example)))].mean(1)
                               for _ in range(BOOTSTRAP_SAMPLES // 500)])  # [BOOTSTRAP_SAMPLES]
        low, high = np.percentile(boot, [2.5, 97.5])
        return {"estimate": mean, "low": float(low), "high": float(high), "n": 1,
                "method": f"paired bootstrap over {len(per_example)} test examples, one seed"}
    return {"estimate": mean, "low": None, "high": None, "n": 1, "method": "one seed, no interval"}


def verdict(low: float | None, high: float | None) -> str:
    if low is not None and low > 0:
        return "reproduced"
    if high is not None and high < 0:
        return "not reproduced"
    return "inconclusive"


MAX_SEEDS_NEEDED = 1000


def seeds_needed(estimate: float, sd: float) -> int | None:
    """The fewest seeds whose paired-t 95% interval would exclude 0, were the mean difference and its
    seed-to-seed spread what they are now; None if that is over `MAX_SEEDS_NEEDED` (or no difference)."""
    if sd == 0:
        return 2 if estimate else None
    for n in range(2, MAX_SEEDS_NEEDED + 1):
        if stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) < abs(estimate):
            return n
    return None


def why(c: Mapping, caveat: str = "") -> str:
    """Why a claim's verdict is what it is, from its numbers (and the claim's `caveat`); '' if reproduced."""
    if c["verdict"] == "reproduced":
        return ""
    if c["verdict"] == "no data":
        text = "no seed finished both variants."
    elif c["low"] is None:
        text = "one seed, and this metric has no per-example outcomes to bootstrap: run `--seeds=3` or more."
    elif c["verdict"] == "not reproduced":
        text = (f"the whole interval lies below 0: in this setting the {'seeds' if c['n'] > 1 else 'test examples'} "
                "agree on the opposite of the claim.")
    elif c["n"] == 1:
        text = (f"one seed: the difference {number(c['estimate'])} is within the test examples' sampling noise "
                f"(interval [{number(c['low'])}, {number(c['high'])}]); run `--seeds=3` or more.")
    elif c["estimate"] <= 0:
        text = (f"the mean difference {number(c['estimate'])} is not above 0 and the interval contains 0: no sign "
                "of the claimed effect in this setting.")
    else:
        needed = seeds_needed(c["estimate"], c["sd"])
        text = (f"the mean difference {number(c['estimate'])} is smaller than its interval's half-width "
                f"{number((c['high'] - c['low']) / 2)}: the seeds disagree (sd of the per-seed differences "
                f"{number(c['sd'])}). " + (f"At this difference and spread, about {needed} seeds would give an "
                                            f"interval that excludes 0 (`--seeds={needed}`)." if needed else
                                            "No affordable number of seeds would separate a difference this small "
                                            "from the spread."))
    return text + (f" {caveat}" if caveat else "")


def _claim_value(study_dir: str, result: Mapping, claim: Claim) -> float | None:
    """`claim.metric` of one run (of its length bucket, for a bucket claim), or None."""
    if claim.bucket is None:
        value = result["metrics"].get(claim.metric)
    else:
        rows = (sweep.run_json(study_dir, result, "eval", "test.json") or {}).get("by_length", [])
        if not rows or not -len(rows) <= claim.bucket < len(rows):
            return None
        value = rows[claim.bucket].get(claim.metric.removeprefix("test/"))
    return None if not isinstance(value, (int, float)) or not math.isfinite(value) else float(value)


def example_outcomes(study_dir: str, result: Mapping, claim: Claim) -> np.ndarray | None:
    """The per-example values of a `PER_EXAMPLE` claim metric for one run, in test order (of its length
    bucket, for a bucket claim): 1/0 for a right/wrong sequence (`seq_acc`), 0/1 for `wer`; None if the
    metric is not per-example or the run kept no predictions."""
    metric = claim.metric.rpartition("/")[2]
    workdir = sweep.run_workdir(study_dir, result["run_id"])
    path = os.path.join(workdir, "eval", "test_predictions.tsv")
    if metric not in PER_EXAMPLE or not claim.metric.startswith("test/") or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        rows = [line.split("\t") for line in f.read().split("\n")[1:] if line]
    _, _, source_vocab, target_vocab = workdir_lib.load_run(workdir)
    tokenize = metrics_lib.vocab_tokenizer(target_vocab)
    right = np.array([metrics_lib.sequence_accuracy([hyp], [refs.split(" | ")], tokenize)
                      for _, hyp, refs in rows])  # [examples]
    if claim.bucket is not None:
        saved = sweep.run_json(study_dir, result, "eval", "test.json")
        config = sweep.run_json(study_dir, result, "config.json")
        buckets = saved.get("by_length", [])
        if not -len(buckets) <= claim.bucket < len(buckets):
            return None
        lo, hi = buckets[claim.bucket]["lo"], buckets[claim.bucket]["hi"]
        eval_config = ml_collections.ConfigDict(config["eval"])
        lengths = np.array([inference.source_length(source, len(source_vocab.encode(source)), eval_config)
                            for source, _, _ in rows])
        right = right[(lengths >= lo) & (lengths < hi)]
    return right if metric == "seq_acc" else 1.0 - right


def evaluate_claims(claims: Sequence[Claim], study_dir: str, results: Sequence[Mapping]) -> list[dict]:
    """Each claim's estimate, interval, n and verdict from the finished runs (paired by seed)."""
    out = []
    for claim in claims:
        values, runs = {}, {}
        for r in sweep.ok_results(results):
            if r["variant"] in (claim.better, claim.worse):
                value = _claim_value(study_dir, r, claim)
                if value is not None:
                    values[(r["variant"], r["seed"])], runs[(r["variant"], r["seed"])] = value, r
        seeds = sorted({s for v, s in values if (claim.better, s) in values and (claim.worse, s) in values})
        hi, lo = (claim.worse, claim.better) if claim.lower_is_better else (claim.better, claim.worse)
        pairs = [(values[(hi, s)], values[(lo, s)]) for s in seeds]
        outcomes = None
        if len(seeds) == 1:  # one seed: the examples are what an interval can be drawn from
            both = [example_outcomes(study_dir, runs[(v, seeds[0])], claim) for v in (hi, lo)]
            outcomes = [tuple(both)] if all(o is not None for o in both) and len(both[0]) == len(both[1]) else None
        stats_ = claim_estimate(pairs, outcomes)
        where = "" if claim.bucket is None else f", length bucket {claim.bucket}"
        c = {"claim": claim.text, "quantity": f"{hi} − {lo}: {claim.metric}{where}", **stats_,
             "seeds": seeds, "verdict": verdict(stats_["low"], stats_["high"]) if stats_["n"] else "no data",
             "paper": claim.paper}
        out.append({**c, "why": why(c, claim.caveat)})
    return out


def number(value) -> str:
    """A value for the report: 3 significant digits, or '—' for none."""
    return "—" if value is None else f"{value:.3g}"
