"""The ``config.model`` section: every field of ``seq2seq_jax.model.ModelConfig``."""

import ml_collections


def get_model_config() -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    # Recurrent cell of encoder and decoder: 'rnn' (vanilla tanh) | 'gru' | 'lstm'.
    m.cell = "lstm"
    # Size of source and target token embeddings.
    m.embedding_size = 64
    # Hidden size of every recurrent layer (each direction when bidirectional) and of the decoder.
    m.hidden_size = 128
    # Number of stacked recurrent layers in the encoder and in the decoder.
    m.num_layers = 1
    # Encoder reads the source in both directions; annotations are [forward; backward] (Bahdanau 3.2).
    m.bidirectional = False
    # Encoder reads the source reversed (Sutskever et al. 2014, sec. 3.3).
    m.reverse_source = False
    # 'bottleneck' (Sutskever: fixed vector) | 'attention' (Bahdanau: context at every step).
    m.decoder = "attention"
    # Attention score, used by the attention decoder: 'additive' (Bahdanau) | 'dot' | 'general' (Luong).
    m.attention = "additive"
    # Output size of additive attention's W and U (Bahdanau's n').
    m.attention_size = 128
    # Feed the previous attentional vector o_{i-1} with the next input (Luong et al. 2015, sec. 3.3).
    m.input_feeding = False
    # Bottleneck decoder also reads the encoder's final vector at every step (Cho et al. 2014).
    m.feed_encoder_vector = False
    # Dropout rate on embeddings, between layers and before the output layer (0 = off).
    m.dropout = 0.0
    # Weight initialisation: 'uniform' (U(-s, s), Sutskever) | 'orthogonal' (orthogonal recurrent).
    m.init = "orthogonal"
    # The s of init='uniform'.
    m.init_scale = 0.08
    # Constant added to the LSTM forget gate's pre-activation (1.0: Jozefowicz et al. 2015).
    m.forget_bias = 0.0
    # Compute dtype: 'float32' | 'bfloat16' (parameters stay float32).
    m.dtype = "float32"
    # The encoder's recurrence: 'scan' (jax.lax.scan, every backend) | 'cudnn' (LSTM only, CUDA GPUs, float32:
    # jax.experimental.rnn's cuDNN kernel on the same parameters; not yet verified on a GPU).
    m.recurrent_impl = "scan"
    return m
