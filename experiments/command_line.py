"""The absl parsers of the studies' flags (`experiments.study` defines the flags and parses them): `--shard=i/n`,
`--seeds=N|a,b`, and the `--config.SECTION.FIELD=VALUE` overrides, each an absl flag of its own whose value is a
Python literal; and absl's parse errors as one line."""

import ast
from collections.abc import Sequence
import re

from absl import flags

CONFIG_PREFIX = "config."
CONFIG_HELP = ("--config.SECTION.FIELD=VALUE (repeatable) overrides a field of every run's config, "
                "e.g. --config.train.num_steps=200;\n  VALUE is a Python literal (7, 1e-3, None, (0, 10)), "
                "true/false, or else a string")


class UsageError(Exception):
    """A bad command line: one line on stderr, exit status 2."""


class ShardParser(flags.ArgumentParser):
    """`i/n` -> (i, n), 0 <= i < n."""

    def parse(self, argument):
        match = re.fullmatch(r"(\d+)/(\d+)", argument)
        if not match or not int(match[1]) < int(match[2]):
            raise ValueError("expected i/n with 0 <= i < n (e.g. 0/4)")
        return int(match[1]), int(match[2])

    def flag_type(self):
        return "i/n"


class ShardSerializer(flags.ArgumentSerializer):
    def serialize(self, value):
        return f"{value[0]}/{value[1]}"


class SeedsParser(flags.ArgumentParser):
    """'N' -> seeds 0..N-1; a comma-separated list ('0,5', or '7,' for seed 7 alone) -> those seeds."""

    def parse(self, argument):
        try:
            seeds = ([int(s) for s in argument.split(",") if s.strip()] if "," in argument
                     else list(range(int(argument))))
        except ValueError:
            raise ValueError("expected N or a comma-separated list") from None
        if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
            raise ValueError("expected at least one distinct non-negative seed")
        return seeds

    def flag_type(self):
        return "seeds"


def format_seeds(seeds: Sequence[int]) -> str:
    """The inverse of `SeedsParser`."""
    if list(seeds) == list(range(len(seeds))):
        return str(len(seeds))
    return ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else "")


class ValueParser(flags.ArgumentParser):
    """A `--config.x=v` value: a Python literal (3, 1e-3, None, True, ('a', 'b')), true/false, or a string."""

    def parse(self, argument):
        if argument.lower() in ("true", "false"):
            return argument.lower() == "true"
        try:
            return ast.literal_eval(argument)
        except (ValueError, SyntaxError):
            return argument

    def flag_type(self):
        return "config value"


def override_names(argv: Sequence[str]) -> list[str]:
    """The `config.SECTION.FIELD` flag names in `argv` (before a `--`), in order of first appearance."""
    argv = list(argv)
    argv = argv[:argv.index("--")] if "--" in argv else argv
    names = [arg.lstrip("-").split("=", 1)[0] for arg in argv
             if arg.startswith(("--" + CONFIG_PREFIX, "-" + CONFIG_PREFIX))]
    return list(dict.fromkeys(names))


def flag_error(error: flags.Error) -> str:
    """absl's parse error as one line naming the argument."""
    if isinstance(error, flags.UnrecognizedFlagError):
        guess = re.search(r"Did you mean: (.*) \?$", str(error))
        return (f"unrecognized argument {error.flagvalue!r}" + (f"; did you mean --{guess[1]}?" if guess else "")
                + f" (config overrides are --{CONFIG_PREFIX}SECTION.FIELD=VALUE)")
    missing = re.fullmatch(r"Missing value for flag (-\S+)", str(error))
    if missing:
        return f"argument {missing[1]}: expected a value"
    message = re.sub(r"^flag --", "argument --", str(error))
    return re.sub(r"\('Non-boolean argument to boolean flag', .*\)$", "expected true or false", message)
