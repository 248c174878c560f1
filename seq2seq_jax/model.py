"""The encoder-decoder: Sutskever et al. (2014)'s fixed-vector bottleneck and Bahdanau et al. (2014)'s
attention decoder, with every option read from ``config.model``.

Shapes: ``[batch, src_len]`` source tokens, ``[batch, tgt_len]`` target tokens, batch-major throughout.

* ``Encoder``: embeddings -> ``StackedRNN`` (cell by name, optionally bidirectional, optionally reading
  the source reversed, Sutskever sec. 3.3) -> annotations ``h_j`` and every layer's final carry.
* ``decoder='bottleneck'``: the decoder's initial state is the encoder's final state (one fixed vector);
  nothing else of the source reaches it, except, with ``feed_encoder_vector``, that same final vector fed
  with every input (Cho et al. 2014, eq. 8's ``c``).
* ``decoder='attention'``: ``s_0 = tanh(W_s h_1^<-)`` (Bahdanau A.2.2), then at step i the context
  ``c_i`` from ``s_{i-1}`` (``attention.py``) is fed with the input: ``s_i = f(s_{i-1}, [E y_{i-1}; c_i])``
  (eq. 4); the output is ``o_i = tanh(W_o [s_i; c_i])`` (Luong et al. 2015, eq. 5), and with
  ``input_feeding`` ``o_{i-1}`` is fed too (Luong sec. 3.3).
* Output: ``logits = W_y o_i`` over the target vocabulary (``o_i = s_i`` for the bottleneck).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn
from flax import struct

from seq2seq_jax import attention as attention_lib
from seq2seq_jax import cells
from seq2seq_jax.data.vocab import BOS
from seq2seq_jax import recurrent
from seq2seq_jax.recurrent import StackedRNN, reverse_sequences, time_mask

DECODERS = ("bottleneck", "attention")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Every model option and its default (``config.model``, ``configs/model.py``, is made from these); build
    it with ``ModelConfig.from_config`` so it is validated first."""

    source_vocab_size: int
    target_vocab_size: int
    # Recurrent cell of encoder and decoder: 'rnn' (vanilla tanh) | 'gru' | 'lstm'.
    cell: str = "lstm"
    # Size of source and target token embeddings.
    embedding_size: int = 64
    # Hidden size of every recurrent layer (each direction when bidirectional) and of the decoder.
    hidden_size: int = 128
    # Number of stacked recurrent layers in the encoder and in the decoder.
    num_layers: int = 1
    # Encoder reads the source in both directions; annotations are [forward; backward] (Bahdanau 3.2).
    bidirectional: bool = False
    # Encoder reads the source reversed (Sutskever et al. 2014, sec. 3.3).
    reverse_source: bool = False
    # 'bottleneck' (Sutskever: fixed vector) | 'attention' (Bahdanau: context at every step).
    decoder: str = "attention"
    # Attention score, used by the attention decoder: 'additive' (Bahdanau) | 'dot' | 'general' (Luong).
    attention: str = "additive"
    # Output size of additive attention's W and U (Bahdanau's n').
    attention_size: int = 128
    # Feed the previous attentional vector o_{i-1} with the next input (Luong et al. 2015, sec. 3.3).
    input_feeding: bool = False
    # Bottleneck decoder also reads the encoder's final vector at every step (Cho et al. 2014).
    feed_encoder_vector: bool = False
    # Dropout rate on embeddings, between layers and before the output layer (0 = off).
    dropout: float = 0.0
    # Weight initialisation: 'uniform' (U(-s, s), Sutskever) | 'orthogonal' (orthogonal recurrent).
    init: str = "orthogonal"
    # The s of init='uniform'.
    init_scale: float = 0.08
    # Constant added to the LSTM forget gate's pre-activation (1.0: Jozefowicz et al. 2015).
    forget_bias: float = 0.0
    # Compute dtype: 'float32' | 'bfloat16' (parameters stay float32).
    dtype: str = "float32"
    # The encoder's recurrence: 'scan' (jax.lax.scan, every backend) | 'fused_backward' (the same scan, its
    # backward pass written out: each weight gradient one matmul after the reverse scan; see recurrent.py) |
    # 'cudnn' (LSTM only, CUDA GPUs, float32: jax.experimental.rnn's cuDNN kernel on the same parameters; not
    # yet verified on a GPU).
    recurrent_impl: str = "scan"
    # Recompute each encoder and decoder step's activations in the backward pass instead of storing them for
    # every step (jax.checkpoint on the scan bodies): less memory for long sentences, more compute; the same
    # loss and gradients. Only the carries are stored (the cuDNN encoder keeps its own scheme).
    remat: bool = False

    @classmethod
    def from_config(cls, model_config, *, source_vocab_size: int, target_vocab_size: int) -> "ModelConfig":
        """Validates ``config.model`` (a ConfigDict or mapping) and returns a frozen ``ModelConfig``."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"source_vocab_size", "target_vocab_size"}
        values = dict(model_config)
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"config.model has unknown field(s) {unknown}; allowed: {sorted(fields)}")
        config = cls(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size, **values)
        config.validate()
        return config

    @property
    def annotation_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def validate(self) -> None:
        """Raises one ``ValueError`` naming the first bad field and what it allows."""

        def choice(field, allowed):
            if getattr(self, field) not in allowed:
                raise ValueError(
                    f"model.{field}={getattr(self, field)!r} is not allowed; allowed: {list(allowed)}"
                )

        choice("cell", sorted(cells.CELLS))
        choice("decoder", DECODERS)
        choice("attention", attention_lib.SCORES)
        choice("init", cells.INIT_SCHEMES)
        choice("dtype", sorted(DTYPES))
        recurrent.check_impl(self.recurrent_impl, self.cell)
        for field in ("source_vocab_size", "target_vocab_size", "embedding_size", "hidden_size",
                      "num_layers", "attention_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"model.{field}={value!r} must be a positive integer")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout={self.dropout!r} must be in [0, 1)")
        if self.init_scale <= 0:
            raise ValueError(f"model.init_scale={self.init_scale!r} must be positive")
        if self.decoder == "bottleneck" and self.input_feeding:
            raise ValueError(
                "model.input_feeding=True needs model.decoder='attention' (it feeds the attentional "
                "vector); the bottleneck decoder has none"
            )
        if self.decoder == "attention" and self.feed_encoder_vector:
            raise ValueError(
                "model.feed_encoder_vector=True needs model.decoder='bottleneck' (Cho et al. 2014); the "
                "attention decoder already reads every annotation"
            )
        if self.decoder == "attention" and self.attention == "dot" and self.annotation_size != self.hidden_size:
            raise ValueError(
                f"model.attention='dot' needs annotations (size {self.annotation_size}, bidirectional="
                f"{self.bidirectional}) of the decoder's size (model.hidden_size={self.hidden_size}); "
                "use model.attention='general' or model.bidirectional=False"
            )


@struct.dataclass
class EncoderOutput:
    """``annotations [batch, src_len, annotation]`` in source order, ``mask [batch, src_len]``,
    ``finals``: per layer the final carry (a ``(forward, backward)`` pair when bidirectional)."""

    annotations: jax.Array
    mask: jax.Array
    finals: Any


@struct.dataclass
class Memory:
    """What every decoder step reads of the source, computed once a sentence (None where unused)."""

    keys: Any  # [batch, src_len, key]: attention keys, precomputed outside the scan
    values: Any  # [batch, src_len, annotation]: the annotations h_j
    mask: jax.Array  # [batch, src_len]
    encoder_vector: Any  # [batch, hidden]: fed at every step (bottleneck + feed_encoder_vector)


@struct.dataclass
class DecoderState:
    carries: Any  # per decoder layer, the cell's carry
    feed: Any  # [batch, hidden]: o_{i-1} with input feeding, else None


def _kernel_init(config: ModelConfig):
    return cells.initializers(config.init, config.init_scale)["kernel_init"]


class Encoder(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, inputs, lengths, *, train: bool = False) -> EncoderOutput:
        """``inputs [batch, src_len]`` int, ``lengths [batch]`` -> ``EncoderOutput``."""
        c = self.config
        if c.recurrent_impl == "cudnn" and jax.default_backend() != "gpu":
            raise ValueError(f"model.recurrent_impl='cudnn' needs a CUDA GPU (jax.experimental.rnn has no "
                             f"{jax.default_backend()} kernel): set model.recurrent_impl='scan', which reads the same "
                             "parameters, so a run trained with either decodes with the other")
        if c.reverse_source:
            inputs = reverse_sequences(inputs, lengths)  # Sutskever sec. 3.3: read the source backwards
        x = nn.Embed(c.source_vocab_size, c.embedding_size, embedding_init=_kernel_init(c),
                     dtype=DTYPES[c.dtype], name="embed")(inputs)  # [batch, src_len, embedding]
        x = nn.Dropout(c.dropout, deterministic=not train)(x)
        annotations, finals = StackedRNN(
            cell=c.cell, hidden_size=c.hidden_size, num_layers=c.num_layers,
            bidirectional=c.bidirectional, dropout_rate=c.dropout, init_scheme=c.init,
            init_scale=c.init_scale, forget_bias=c.forget_bias, dtype=DTYPES[c.dtype], impl=c.recurrent_impl,
            remat=c.remat, name="rnn",
        )(x, lengths, train=train)
        if c.reverse_source:
            annotations = reverse_sequences(annotations, lengths)  # back to source order for attention
        return EncoderOutput(annotations=annotations, mask=time_mask(lengths, inputs.shape[1]), finals=finals)


class DecoderCell(nn.Module):
    """One decoder time step, shared by teacher forcing (scanned) and decoding (called once a step)."""

    config: ModelConfig

    def setup(self):
        c = self.config
        self.layers = [
            cells.make_cell(c.cell, c.hidden_size, init=c.init, init_scale=c.init_scale,
                            forget_bias=c.forget_bias, dtype=DTYPES[c.dtype], name=f"l{i}")
            for i in range(c.num_layers)
        ]
        self.dropout = nn.Dropout(c.dropout)
        if c.decoder == "attention":
            # remat: the additive tanh [batch, src_len, attn] is recomputed in the backward pass, not stored
            # for every decoder step (67 MB at length 32, 1.7 GB at 160, for batch 64 and size 256).
            self.attention = attention_lib.Attention(
                kind=c.attention, attention_size=c.attention_size, query_size=c.hidden_size,
                kernel_init=_kernel_init(c), dtype=DTYPES[c.dtype], remat=True, name="attention",
            )
            self.output_layer = nn.Dense(c.hidden_size, kernel_init=_kernel_init(c),
                                         dtype=DTYPES[c.dtype], name="W_o")

    def precompute_keys(self, annotations):
        return self.attention.precompute_keys(annotations)

    def __call__(self, state: DecoderState, y_embedded, memory: Memory, train: bool = False):
        """``y_embedded [batch, embedding]`` (E y_{i-1}) -> ``(state', (o_i [batch, hidden], alpha_i [batch, src_len]))``."""
        c = self.config
        inputs = [y_embedded]
        weights = None
        if c.decoder == "attention":
            query = cells.hidden_of(state.carries[-1])  # s_{i-1}, top layer
            context, weights = self.attention(query, memory.keys, memory.values, memory.mask)
            inputs.append(context)
            if c.input_feeding:
                inputs.append(state.feed)
        elif c.feed_encoder_vector:
            inputs.append(memory.encoder_vector)
        x = jnp.concatenate(inputs, axis=-1)  # [batch, embedding + ...]
        carries = []
        for i, (layer, carry) in enumerate(zip(self.layers, state.carries)):
            if i > 0:
                x = self.dropout(x, deterministic=not train)
            new_carry, x = layer(carry, x)
            # Keep the carry's dtype (float32) when computing in bfloat16, so the scan's carry is stable.
            carries.append(jax.tree_util.tree_map(lambda new, old: new.astype(old.dtype), new_carry, carry))
        if c.decoder == "attention":
            x = jnp.tanh(self.output_layer(jnp.concatenate([x, context], axis=-1)))  # o_i, Luong eq. 5
        else:
            weights = jnp.zeros(memory.mask.shape, jnp.float32)  # no attention: [batch, src_len] zeros
        feed = x.astype(jnp.float32) if c.input_feeding else None
        return DecoderState(carries=tuple(carries), feed=feed), (x, weights)


def _decoder_scan_body(cell, state, y_embedded, memory, train):
    return cell(state, y_embedded, memory, train)


def _make_decoder_scan(remat: bool):
    """Teacher forcing's scan of ``DecoderCell`` over the target; with ``remat`` each step's activations are
    recomputed in the backward pass from its state (``train``, argument 4, stays a Python bool)."""
    body = nn.remat(_decoder_scan_body, prevent_cse=False, static_argnums=(4,)) if remat else _decoder_scan_body
    return nn.scan(
        body,
        variable_broadcast="params",
        split_rngs={"params": False, "dropout": True},
        in_axes=(1, nn.broadcast, nn.broadcast),
        out_axes=1,
    )


_DECODER_SCANS = {remat: _make_decoder_scan(remat) for remat in (False, True)}


class Seq2Seq(nn.Module):
    """Teacher-forced ``__call__`` for training, and ``encode`` / ``init_decoding`` / ``decode_step``
    for search. Attention weights ``[batch, tgt_len, src_len]`` are sown into ``'intermediates'``."""

    config: ModelConfig

    def setup(self):
        c = self.config
        self.encoder = Encoder(c, name="encoder")
        self.target_embed = nn.Embed(c.target_vocab_size, c.embedding_size, embedding_init=_kernel_init(c),
                                     dtype=DTYPES[c.dtype], name="target_embed")
        self.decoder_cell = DecoderCell(c, name="decoder")
        self.output_projection = nn.Dense(c.target_vocab_size, kernel_init=_kernel_init(c),
                                          dtype=DTYPES[c.dtype], name="output_projection")
        self.dropout = nn.Dropout(c.dropout)
        if c.decoder == "attention" or c.bidirectional:
            self.bridges = [_Bridge(c.hidden_size, _kernel_init(c), DTYPES[c.dtype], name=f"bridge_l{i}")
                            for i in range(c.num_layers)]

    def encode(self, inputs, input_lengths, train: bool = False) -> EncoderOutput:
        return self.encoder(inputs, input_lengths, train=train)

    def init_decoding(self, encoded: EncoderOutput):
        """``(Memory, DecoderState)`` for step 1: keys projected once; the initial decoder state."""
        c = self.config
        if c.decoder == "attention":
            # s_0 = tanh(W_s h_1^<-) per layer (Bahdanau A.2.2); h_S^-> when unidirectional.
            sources = [f[1] if c.bidirectional else f for f in encoded.finals]
            carries = tuple(bridge(src) for bridge, src in zip(self.bridges, sources))
            memory = Memory(keys=self.decoder_cell.precompute_keys(encoded.annotations),
                            values=encoded.annotations, mask=encoded.mask, encoder_vector=None)
        else:
            if c.bidirectional:  # one fixed vector per layer from both directions' final carries
                carries = tuple(
                    bridge(jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b], -1), *f))
                    for bridge, f in zip(self.bridges, encoded.finals)
                )
            else:  # Sutskever: the decoder starts from the encoder's final state, unchanged
                carries = tuple(encoded.finals)
            vector = cells.hidden_of(carries[-1]) if c.feed_encoder_vector else None
            memory = Memory(keys=None, values=None, mask=encoded.mask, encoder_vector=vector)
        batch = encoded.mask.shape[0]
        feed = jnp.zeros((batch, c.hidden_size), jnp.float32) if c.input_feeding else None
        return memory, DecoderState(carries=carries, feed=feed)

    def decode(self, encoded: EncoderOutput, decoder_inputs, train: bool = False):
        """Teacher forcing: ``decoder_inputs [batch, tgt_len]`` (BOS + targets[:-1]) -> logits."""
        memory, state = self.init_decoding(encoded)
        y = self.target_embed(decoder_inputs)  # [batch, tgt_len, embedding]
        y = self.dropout(y, deterministic=not train)
        _, (outputs, weights) = _DECODER_SCANS[self.config.remat](self.decoder_cell, state, y, memory, train)
        self.sow("intermediates", "attention_weights", weights)  # [batch, tgt_len, src_len]
        outputs = self.dropout(outputs, deterministic=not train)  # [batch, tgt_len, hidden]
        return self.output_projection(outputs).astype(jnp.float32)  # [batch, tgt_len, vocab]

    def __call__(self, inputs, input_lengths, decoder_inputs, train: bool = False):
        """``inputs [batch, src_len]``, ``input_lengths [batch]``, ``decoder_inputs [batch, tgt_len]``
        -> logits ``[batch, tgt_len, target_vocab]``."""
        return self.decode(self.encode(inputs, input_lengths, train), decoder_inputs, train)

    def decode_step(self, memory: Memory, state: DecoderState, tokens):
        """``tokens [batch]`` (y_{i-1}) -> ``(logits [batch, vocab], state', alpha_i [batch, src_len])``."""
        state, (output, weights) = self.decoder_cell(state, self.target_embed(tokens), memory, False)
        return self.output_projection(output).astype(jnp.float32), state, weights


class _Bridge(nn.Module):
    """``tanh(W x + b)`` applied to each leaf of a carry (one ``W`` per leaf: ``c`` and ``h`` of an LSTM)."""

    features: int
    kernel_init: Any
    dtype: Any

    @nn.compact
    def __call__(self, carry):
        leaves, treedef = jax.tree_util.tree_flatten(carry)
        out = [jnp.tanh(nn.Dense(self.features, kernel_init=self.kernel_init, dtype=self.dtype,
                                 name=f"W_s{i}")(leaf)) for i, leaf in enumerate(leaves)]
        return jax.tree_util.tree_unflatten(treedef, out)


def shift_right(targets):
    """Decoder inputs for teacher forcing: ``[BOS, y_1, ..., y_{T-1}]`` from ``targets [batch, tgt_len]``."""
    return jnp.pad(targets, ((0, 0), (1, 0)), constant_values=BOS)[:, :-1]


def create_model(config, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    """The ``Seq2Seq`` of a run's config (its ``config.model`` section, validated) for these vocabulary sizes."""
    return Seq2Seq(ModelConfig.from_config(config.model, source_vocab_size=source_vocab_size,
                                           target_vocab_size=target_vocab_size))
