"""What every seq2seq_jax builder shares: the feature spec, stable hashing and seeded split filling."""

import dataclasses
import hashlib
import json
from collections.abc import Callable, Hashable

import numpy as np
import tensorflow_datasets as tfds

SPLITS = ("train", "validation", "test")


def features() -> tfds.features.FeaturesDict:
    """`source` and `target` strings; `references` = every acceptable target (usually `[target]`)."""
    return tfds.features.FeaturesDict({
            "source": tfds.features.Text(),
            "target": tfds.features.Text(),
            "references": tfds.features.Sequence(tfds.features.Text()),
    })


def example(source: str, target: str, references: list[str] | None = None) -> dict:
    """One record in the shared feature spec."""
    return {"source": source, "target": target, "references": references or [target]}


def stable_fraction(key: str) -> float:
    """A number in [0, 1) from `key` that is the same on every machine and Python run (unlike `hash`)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(key: str, validation: float = 0.05, test: float = 0.05) -> str:
    """Assigns `key` to a split by its stable hash: `validation`, `test`, rest `train`."""
    u = stable_fraction(key)
    if u < validation:
        return "validation"
    if u < validation + test:
        return "test"
    return "train"


def fill_splits(
        draw: Callable[[np.random.Generator], Hashable],
        sizes: dict[str, int],
        seed: int,
        max_draws_per_example: int = 50,
) -> dict[str, list]:
    """Draws distinct items with `np.random.default_rng(seed)` and deals out a random permutation of them.

    Each split is a uniform sample of the distinct items, so a part of the item space that runs out (the 100
    one- and two-digit numbers among `number_words`' draws) is shared in proportion to the split sizes,
    instead of landing whole in the split dealt first where training never sees it. No item is in two splits.

    Raises:
        ValueError: if the space of items is too small to hold `sum(sizes)` distinct items.
    """
    rng = np.random.default_rng(seed)
    total = sum(sizes.values())
    seen, items = set(), []
    for _ in range(max_draws_per_example * total):
        if len(items) == total:
            break
        item = draw(rng)
        if item not in seen:
            seen.add(item)
            items.append(item)
    if len(items) < total:
        raise ValueError(
                f"Only {len(items)} distinct examples found after {max_draws_per_example * total} draws, "
                f"but the split sizes {sizes} ask for {total}: make the sizes smaller or the task space larger.")
    items = [items[i] for i in rng.permutation(total)]
    out, start = {}, 0
    for split in ("validation", "test", "train"):
        out[split] = items[start:start + sizes[split]]
        start += sizes[split]
    return out


def with_overrides(config: tfds.core.BuilderConfig, **overrides) -> tfds.core.BuilderConfig:
    """`config` with some fields replaced, renamed `<name>-<hash of the overrides>`.

    A distinct name gives a distinct prepared directory, so data prepared with other sizes or seeds is never
    reused silently. Overrides equal to the config's own values leave it unchanged.
    """
    changed = {k: v for k, v in overrides.items() if getattr(config, k) != v}
    if not changed:
        return config
    tag = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return dataclasses.replace(config, name=f"{config.name}-{tag}", **changed)
