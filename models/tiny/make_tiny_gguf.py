#!/usr/bin/env python3
"""Writes a tiny random-weight llama GGUF for fast tests: real loading code, tiny data.

A 2-layer, 64-dim llama (4 attention heads, 2 KV heads, feed-forward 128, 2048-token context),
with the tokenizer of the bundled model copied in (every `tokenizer.*` key of the source GGUF:
the GPT-2 vocabulary and merges, the special token ids and the chat template), so prompts
tokenize and chat templates apply as with the real model. Output embeddings are tied to the
token embeddings, as in SmolLM2. Matrices are F16, norms F32 (about 8 MB, mostly the embeddings
of the 49,152-token vocabulary). The model generates gibberish words.

The weights come from numpy's legacy RandomState with a fixed seed (a stream numpy keeps stable
across versions), and nothing in the file depends on the time or the host: the same source and
the same `gguf` package give the same bytes.

Usage: make_tiny_gguf.py --source SmolLM2-135M-Instruct.Q4_1.gguf --output tiny.gguf
Needs the PyPI package `gguf` (0.19.0; `cargo xtask` runs this with the tests' venv, pyenv.rs).
"""

import argparse
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType

SEED = 20261127
N_LAYER = 2
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_CTX = 2048
HEAD_DIM = N_EMBD // N_HEAD
WEIGHT_STD = 0.5


def copy_tokenizer(reader: GGUFReader, writer: GGUFWriter) -> int:
    """Copies every `tokenizer.*` key; returns the vocabulary size."""
    vocab = None
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        main_type = field.types[0]
        if main_type == GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), main_type, sub_type=field.types[-1])
            if key == "tokenizer.ggml.tokens":
                vocab = len(field.data)
        else:
            writer.add_key_value(key, field.contents(), main_type)
    if vocab is None:
        sys.exit("the source GGUF has no tokenizer.ggml.tokens: not a model with a tokenizer")
    return vocab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the GGUF whose tokenizer to copy")
    parser.add_argument("--output", required=True, help="where to write the tiny GGUF")
    args = parser.parse_args()

    reader = GGUFReader(args.source)
    writer = GGUFWriter(args.output, arch="llama")
    writer.add_name("noa tiny random llama (tests only)")
    writer.add_description("random weights with the tokenizer of " + args.source.rsplit("/", 1)[-1])
    writer.add_license("apache-2.0")
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    vocab = copy_tokenizer(reader, writer)
    writer.add_vocab_size(vocab)

    rng = np.random.RandomState(SEED)

    def matrix(rows: int, cols: int) -> np.ndarray:
        # numpy (rows, cols) is GGML's ne = [cols, rows]: `cols` is the input dimension.
        # A wide spread (not a trained model's ~0.02): greedy decoding then wanders over the
        # vocabulary ("Wolfe apple bisWalkgov …") instead of repeating one token, often "\n",
        # which a test could mistake for no output.
        return (rng.standard_normal((rows, cols)) * WEIGHT_STD).astype(np.float16)

    def norm() -> np.ndarray:
        return np.ones(N_EMBD, dtype=np.float32)

    writer.add_tensor("token_embd.weight", matrix(vocab, N_EMBD))
    for layer in range(N_LAYER):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", norm())
        writer.add_tensor(f"{block}.attn_q.weight", matrix(N_HEAD * HEAD_DIM, N_EMBD))
        writer.add_tensor(f"{block}.attn_k.weight", matrix(N_HEAD_KV * HEAD_DIM, N_EMBD))
        writer.add_tensor(f"{block}.attn_v.weight", matrix(N_HEAD_KV * HEAD_DIM, N_EMBD))
        writer.add_tensor(f"{block}.attn_output.weight", matrix(N_EMBD, N_HEAD * HEAD_DIM))
        writer.add_tensor(f"{block}.ffn_norm.weight", norm())
        writer.add_tensor(f"{block}.ffn_gate.weight", matrix(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_up.weight", matrix(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_down.weight", matrix(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", norm())

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
