#!/usr/bin/env python3
"""Tiny zero-weight model files that real sd-cli / sd-server / llama-server load and run.

Every dimension the programs read from the weights is made small; every dimension they hard-code
is kept. The files let `npm run test:real` drive the real programs end to end in seconds without
downloading a model. Sets written under OUT (default: ./tiny-models):

  klein/dit.safetensors          Flux 2 Klein-shaped DiT: 1 double + 1 single block, hidden 128,
                                 head_dim 128 (1 head), text context 192, no guidance embedding
  klein/qwen3.safetensors        Qwen3 text encoder (--llm): 1 layer, hidden 192, full vocabulary;
                                 fewer than 9 layers give a context as wide as the hidden size (192)
  klein/vae.safetensors          Flux 2 VAE: z 32 with quant convs; decoder ch 32, encoder ch 128
                                 (sd.cpp always builds the encoder at 128)
  klein/qwen3-wide.safetensors   a text encoder 256 wide: its context does not match the DiT's 192
  klein/vae-flux1.safetensors    a Flux 1 VAE (z 16, no quant convs): the wrong VAE for Flux 2
  sdxl/unet.safetensors          SDXL-base UNet (LDM names, model.diffusion_model. prefix), 1680 tensors
  sdxl/clip_l.safetensors        CLIP-L with Hugging Face names (text_model.*), 196 tensors
  sdxl/clip_g.safetensors        CLIP-G with Hugging Face names + text_projection, 517 tensors
  sdxl/vae.safetensors           SDXL VAE (original names), 248 tensors
  llama/tiny-llama.gguf          llama architecture, 2 layers x 64, GPT-2 style byte vocabulary

SDXL shapes are fixed by sd.cpp, so that set is full size (about 7 GB of zeros). Zero tensors are
written as holes in a sparse file: the set takes seconds to write and almost no disk. The safetensors
package reads every file back to check the header before the script exits.

Usage: python3 make-tiny-models.py [OUT] [--only klein,sdxl,llama]
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
from safetensors import safe_open

DTYPE_BYTES = {"F16": 2, "F32": 4, "BF16": 2}


def write_zero_safetensors(path, tensors):
    """Writes `tensors` ([(name, shape, dtype)]) as an all-zero safetensors file.

    The data section is left as a hole (truncate), which reads back as zeros."""
    header = {}
    offset = 0
    for name, shape, dtype in tensors:
        if name in header:
            raise ValueError(f"duplicate tensor {name}")
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)
    os.replace(tmp, path)
    with safe_open(path, framework="numpy") as f:
        keys = list(f.keys())
    if len(keys) != len(tensors):
        raise RuntimeError(f"{path}: wrote {len(tensors)} tensors, read back {len(keys)}")
    return len(tensors)


def mat(name, *shape):
    """A weight matrix or conv kernel (F16)."""
    return (name, shape, "F16")


def vec(name, n):
    """A bias or norm vector (F32)."""
    return (name, (n,), "F32")


# ---------------------------------------------------------------- Flux 2 Klein


def flux2_dit(hidden=128, context=192, double=1, single=1, head_dim=128):
    """Flux 2 DiT: shared modulation, no biases, SiLU-gated MLP (ratio 3), 128 latent channels."""
    mlp = 3 * hidden
    t = [
        mat("img_in.weight", hidden, 128),
        mat("time_in.in_layer.weight", hidden, 256),
        mat("time_in.out_layer.weight", hidden, hidden),
        mat("txt_in.weight", hidden, context),
        mat("double_stream_modulation_img.lin.weight", 6 * hidden, hidden),
        mat("double_stream_modulation_txt.lin.weight", 6 * hidden, hidden),
        mat("single_stream_modulation.lin.weight", 3 * hidden, hidden),
    ]
    for i in range(double):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}_"
            t += [
                mat(p + "attn.qkv.weight", 3 * hidden, hidden),
                vec(p + "attn.norm.query_norm.scale", head_dim),
                vec(p + "attn.norm.key_norm.scale", head_dim),
                mat(p + "attn.proj.weight", hidden, hidden),
                mat(p + "mlp.0.weight", 2 * mlp, hidden),
                mat(p + "mlp.2.weight", hidden, mlp),
            ]
    for i in range(single):
        p = f"single_blocks.{i}."
        t += [
            mat(p + "linear1.weight", 3 * hidden + 2 * mlp, hidden),
            mat(p + "linear2.weight", hidden, hidden + mlp),
            vec(p + "norm.query_norm.scale", head_dim),
            vec(p + "norm.key_norm.scale", head_dim),
        ]
    t += [
        mat("final_layer.linear.weight", 128, hidden),
        mat("final_layer.adaLN_modulation.1.weight", 2 * hidden, hidden),
    ]
    return t


def qwen3(hidden, layers=1, intermediate=None, vocab=151936):
    """Qwen3 with Hugging Face names. sd.cpp fixes head_dim 128, 32 query and 8 KV heads; the
    vocabulary must cover the special-token ids, so it keeps its real size."""
    inter = intermediate or 2 * hidden
    t = [mat("model.embed_tokens.weight", vocab, hidden)]
    for i in range(layers):
        p = f"model.layers.{i}."
        t += [
            vec(p + "input_layernorm.weight", hidden),
            mat(p + "self_attn.q_proj.weight", 4096, hidden),
            mat(p + "self_attn.k_proj.weight", 1024, hidden),
            mat(p + "self_attn.v_proj.weight", 1024, hidden),
            mat(p + "self_attn.o_proj.weight", hidden, 4096),
            vec(p + "self_attn.q_norm.weight", 128),
            vec(p + "self_attn.k_norm.weight", 128),
            vec(p + "post_attention_layernorm.weight", hidden),
            mat(p + "mlp.gate_proj.weight", inter, hidden),
            mat(p + "mlp.up_proj.weight", inter, hidden),
            mat(p + "mlp.down_proj.weight", hidden, inter),
        ]
    t.append(vec("model.norm.weight", hidden))
    return t


# ---------------------------------------------------------------- AutoencoderKL (LDM names)


def _res(p, cin, cout, names, emb=0):
    """A residual block: norm, 3x3 conv, (time embedding), norm, 3x3 conv, 1x1 shortcut when the
    width changes. `names` = (norm1, conv1, norm2, conv2, shortcut) as the family spells them."""
    n1, c1, n2, c2, sc = names
    t = [
        vec(f"{p}{n1}.weight", cin),
        vec(f"{p}{n1}.bias", cin),
        mat(f"{p}{c1}.weight", cout, cin, 3, 3),
        vec(f"{p}{c1}.bias", cout),
        vec(f"{p}{n2}.weight", cout),
        vec(f"{p}{n2}.bias", cout),
        mat(f"{p}{c2}.weight", cout, cout, 3, 3),
        vec(f"{p}{c2}.bias", cout),
    ]
    if emb:
        t += [mat(p + "emb_layers.1.weight", cout, emb), vec(p + "emb_layers.1.bias", cout)]
    if cin != cout:
        t += [mat(f"{p}{sc}.weight", cout, cin, 1, 1), vec(f"{p}{sc}.bias", cout)]
    return t


def _resnet(p, cin, cout):
    return _res(p, cin, cout, ("norm1", "conv1", "norm2", "conv2", "nin_shortcut"))


def _mid(p, c):
    t = _resnet(p + "block_1.", c, c)
    a = p + "attn_1."
    t += [vec(a + "norm.weight", c), vec(a + "norm.bias", c)]
    for k in ("q", "k", "v", "proj_out"):
        t += [mat(a + k + ".weight", c, c, 1, 1), vec(a + k + ".bias", c)]
    return t + _resnet(p + "block_2.", c, c)


def vae(z, enc_ch=128, dec_ch=128, quant_convs=True, mult=(1, 2, 4, 4)):
    t = [mat("encoder.conv_in.weight", enc_ch, 3, 3, 3), vec("encoder.conv_in.bias", enc_ch)]
    cin = enc_ch
    for i, m in enumerate(mult):
        cout = enc_ch * m
        for b in range(2):
            t += _resnet(f"encoder.down.{i}.block.{b}.", cin, cout)
            cin = cout
        if i != len(mult) - 1:
            t += [mat(f"encoder.down.{i}.downsample.conv.weight", cin, cin, 3, 3),
                  vec(f"encoder.down.{i}.downsample.conv.bias", cin)]
    t += _mid("encoder.mid.", cin)
    t += [vec("encoder.norm_out.weight", cin), vec("encoder.norm_out.bias", cin),
          mat("encoder.conv_out.weight", 2 * z, cin, 3, 3), vec("encoder.conv_out.bias", 2 * z)]
    if quant_convs:
        t += [mat("quant_conv.weight", 2 * z, 2 * z, 1, 1), vec("quant_conv.bias", 2 * z),
              mat("post_quant_conv.weight", z, z, 1, 1), vec("post_quant_conv.bias", z)]
    cin = dec_ch * mult[-1]
    t += [mat("decoder.conv_in.weight", cin, z, 3, 3), vec("decoder.conv_in.bias", cin)]
    t += _mid("decoder.mid.", cin)
    for i in reversed(range(len(mult))):
        cout = dec_ch * mult[i]
        for b in range(3):
            t += _resnet(f"decoder.up.{i}.block.{b}.", cin, cout)
            cin = cout
        if i != 0:
            t += [mat(f"decoder.up.{i}.upsample.conv.weight", cin, cin, 3, 3),
                  vec(f"decoder.up.{i}.upsample.conv.bias", cin)]
    t += [vec("decoder.norm_out.weight", cin), vec("decoder.norm_out.bias", cin),
          mat("decoder.conv_out.weight", 3, cin, 3, 3), vec("decoder.conv_out.bias", 3)]
    return t


# ---------------------------------------------------------------- SDXL


def _res_block(p, cin, cout, emb=1280):
    return _res(p, cin, cout, ("in_layers.0", "in_layers.2", "out_layers.0", "out_layers.3", "skip_connection"), emb)


def _spatial_transformer(p, c, depth, context=2048):
    t = [vec(p + "norm.weight", c), vec(p + "norm.bias", c),
         mat(p + "proj_in.weight", c, c), vec(p + "proj_in.bias", c)]
    for i in range(depth):
        b = f"{p}transformer_blocks.{i}."
        for a, kv in (("attn1", c), ("attn2", context)):
            t += [mat(f"{b}{a}.to_q.weight", c, c), mat(f"{b}{a}.to_k.weight", c, kv),
                  mat(f"{b}{a}.to_v.weight", c, kv), mat(f"{b}{a}.to_out.0.weight", c, c),
                  vec(f"{b}{a}.to_out.0.bias", c)]
        t += [mat(b + "ff.net.0.proj.weight", 8 * c, c), vec(b + "ff.net.0.proj.bias", 8 * c),
              mat(b + "ff.net.2.weight", c, 4 * c), vec(b + "ff.net.2.bias", c)]
        for n in ("norm1", "norm2", "norm3"):
            t += [vec(f"{b}{n}.weight", c), vec(f"{b}{n}.bias", c)]
    return t + [mat(p + "proj_out.weight", c, c), vec(p + "proj_out.bias", c)]


def sdxl_unet(prefix="model.diffusion_model."):
    t = [mat("time_embed.0.weight", 1280, 320), vec("time_embed.0.bias", 1280),
         mat("time_embed.2.weight", 1280, 1280), vec("time_embed.2.bias", 1280),
         mat("label_emb.0.0.weight", 1280, 2816), vec("label_emb.0.0.bias", 1280),
         mat("label_emb.0.2.weight", 1280, 1280), vec("label_emb.0.2.bias", 1280),
         mat("input_blocks.0.0.weight", 320, 4, 3, 3), vec("input_blocks.0.0.bias", 320)]
    # (in, out, transformer depth) per input block; None = downsample
    inputs = [(320, 320, 0), (320, 320, 0), None, (320, 640, 2), (640, 640, 2), None,
              (640, 1280, 10), (1280, 1280, 10)]
    skips = [320]
    c = 320
    for n, spec in enumerate(inputs, start=1):
        p = f"input_blocks.{n}."
        if spec is None:
            t += [mat(p + "0.op.weight", c, c, 3, 3), vec(p + "0.op.bias", c)]
        else:
            cin, c, depth = spec
            t += _res_block(p + "0.", cin, c)
            if depth:
                t += _spatial_transformer(p + "1.", c, depth)
        skips.append(c)
    t += _res_block("middle_block.0.", 1280, 1280)
    t += _spatial_transformer("middle_block.1.", 1280, 10)
    t += _res_block("middle_block.2.", 1280, 1280)
    outputs = [(1280, 10)] * 3 + [(640, 2)] * 3 + [(320, 0)] * 3
    for n, (cout, depth) in enumerate(outputs):
        p = f"output_blocks.{n}."
        t += _res_block(p + "0.", c + skips.pop(), cout)
        c = cout
        if depth:
            t += _spatial_transformer(p + "1.", c, depth)
        if n in (2, 5):
            up = p + ("2." if depth else "1.") + "conv."
            t += [mat(up + "weight", c, c, 3, 3), vec(up + "bias", c)]
    t += [vec("out.0.weight", 320), vec("out.0.bias", 320),
          mat("out.2.weight", 4, 320, 3, 3), vec("out.2.bias", 4)]
    return [(prefix + n, s, d) for n, s, d in t]


def clip_text(hidden, layers, mlp, projection=False):
    """CLIP text model with Hugging Face names (text_model.*)."""
    p = "text_model."
    t = [mat(p + "embeddings.token_embedding.weight", 49408, hidden),
         mat(p + "embeddings.position_embedding.weight", 77, hidden)]
    for i in range(layers):
        b = f"{p}encoder.layers.{i}."
        for k in ("q", "k", "v", "out"):
            t += [mat(f"{b}self_attn.{k}_proj.weight", hidden, hidden), vec(f"{b}self_attn.{k}_proj.bias", hidden)]
        t += [vec(b + "layer_norm1.weight", hidden), vec(b + "layer_norm1.bias", hidden),
              mat(b + "mlp.fc1.weight", mlp, hidden), vec(b + "mlp.fc1.bias", mlp),
              mat(b + "mlp.fc2.weight", hidden, mlp), vec(b + "mlp.fc2.bias", hidden),
              vec(b + "layer_norm2.weight", hidden), vec(b + "layer_norm2.bias", hidden)]
    t += [vec(p + "final_layer_norm.weight", hidden), vec(p + "final_layer_norm.bias", hidden)]
    if projection:
        t.append(mat("text_projection.weight", hidden, hidden))
    return t


# ---------------------------------------------------------------- llama GGUF


def _byte_unicode():
    """GPT-2's printable spelling of the 256 byte values."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiny_llama(path, embd=64, layers=2, heads=4, ff=128, ctx=256, seed=7):
    """A llama GGUF whose samples are always printable ASCII: column 0 of the embedding is a
    constant that survives the norms, and the output rows of every other token push it down."""
    import gguf

    b2u = _byte_unicode()
    tokens = [b2u[b] for b in range(256)]
    merges = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "e r", "o n", "a t"]
    tokens += [m.replace(" ", "") for m in merges]
    control = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [gguf.TokenType.NORMAL] * len(tokens) + [gguf.TokenType.CONTROL] * len(control)
    eos = len(tokens)
    tokens += control
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny-llama-test")
    w.add_context_length(ctx)
    w.add_embedding_length(embd)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(embd // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(eos)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(False)
    w.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )

    rng = np.random.default_rng(seed)

    def noise(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    emb = noise(n_vocab, embd)
    emb[:, 0] = 1.0
    out = noise(n_vocab, embd)
    allowed = set(range(ord("a"), ord("z") + 1)) | set(range(ord("A"), ord("Z") + 1)) | {ord(" "), ord("."), ord(",")}
    for i in range(n_vocab):
        if not (i in allowed or 256 <= i < 256 + len(merges)):
            out[i, 0] = -5.0
    w.add_tensor("token_embd.weight", emb)
    w.add_tensor("output_norm.weight", np.ones(embd, np.float32))
    w.add_tensor("output.weight", out)
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(embd, np.float32))
        for k in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + k + ".weight", noise(embd, embd))
        w.add_tensor(p + "ffn_norm.weight", np.ones(embd, np.float32))
        w.add_tensor(p + "ffn_gate.weight", noise(ff, embd))
        w.add_tensor(p + "ffn_up.weight", noise(ff, embd))
        w.add_tensor(p + "ffn_down.weight", noise(embd, ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------- main

SETS = {
    "klein": lambda d: {
        "dit.safetensors": flux2_dit(),
        "qwen3.safetensors": qwen3(hidden=192),
        "vae.safetensors": vae(z=32, enc_ch=128, dec_ch=32),
        "qwen3-wide.safetensors": qwen3(hidden=256),
        "vae-flux1.safetensors": vae(z=16, quant_convs=False),
    },
    "sdxl": lambda d: {
        "unet.safetensors": sdxl_unet(),
        "clip_l.safetensors": clip_text(768, 12, 3072),
        "clip_g.safetensors": clip_text(1280, 32, 5120, projection=True),
        "vae.safetensors": vae(z=4),
    },
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="tiny-models")
    ap.add_argument("--only", default="klein,sdxl,llama")
    args = ap.parse_args()
    for name in args.only.split(","):
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        if name == "llama":
            p = os.path.join(d, "tiny-llama.gguf")
            tiny_llama(p + ".tmp")
            os.replace(p + ".tmp", p)
            print(f"{p}: {os.path.getsize(p)} bytes")
            continue
        if name not in SETS:
            sys.exit(f"unknown set {name}")
        for fname, tensors in SETS[name](d).items():
            p = os.path.join(d, fname)
            n = write_zero_safetensors(p, tensors)
            print(f"{p}: {n} tensors, {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main()
