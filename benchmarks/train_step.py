"""Train-step speed: our jitted, donated ``train.train_step`` against the same model in PyTorch.

  python -m benchmarks.train_step --cell=lstm --decoder=attention --batch=64 --src_len=32 --tgt_len=32
  python -m benchmarks.train_step --no_torch        # without the 'bench' extra: ours vs our other decoder

One step = forward + backward + global-norm clipping (5.0) + Adam (lr 1e-3) + the step's metrics, on one
synthetic batch (lengths drawn in ``[len/2, len]``, as bucketed batches are nearly full). The peer is
``benchmarks/torch_seq2seq.py`` (same architecture and sizes; parameter counts printed and checked), or with
``--no_torch`` our model with the other decoder. After ``--warmup`` steps each, the two run alternately
(ours, peer, ours, peer, ...) ``--repeats`` times, so load from other jobs hits both alike; we report
medians, target tokens/s and the ratio peer/ours (> 1: ours is faster). ``--json`` prints one JSON object.
"""

import functools
import json
import os
import statistics
import time

import jax
import numpy as np
from absl import app, flags, logging

from benchmarks.common import machine
from seq2seq_jax import train
from seq2seq_jax.configs import default
from seq2seq_jax.model import shift_right

_CELL = flags.DEFINE_enum("cell", "lstm", ["lstm", "gru"], "Recurrent cell of encoder and decoder.")
_DECODER = flags.DEFINE_enum("decoder", "attention", ["attention", "bottleneck"], "Decoder.")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size.")
_SRC_LEN = flags.DEFINE_integer("src_len", 32, "Padded source length.")
_TGT_LEN = flags.DEFINE_integer("tgt_len", 32, "Padded target length.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Hidden size (and attention size).")
_EMBED = flags.DEFINE_integer("embed", 128, "Embedding size.")
_VOCAB = flags.DEFINE_integer("vocab", 1000, "Source and target vocabulary size.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps of each side before timing.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed steps of each side, interleaved.")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Compare with our other decoder instead of PyTorch.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")

PARAM_TOLERANCE = 0.03  # at the default sizes; the difference is exactly `torch_extra_params`


def torch_extra_params(cell: str, hidden: int) -> int:
    """PyTorch's second bias vector (b_ih and b_hh) in the encoder's and the decoder's recurrent layer."""
    return (4 if cell == "lstm" else 2) * hidden * 2


def model_config(cell, decoder, hidden, embed):
    """``config`` of the default run with these sizes: 1 layer, unidirectional, additive attention, no dropout."""
    config = default.get_config()
    config.model.update(dict(cell=cell, decoder=decoder, hidden_size=hidden, attention_size=hidden,
                             embedding_size=embed, num_layers=1, bidirectional=False, dropout=0.0))
    return config


def synthetic_batch(batch, src_len, tgt_len, vocab, seed=0) -> dict:
    """A padded numpy batch of random tokens, lengths uniform in ``[len // 2, len]`` (at least 1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for side, length in (("input", src_len), ("target", tgt_len)):
        lengths = rng.integers(max(1, length // 2), length + 1, size=batch).astype(np.int32)
        tokens = rng.integers(4, vocab, size=(batch, length)).astype(np.int32)
        out[f"{side}s"] = np.where(np.arange(length)[None, :] < lengths[:, None], tokens, 0).astype(np.int32)
        out[f"{side}_lengths"] = lengths
    return out


def num_params(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


class OursSide:
    """Our model with ``train.create_train_state`` and the jitted, donated ``train.train_step``."""

    def __init__(self, config, vocab, batch):
        model = train.create_model(config, vocab, vocab)
        self.name = f"seq2seq_jax {config.model.cell}/{config.model.decoder}"
        self.state = train.create_train_state(model, config)
        self.params = num_params(self.state.params)
        self.step_fn = jax.jit(functools.partial(train.train_step, dropout_key=jax.random.PRNGKey(1)),
                               donate_argnums=0)
        self.batch = jax.device_put(batch)

    def step(self):
        self.state, metrics = self.step_fn(self.state, self.batch)
        jax.block_until_ready((self.state, metrics))
        return metrics


class TorchSide:
    """The PyTorch peer on the same batch."""

    def __init__(self, config, vocab, batch):
        import torch  # optional extra 'bench'
        from benchmarks import torch_seq2seq

        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(0)
        m = config.model
        self.name = f"torch {torch.__version__} {m.cell}/{m.decoder}"
        self.model = torch_seq2seq.TorchSeq2Seq(
            cell=m.cell, source_vocab_size=vocab, target_vocab_size=vocab, embedding_size=m.embedding_size,
            hidden_size=m.hidden_size, attention_size=m.attention_size, decoder=m.decoder)
        self.params = torch_seq2seq.num_params(self.model)
        self.step_fn = torch_seq2seq.make_train_step(self.model, learning_rate=config.train.learning_rate,
                                                     max_grad_norm=config.train.max_grad_norm)
        self.batch = torch_seq2seq.to_torch_batch(batch, shift_right(batch["targets"]))

    def step(self):
        return self.step_fn(self.batch)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def benchmark(*, cell="lstm", decoder="attention", batch=64, src_len=32, tgt_len=32, hidden=256, embed=128,
              vocab=1000, warmup=3, repeats=20, use_torch=True) -> dict:
    """Times both sides (see the module docstring); returns a JSON-able dict."""
    config = model_config(cell, decoder, hidden, embed)
    data = synthetic_batch(batch, src_len, tgt_len, vocab)
    ours = OursSide(config, vocab, data)
    if use_torch:
        peer = TorchSide(config, vocab, data)
        expected = ours.params + torch_extra_params(cell, hidden)
        assert peer.params == expected, f"the PyTorch peer has {peer.params} parameters, expected {expected}"
        deviation = abs(peer.params - ours.params) / ours.params
        if deviation > PARAM_TOLERANCE:  # tiny sizes (tests): the extra biases weigh more
            logging.warning("parameter counts differ by %.1f%% (PyTorch's second bias vectors)", 100 * deviation)
    else:
        other = "bottleneck" if decoder == "attention" else "attention"
        peer = OursSide(model_config(cell, other, hidden, embed), vocab, data)
    sides = {"ours": ours, "peer": peer}
    first = {name: _timed(side.step) for name, side in sides.items()}  # ours: trace + compile + 1 step
    for _ in range(warmup):
        for side in sides.values():
            side.step()
    times = {name: [] for name in sides}
    for _ in range(repeats):
        for name, side in sides.items():  # interleaved: ours, peer, ours, peer, ...
            times[name].append(_timed(side.step))
    tokens = int(data["target_lengths"].sum())
    result = {
        "benchmark": "train_step",
        "settings": dict(cell=cell, decoder=decoder, batch=batch, src_len=src_len, tgt_len=tgt_len, hidden=hidden,
                         embed=embed, vocab=vocab, warmup=warmup, repeats=repeats, use_torch=use_torch,
                         target_tokens_per_batch=tokens),
        "machine": machine(),
    }
    for name, side in sides.items():
        median = statistics.median(times[name])
        result[name] = {"name": side.name, "params": side.params, "first_step_s": first[name],
                        "median_step_s": median, "min_step_s": min(times[name]),
                        "tokens_per_s": tokens / median, "step_times_s": times[name]}
    result["ratio_peer_over_ours"] = result["peer"]["median_step_s"] / result["ours"]["median_step_s"]
    return result


def format_text(r: dict) -> str:
    s = r["settings"]
    lines = [f"train step: {s['cell']}/{s['decoder']} batch={s['batch']} src_len={s['src_len']} "
             f"tgt_len={s['tgt_len']} hidden={s['hidden']} embed={s['embed']} vocab={s['vocab']} "
             f"({s['target_tokens_per_batch']} target tokens/batch); {s['repeats']} interleaved repeats "
             f"after {s['warmup']} warmup; {r['machine']['cpu_count']} CPUs"]
    for name in ("ours", "peer"):
        x = r[name]
        first = "compile + first step" if name == "ours" or not s["use_torch"] else "first step"
        lines.append(f"  {name:4s} {x['name']:32s} params {x['params']:>10,d}  {first} {x['first_step_s']:7.2f} s  "
                     f"median {1e3 * x['median_step_s']:8.2f} ms  {x['tokens_per_s']:>10,.0f} tokens/s")
    lines.append(f"  ratio peer/ours (median step time): {r['ratio_peer_over_ours']:.2f}")
    return "\n".join(lines)


def main(argv):
    del argv
    result = benchmark(cell=_CELL.value, decoder=_DECODER.value, batch=_BATCH.value, src_len=_SRC_LEN.value,
                       tgt_len=_TGT_LEN.value, hidden=_HIDDEN.value, embed=_EMBED.value, vocab=_VOCAB.value,
                       warmup=_WARMUP.value, repeats=_REPEATS.value, use_torch=not _NO_TORCH.value)
    print(json.dumps(result) if _JSON.value else format_text(result))


if __name__ == "__main__":
    app.run(main)
