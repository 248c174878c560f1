"""Train-step speed, or memory, of ONE implementation, alone in this process: ours, the PyTorch peer, or plain
Flax. On a GPU both sides run there (JAX's default device; the peer on ``cuda``, float32 matmuls in TF32 as
JAX's default), and a step's time waits for its kernels.

  python -m benchmarks.train_step --impl=ours --cell=lstm --decoder=attention --batch=64 --src_len=32
  python -m benchmarks.train_step --impl=torch ...     # the PyTorch peer (optional extra 'bench')
  python -m benchmarks.train_step --impl=flax_rnn --decoder=bottleneck   # nn.RNN(OptimizedLSTMCell)
  python -m benchmarks.train_step --measure=memory --impl=ours|torch [--remat] --src_len=320 --tgt_len=320

One step = forward + backward + global-norm clipping (5.0) + Adam (lr 1e-3) + the step's metrics, on one
synthetic batch (lengths drawn in ``[len/2, len]``, as bucketed batches are nearly full). The first step
(ours: trace + compile) and ``--warmup`` more are not timed; then ``--steps`` steps are. Prints one JSON
object. ``benchmarks.run`` starts one such process per implementation and repetition, never two at once:
two thread pools in one process or on one machine slow each other down, PyTorch's far more than XLA's.
Ours (and ``flax_rnn``) also report the step's matmul FLOPs (``common.matmul_flops``), counted after the timing.
Every row reports the process's ``malloc`` (with its threads) and its minor page faults per timed step: under
glibc our step takes one per 4 KiB of XLA's temporary buffer (``seq2seq_jax.malloc``); ``benchmarks.run``
also times both sides with tcmalloc preloaded.

``--measure=memory`` times nothing; it reports the most memory one step holds at once (``memory``), in bytes:

* ours: XLA's buffer assignment of the compiled step (``compiled.memory_analysis()``): ``argument`` (the
  state: parameters, Adam's moments and step; and the batch) + ``output`` (the new state and the metrics)
  - ``alias`` (outputs written into the donated state's buffers: counted once, not twice) + ``temp`` (every
  intermediate: activations kept for the backward pass, gradients, Adam's update; XLA packs them into one
  buffer of the size of their peak). Exact for this program, the same on every run and machine.
* the peer: the tensors held before the step (parameters, Adam's moments, the batch) + the most bytes
  PyTorch's CPU allocator held at once in allocations made during the step (``torch_seq2seq.
  peak_allocated_bytes``: torch.profiler's memory events, summed in time order; on a GPU, the CUDA allocator's
  peak, ``torch_seq2seq.peak_cuda_allocated_bytes``), on the model's first step;
  Adam's moments are created before it by an optimizer step on zero gradients (a zero update). Tensor bytes
  like ours, so the two compare; deterministic too.

Both also report ``max_rss_bytes``: the process's peak resident memory (``VmHWM``, ``common.max_rss_bytes``)
after the step, interpreter, libraries, the XLA compiler (ours) and the profiler's records (the peer) included:
what the operating system saw, a check that the tensor counts leave nothing big out. Both processes first have
glibc unmap every freed allocation of 1 MiB or more (``common.unmap_freed_memory``), so that resident memory
follows the live bytes: with glibc's default, the peer at length 320 with attention kept so many freed pages
resident under its profiler that it was killed for memory on a 23 GB machine.
"""

import functools
import json
import os

import flax.linen as nn
import jax
from absl import app, flags

from benchmarks.common import (matmul_flops, max_rss_bytes, model_config, num_params, page_faults, synthetic_batch,
                               threads, timed, unmap_freed_memory)
from seq2seq_jax import model as model_lib
from seq2seq_jax import optim
from seq2seq_jax import recurrent
from seq2seq_jax import train
from seq2seq_jax.model import shift_right

IMPLS = ("ours", "torch", "flax_rnn")
_MEASURE = flags.DEFINE_enum("measure", "time", ["time", "memory"], "Time the steps, or report one step's memory.")
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
# Not --steps: seq2seq_jax.average defines that flag, and the tests import both modules into one process.
_STEPS = flags.DEFINE_integer("timed_steps", 10, "Timed steps.", lower_bound=1)
_REMAT = flags.DEFINE_bool("remat", False, "Ours: model.remat (recompute the scans' per-step activations).")
_RECURRENT_IMPL = flags.DEFINE_enum("recurrent_impl", "scan", list(recurrent.IMPLS),
                                    "Ours: model.recurrent_impl (the encoder's recurrence).")


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
        self.train_step = functools.partial(train.train_step, dropout_key=jax.random.PRNGKey(1))
        self.step_fn = jax.jit(self.train_step, donate_argnums=0)
        self.batch = jax.device_put(batch)

    def step(self):
        self.state, metrics = self.step_fn(self.state, self.batch)
        jax.block_until_ready((self.state, metrics))

    def flops(self) -> int:
        return matmul_flops(self.train_step, self.state, self.batch)

    def memory(self) -> dict:
        """See the module docstring; XLA's fields as they are, and what they sum to."""
        compiled = self.step_fn.lower(self.state, self.batch).compile()
        m = compiled.memory_analysis()
        xla = {"argument": m.argument_size_in_bytes, "output": m.output_size_in_bytes,
               "alias": m.alias_size_in_bytes, "temp": m.temp_size_in_bytes,
               "generated_code": m.generated_code_size_in_bytes}
        self.state, metrics = compiled(self.state, self.batch)  # one step, for max_rss_bytes
        jax.block_until_ready((self.state, metrics))
        step_bytes = xla["output"] - xla["alias"] + xla["temp"]
        return {"peak_bytes": xla["argument"] + step_bytes, "persistent_bytes": xla["argument"],
                "step_bytes": step_bytes, "xla_bytes": xla, "max_rss_bytes": max_rss_bytes(),
                "method": "XLA memory_analysis: argument + output - alias + temp"}


class TorchSide:
    """The PyTorch peer (``benchmarks/torch_seq2seq.py``) on the same batch, one intra-op thread a CPU."""

    def __init__(self, config, vocab, batch):
        import torch  # optional extra 'bench'
        from benchmarks import torch_seq2seq

        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(0)
        self.device, self.synchronize = torch_seq2seq.device(), torch_seq2seq.synchronize
        m = config.model
        self.model = torch_seq2seq.TorchSeq2Seq(
            cell=m.cell, source_vocab_size=vocab, target_vocab_size=vocab, embedding_size=m.embedding_size,
            hidden_size=m.hidden_size, attention_size=m.attention_size, decoder=m.decoder).to(self.device)
        self.params = torch_seq2seq.num_params(self.model)
        self.step_fn = torch_seq2seq.make_train_step(self.model, learning_rate=config.train.learning_rate,
                                                     max_grad_norm=config.train.max_grad_norm)
        self.batch = torch_seq2seq.to_torch_batch(batch, shift_right(batch["targets"]), self.device)

    def step(self):
        self.step_fn(self.batch)
        self.synchronize(self.device)

    def memory(self) -> dict:
        """See the module docstring."""
        import torch  # optional extra 'bench'
        from benchmarks import torch_seq2seq

        optimizer = self.step_fn.optimizer
        for p in self.model.parameters():  # Adam's moments, created by a step on zero gradients (a zero update)
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        persistent = torch_seq2seq.tensor_bytes([list(self.model.parameters()), optimizer.state, self.batch])
        if self.device.type == "cuda":
            step_bytes = torch_seq2seq.peak_cuda_allocated_bytes(self.step, self.device)
            method = "tensors before the step + the CUDA allocator's peak of the step's allocations"
        else:
            step_bytes = torch_seq2seq.peak_allocated_bytes(self.step)
            method = "tensors before the step + torch.profiler's peak of the step's allocations"
        return {"peak_bytes": persistent + step_bytes, "persistent_bytes": persistent, "step_bytes": step_bytes,
                "max_rss_bytes": max_rss_bytes(), "method": method}


def _side(impl, cell, decoder, batch, src_len, tgt_len, hidden, embed, vocab, remat, recurrent_impl):
    if impl == "flax_rnn" and decoder != "bottleneck":
        raise ValueError("--impl=flax_rnn is the bottleneck model; use --decoder=bottleneck")
    if remat and impl != "ours":
        raise ValueError("--remat is ours (model.remat); use --impl=ours")
    if recurrent_impl != "scan" and impl != "ours":
        raise ValueError("--recurrent_impl is ours (model.recurrent_impl); use --impl=ours")
    config = model_config(cell, decoder, hidden, embed, remat=remat)
    config.model.recurrent_impl = recurrent_impl
    data = synthetic_batch(batch, src_len, tgt_len, vocab)
    side = TorchSide(config, vocab, data) if impl == "torch" else JaxSide(config, vocab, data, impl == "flax_rnn")
    settings = dict(cell=cell, decoder=decoder, batch=batch, src_len=src_len, tgt_len=tgt_len, hidden=hidden,
                    embed=embed, vocab=vocab, remat=remat, recurrent_impl=recurrent_impl)
    return side, data, settings


def benchmark(*, impl="ours", cell="lstm", decoder="attention", batch=64, src_len=32, tgt_len=32, hidden=256,
              embed=128, vocab=1000, warmup=3, steps=10, remat=False, recurrent_impl="scan") -> dict:
    """Times ``impl`` alone (see the module docstring); returns a JSON-able dict."""
    side, data, settings = _side(impl, cell, decoder, batch, src_len, tgt_len, hidden, embed, vocab, remat,
                                 recurrent_impl)
    first = timed(side.step)  # ours: trace + compile + one step
    for _ in range(warmup):
        side.step()
    faults = page_faults()
    times = [timed(side.step) for _ in range(steps)]
    faults = page_faults() - faults
    return {
        "benchmark": "train_step", "impl": impl, "settings": dict(settings, warmup=warmup, steps=steps),
        "params": side.params, "tokens": int(data["target_lengths"].sum()),  # target tokens a step
        "first_s": first, "times_s": times, "threads": threads(impl), "page_faults_per_step": faults / steps,
        "flops": None if impl == "torch" else side.flops(),  # the peer's: ours (benchmarks.run)
    }


def memory(*, impl="ours", cell="lstm", decoder="attention", batch=64, src_len=32, tgt_len=32, hidden=256,
           embed=128, vocab=1000, remat=False, recurrent_impl="scan", unmap_freed=True) -> dict:
    """One step's memory of ``impl`` alone (see the module docstring); returns a JSON-able dict.
    ``unmap_freed=False`` leaves glibc's allocation settings (in a process that goes on: the tests)."""
    if impl == "flax_rnn":
        raise ValueError("--measure=memory compares ours and the peer: use --impl=ours or --impl=torch")
    unmapped = unmap_freed and unmap_freed_memory()  # before any large allocation
    side, _, settings = _side(impl, cell, decoder, batch, src_len, tgt_len, hidden, embed, vocab, remat,
                              recurrent_impl)
    return {"benchmark": "train_step_memory", "impl": impl, "settings": settings, "params": side.params,
            "memory": {**side.memory(), "unmap_freed_memory": unmapped},
            "flops": None if impl == "torch" else side.flops(), "threads": threads(impl)}


def main(argv):
    del argv
    sizes = dict(impl=_IMPL.value, cell=_CELL.value, decoder=_DECODER.value, batch=_BATCH.value,
                 src_len=_SRC_LEN.value, tgt_len=_TGT_LEN.value, hidden=_HIDDEN.value, embed=_EMBED.value,
                 vocab=_VOCAB.value, remat=_REMAT.value, recurrent_impl=_RECURRENT_IMPL.value)
    if _MEASURE.value == "memory":
        print(json.dumps(memory(**sizes)))
    else:
        print(json.dumps(benchmark(**sizes, warmup=_WARMUP.value, steps=_STEPS.value)))


if __name__ == "__main__":
    app.run(main)
