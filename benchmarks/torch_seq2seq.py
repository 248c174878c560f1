"""The PyTorch peer of ``seq2seq_jax.model.Seq2Seq`` for the speed benchmarks (optional extra ``bench``).

Written as an idiomatic PyTorch user would (after JoeyNMT / OpenNMT-py): ``nn.LSTM``/``nn.GRU`` encoder over
a packed sequence, and

* ``decoder='bottleneck'``: one ``nn.LSTM``/``nn.GRU`` call over the whole target, starting from the
  encoder's final state (Sutskever et al. 2014);
* ``decoder='attention'``: a Python loop over target steps with ``nn.LSTMCell``/``nn.GRUCell``, Bahdanau
  additive attention on the previous state, ``s_0 = tanh(W_s h_S)`` and ``o_i = tanh(W_o [s_i; c_i])``.

The computation is the one of ``Seq2Seq`` with ``num_layers=1``, unidirectional, no dropout, additive
attention, no input feeding: ``load_flax_params`` copies our parameters in and the losses agree
(``tests/test_benchmarks.py``). Differences in parameters: PyTorch's recurrent layers carry two bias
vectors (``b_ih`` and ``b_hh``) where Flax's cells carry one per gate (a GRU: one for ``n`` on each side),
so the peer has ``4 * hidden`` (LSTM) or ``2 * hidden`` (GRU) more parameters per recurrent layer.

Only ``benchmarks/`` imports this module.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}
CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}


class TorchSeq2Seq(nn.Module):
    def __init__(self, *, cell: str, source_vocab_size: int, target_vocab_size: int, embedding_size: int,
                 hidden_size: int, attention_size: int, decoder: str):
        super().__init__()
        self.cell, self.decoder = cell, decoder
        self.src_embed = nn.Embedding(source_vocab_size, embedding_size)
        self.tgt_embed = nn.Embedding(target_vocab_size, embedding_size)
        self.encoder = RNNS[cell](embedding_size, hidden_size, batch_first=True)
        if decoder == "attention":
            # One bridge per carry leaf, in Flax's carry order: (c, h) for an LSTM, h for a GRU.
            self.bridge = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(2 if cell == "lstm" else 1))
            self.key = nn.Linear(hidden_size, attention_size, bias=False)  # U h_j
            self.query = nn.Linear(hidden_size, attention_size)  # W s_{i-1} + b
            self.score = nn.Linear(attention_size, 1, bias=False)  # v^T
            self.decoder_cell = CELLS[cell](embedding_size + hidden_size, hidden_size)
            self.combine = nn.Linear(2 * hidden_size, hidden_size)  # W_o
        elif decoder == "bottleneck":
            self.decoder_rnn = RNNS[cell](embedding_size, hidden_size, batch_first=True)
        else:
            raise ValueError(f"decoder={decoder!r}; allowed: ['attention', 'bottleneck']")
        self.output = nn.Linear(hidden_size, target_vocab_size)

    def encode(self, inputs, input_lengths):
        """``(annotations [B, S, H], final, mask [B, S])``; ``final`` is the encoder's last state."""
        packed = pack_padded_sequence(self.src_embed(inputs), input_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        annotations, final = self.encoder(packed)
        annotations, _ = pad_packed_sequence(annotations, batch_first=True, total_length=inputs.shape[1])
        mask = torch.arange(inputs.shape[1], device=inputs.device)[None, :] < input_lengths[:, None]  # [B, S]
        return annotations, final, mask

    def initial_state(self, final):
        """The attention decoder's ``s_0 = tanh(W_s h_S)`` (each of ``(h, c)`` for an LSTM)."""
        if self.cell == "lstm":
            h_n, c_n = final  # each [1, B, H]
            return torch.tanh(self.bridge[1](h_n[0])), torch.tanh(self.bridge[0](c_n[0]))
        return torch.tanh(self.bridge[0](final[0]))

    def attention_step(self, state, y_t, keys, annotations, mask):
        """One attention-decoder step on ``y_t [B, E]``: ``(state', o_t [B, H])``."""
        s = state[0] if self.cell == "lstm" else state  # s_{i-1}
        scores = self.score(torch.tanh(keys + self.query(s)[:, None, :])).squeeze(-1)  # [B, S]
        alpha = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        context = torch.bmm(alpha[:, None, :], annotations).squeeze(1)  # [B, H]
        state = self.decoder_cell(torch.cat([y_t, context], dim=-1), state)
        s = state[0] if self.cell == "lstm" else state
        return state, torch.tanh(self.combine(torch.cat([s, context], dim=-1)))

    def forward(self, inputs, input_lengths, decoder_inputs):
        """``inputs [B, S]``, ``input_lengths [B]`` (all >= 1), ``decoder_inputs [B, T]`` -> logits ``[B, T, V]``."""
        annotations, final, mask = self.encode(inputs, input_lengths)
        y = self.tgt_embed(decoder_inputs)  # [B, T, E]
        if self.decoder == "bottleneck":
            outputs, _ = self.decoder_rnn(y, final)
            return self.output(outputs)
        keys = self.key(annotations)  # [B, S, A], once a sentence
        state = self.initial_state(final)
        outputs = []
        for t in range(y.shape[1]):
            state, o = self.attention_step(state, y[:, t], keys, annotations, mask)
            outputs.append(o)
        return self.output(torch.stack(outputs, dim=1))


@torch.no_grad()
def greedy_decode(model: TorchSeq2Seq, inputs, input_lengths, *, max_len: int, bos_id: int, eos_id: int):
    """Greedy decoding as a PyTorch user writes it: encode once, then one decoder step a token until every
    sentence has emitted ``eos_id`` or ``max_len`` steps ran. Returns the tokens ``[B, steps]``."""
    annotations, final, mask = model.encode(inputs, input_lengths)
    if model.decoder == "attention":
        keys, state = model.key(annotations), model.initial_state(final)
    else:
        state = final
    tokens = torch.full((inputs.shape[0],), bos_id, dtype=torch.long, device=inputs.device)
    finished = torch.zeros(inputs.shape[0], dtype=torch.bool, device=inputs.device)
    outputs = []
    for _ in range(max_len):
        y = model.tgt_embed(tokens)  # [B, E]
        if model.decoder == "attention":
            state, o = model.attention_step(state, y, keys, annotations, mask)
        else:
            o, state = model.decoder_rnn(y[:, None, :], state)
            o = o[:, 0]
        tokens = model.output(o).argmax(-1)
        outputs.append(tokens)
        finished |= tokens == eos_id
        if bool(finished.all()):
            break
    return torch.stack(outputs, dim=1)


def token_losses(logits, targets, target_lengths):
    """Masked cross-entropy sums, as ``seq2seq_jax.train.token_losses``."""
    mask = (torch.arange(targets.shape[1], device=targets.device)[None, :] < target_lengths[:, None]).float()
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                             reduction="none").view_as(mask)
    return (losses * mask).sum(), mask.sum(), mask


def make_train_step(model: TorchSeq2Seq, *, learning_rate=1e-3, max_grad_norm=5.0):
    """``step(batch) -> metrics``: forward, backward, global-norm clipping, Adam, and the same metrics
    as ``seq2seq_jax.train.train_step`` (loss/correct sums, gradient and parameter norms)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)  # optax.adam's defaults
    params = list(model.parameters())

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        logits = model(batch["inputs"], batch["input_lengths"], batch["decoder_inputs"])
        loss_sum, count, mask = token_losses(logits, batch["targets"], batch["target_lengths"])
        (loss_sum / count.clamp(min=1.0)).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        with torch.no_grad():
            correct = ((logits.argmax(-1) == batch["targets"]).float() * mask).sum()
            param_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p) for p in params]))
        return {"loss_sum": loss_sum.detach(), "token_count": count, "correct_sum": correct,
                "grad_norm": grad_norm, "param_norm": param_norm}

    step.optimizer = optimizer  # its state is part of the step's memory (benchmarks.train_step --measure=memory)
    return step


def to_torch_batch(batch: dict, decoder_inputs, device=None) -> dict:
    """Our numpy batch (plus ``shift_right(targets)``) as int64 tensors on ``device`` (default: the CPU)."""
    out = {k: torch.from_numpy(np.asarray(v, np.int64)).to(device) for k, v in batch.items()}
    out["decoder_inputs"] = torch.from_numpy(np.asarray(decoder_inputs, np.int64)).to(device)
    return out


def device() -> torch.device:
    """Where the peer runs: the GPU when PyTorch sees one (our side runs on JAX's default device, which is
    then the GPU too), else the CPU. On a GPU, float32 matmuls use TF32, as JAX's do by default."""
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 on tensor cores: JAX's default precision on a GPU
        return torch.device("cuda")
    return torch.device("cpu")


def synchronize(on: torch.device) -> None:
    """Waits for the GPU's queued kernels (a step's time on a GPU is its kernels', not their launch's)."""
    if on.type == "cuda":
        torch.cuda.synchronize(on)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages under ``tensors`` (tensors, or dicts and lists of them, nested)."""
    storages = {}

    def visit(x):
        if isinstance(x, torch.Tensor):
            storages[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        elif isinstance(x, dict):
            for v in x.values():
                visit(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                visit(v)

    visit(tensors)
    return sum(storages.values())


def peak_allocated_bytes(step) -> int:
    """The most bytes that PyTorch's CPU allocator held at once during ``step()`` in allocations made during
    it: its ``[memory]`` events (torch.profiler, ``profile_memory=True``), summed in time order. Tensors that
    existed before the call are not counted (add them: ``tensor_bytes``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    held = peak = 0
    for e in events:  # nbytes < 0: a free
        held += e.nbytes()
        peak = max(peak, held)
    return peak


def peak_cuda_allocated_bytes(step, on: torch.device) -> int:
    """``peak_allocated_bytes`` on a GPU: the CUDA caching allocator's peak of allocated bytes during
    ``step()`` less what was allocated before it (``torch.cuda.max_memory_allocated``)."""
    synchronize(on)
    torch.cuda.reset_peak_memory_stats(on)
    before = torch.cuda.memory_allocated(on)
    step()
    synchronize(on)
    return torch.cuda.max_memory_allocated(on) - before


# --- Porting our parameters --------------------------------------------------------------------------


def _t(x):
    return torch.from_numpy(np.array(x, np.float32))


def _load_linear(linear: nn.Linear, p):
    linear.weight.copy_(_t(p["kernel"]).T)  # Flax kernel [in, out] -> torch weight [out, in]
    if linear.bias is not None:
        linear.bias.copy_(_t(p["bias"]))


def _recurrent_tensors(cell: str, p):
    """Flax cell params -> (weight_ih, weight_hh, bias_ih, bias_hh) in PyTorch's gate order."""
    if cell == "lstm":  # gates i, f, g, o; input kernels have no bias, hidden ones do
        w_ih = torch.cat([_t(p[f"i{g}"]["kernel"]).T for g in "ifgo"])
        w_hh = torch.cat([_t(p[f"h{g}"]["kernel"]).T for g in "ifgo"])
        b_hh = torch.cat([_t(p[f"h{g}"]["bias"]) for g in "ifgo"])
        return w_ih, w_hh, torch.zeros_like(b_hh), b_hh
    # GRU gates r, z, n: input kernels with bias; hidden r, z without, hidden n with (inside r * (...)).
    w_ih = torch.cat([_t(p[f"i{g}"]["kernel"]).T for g in "rzn"])
    w_hh = torch.cat([_t(p[f"h{g}"]["kernel"]).T for g in "rzn"])
    b_ih = torch.cat([_t(p[f"i{g}"]["bias"]) for g in "rzn"])
    hidden = p["hn"]["bias"].shape[0]
    b_hh = torch.cat([torch.zeros(2 * hidden), _t(p["hn"]["bias"])])
    return w_ih, w_hh, b_ih, b_hh


@torch.no_grad()
def load_flax_params(model: TorchSeq2Seq, params) -> None:
    """Copies ``Seq2Seq`` parameters (1 layer, unidirectional, additive attention) into ``model``."""
    model.src_embed.weight.copy_(_t(params["encoder"]["embed"]["embedding"]))
    model.tgt_embed.weight.copy_(_t(params["target_embed"]["embedding"]))
    targets = [(model.encoder, "_l0", params["encoder"]["rnn"]["l0_fwd"])]
    if model.decoder == "attention":
        targets.append((model.decoder_cell, "", params["decoder"]["l0"]))
        for i, bridge in enumerate(model.bridge):
            _load_linear(bridge, params["bridge_l0"][f"W_s{i}"])
        attention = params["decoder"]["attention"]
        _load_linear(model.key, attention["U"])
        _load_linear(model.query, attention["W"])
        _load_linear(model.score, attention["v"])
        _load_linear(model.combine, params["decoder"]["W_o"])
    else:
        targets.append((model.decoder_rnn, "_l0", params["decoder"]["l0"]))
    for module, suffix, p in targets:
        for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), _recurrent_tensors(model.cell, p)):
            getattr(module, name + suffix).copy_(value)
    _load_linear(model.output, params["output_projection"])
