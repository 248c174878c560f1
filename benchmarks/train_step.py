"""Train-step speed of ONE implementation, alone in this process: ours, the PyTorch peer, or plain Flax.

  python -m benchmarks.train_step --impl=ours --cell=lstm --decoder=attention --batch=64 --src_len=32
  python -m benchmarks.train_step --impl=torch ...     # the PyTorch peer (optional extra 'bench')
  python -m benchmarks.train_step --impl=flax_rnn --decoder=bottleneck   # nn.RNN(OptimizedLSTMCell)

One step = forward + backward + global-norm clipping (5.0) + Adam (lr 1e-3) + the step's metrics, on one
synthetic batch (lengths drawn in ``[len/2, len]``, as bucketed batches are nearly full). The first step
(ours: trace + compile) and ``--warmup`` more are not timed; then ``--steps`` steps are. Prints one JSON
object. ``benchmarks.run`` starts one such process per implementation and repetition, never two at once:
two thread pools in one process or on one machine slow each other down, PyTorch's far more than XLA's.
"""

import functools
import json
import os

import flax.linen as nn
import jax
from absl import app, flags

from benchmarks.common import model_config, num_params, synthetic_batch, threads, timed
from seq2seq_jax import model as model_lib
from seq2seq_jax import optim
from seq2seq_jax import train
from seq2seq_jax.model import shift_right

IMPLS = ("ours", "torch", "flax_rnn")
_IMPL = flags.DEFINE_enum("impl", "ours", IMPLS, "Implementation timed in this process.")
_CELL = flags.DEFINE_enum("cell", "lstm", ["lstm", "gru"], "Recurrent cell of encoder and decoder.")
_DECODER = flags.DEFINE_enum("decoder", "attention", ["attention", "bottleneck"], "Decoder.")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size.")
_SRC_LEN = flags.DEFINE_integer("src_len", 32, "Padded source length.")
_TGT_LEN = flags.DEFINE_integer("tgt_len", 32, "Padded target length.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Hidden size (and attention size).")
_EMBED = flags.DEFINE_integer("embed", 128, "Embedding size.")
_VOCAB = flags.DEFINE_integer("vocab", 1000, "Source and target vocabulary size.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after the first one.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps.")


def torch_extra_params(cell: str, hidden: int) -> int:
    """PyTorch's second bias vector (b_ih and b_hh) in the encoder's and the decoder's recurrent layer."""
    return (4 if cell == "lstm" else 2) * hidden * 2


class PlainFlaxBottleneck(nn.Module):
    """The bottleneck model as a Flax user would write it with Flax's own layer: ``nn.RNN`` over the source
    (``seq_lengths``), its final carry starting an ``nn.RNN`` over the target."""

    cell: str
    vocab: int
    embed: int
    hidden: int

    @nn.compact
    def __call__(self, inputs, lengths, decoder_inputs, train=False):
        del train  # no dropout
        make_cell = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}[self.cell]
        x = nn.Embed(self.vocab, self.embed)(inputs)  # [batch, src_len, embed]
        carry, _ = nn.RNN(make_cell(self.hidden), return_carry=True)(x, seq_lengths=lengths)
        y = nn.Embed(self.vocab, self.embed)(decoder_inputs)  # [batch, tgt_len, embed]
        return nn.Dense(self.vocab)(nn.RNN(make_cell(self.hidden))(y, initial_carry=carry))


class JaxSide:
    """Our ``train.train_step``, jitted and donated, on our model or on ``PlainFlaxBottleneck``."""

    def __init__(self, config, vocab, batch, plain_flax=False):
        if plain_flax:
            m = config.model
            model = PlainFlaxBottleneck(m.cell, vocab, m.embedding_size, m.hidden_size)
            params = jax.jit(model.init)(jax.random.PRNGKey(0), batch["inputs"], batch["input_lengths"],
                                         batch["targets"])["params"]
            self.state = optim.TrainState.create(apply_fn=model.apply, params=params,
                                                 tx=optim.make_optimizer(config.train))
        else:
            self.state = optim.create_train_state(model_lib.create_model(config, vocab, vocab), config)
        self.params = num_params(self.state.params)
        self.step_fn = jax.jit(functools.partial(train.train_step, dropout_key=jax.random.PRNGKey(1)),
                               donate_argnums=0)
        self.batch = jax.device_put(batch)

    def step(self):
        self.state, metrics = self.step_fn(self.state, self.batch)
        jax.block_until_ready((self.state, metrics))


class TorchSide:
    """The PyTorch peer (``benchmarks/torch_seq2seq.py``) on the same batch, one intra-op thread a CPU."""

    def __init__(self, config, vocab, batch):
        import torch  # optional extra 'bench'
        from benchmarks import torch_seq2seq

        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(0)
        m = config.model
        self.model = torch_seq2seq.TorchSeq2Seq(
            cell=m.cell, source_vocab_size=vocab, target_vocab_size=vocab, embedding_size=m.embedding_size,
            hidden_size=m.hidden_size, attention_size=m.attention_size, decoder=m.decoder)
        self.params = torch_seq2seq.num_params(self.model)
        self.step_fn = torch_seq2seq.make_train_step(self.model, learning_rate=config.train.learning_rate,
                                                     max_grad_norm=config.train.max_grad_norm)
        self.batch = torch_seq2seq.to_torch_batch(batch, shift_right(batch["targets"]))

    def step(self):
        self.step_fn(self.batch)


def benchmark(*, impl="ours", cell="lstm", decoder="attention", batch=64, src_len=32, tgt_len=32, hidden=256,
              embed=128, vocab=1000, warmup=3, steps=10) -> dict:
    """Times ``impl`` alone (see the module docstring); returns a JSON-able dict."""
    if impl == "flax_rnn" and decoder != "bottleneck":
        raise ValueError("--impl=flax_rnn is the bottleneck model; use --decoder=bottleneck")
    config = model_config(cell, decoder, hidden, embed)
    data = synthetic_batch(batch, src_len, tgt_len, vocab)
    side = TorchSide(config, vocab, data) if impl == "torch" else JaxSide(config, vocab, data, impl == "flax_rnn")
    first = timed(side.step)  # ours: trace + compile + one step
    for _ in range(warmup):
        side.step()
    times = [timed(side.step) for _ in range(steps)]
    return {
        "benchmark": "train_step", "impl": impl,
        "settings": dict(cell=cell, decoder=decoder, batch=batch, src_len=src_len, tgt_len=tgt_len, hidden=hidden,
                         embed=embed, vocab=vocab, warmup=warmup, steps=steps),
        "params": side.params, "tokens": int(data["target_lengths"].sum()),  # target tokens a step
        "first_s": first, "times_s": times, "threads": threads(impl),
    }


def main(argv):
    del argv
    print(json.dumps(benchmark(impl=_IMPL.value, cell=_CELL.value, decoder=_DECODER.value, batch=_BATCH.value,
                               src_len=_SRC_LEN.value, tgt_len=_TGT_LEN.value, hidden=_HIDDEN.value,
                               embed=_EMBED.value, vocab=_VOCAB.value, warmup=_WARMUP.value, steps=_STEPS.value)))


if __name__ == "__main__":
    app.run(main)
