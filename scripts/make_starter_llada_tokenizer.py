#!/usr/bin/env python3
"""Generates configs/llada-starter-tiny/tokenizer.json and tokenizer_config.json: a small
byte-level BPE tokenizer in Hugging Face format with LLaDA-8B-Instruct's control tokens, for the
random-weight starter text model (vocabulary 512, the size of its embedding table).

Ids 0-255 are GPT-2's byte-level alphabet, then the merges learned here by plain BPE on a short
built-in text (GPT-2-style pre-tokenisation), then the control tokens at the top of the table:
<|startoftext|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|>, <|endoftext|> (EOS and pad,
id 510) and <|mdm_mask|> (the mask, id 511) -- the ids configs/llada-starter-tiny/config.json
declares. tokenizer_config.json carries LLaDA-8B-Instruct's chat template. Standard library only;
the output is deterministic.

Usage: python3 scripts/make_starter_llada_tokenizer.py [OUT_DIR]
       (default: configs/llada-starter-tiny)
"""
import collections
import json
import os
import re
import sys

VOCAB_SIZE = 512
SPECIAL = ["<|startoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
           "<|endoftext|>", "<|mdm_mask|>"]

# Marketing copy and product facts: the text the starter model is most likely to see.
CORPUS = """
Meet the mug that keeps your coffee hot all morning. Stoneware, 350 ml, dishwasher safe.
Our new bottle is made from recycled steel and keeps drinks cold for 24 hours. Free shipping.
The canvas tote bag carries everything you need for the market, the beach and the office.
Write an Instagram caption for this product. Write a short product description for the web.
Tone: warm, playful, confident. Language: en. Rules: at most 280 characters, no emoji.
A handmade ceramic cup with a matte glaze in sea blue. Perfect for slow Sunday mornings.
Limited edition colours, available now in our online store. Shop the collection today.
Light, strong and easy to clean. Designed in Berlin, made to last. #coffee #design #home
Rewrite the caption so that it follows the rules. Product: Facts: Brand: Audience: Notes:
"""

# GPT-2's pre-tokenizer pattern restricted to what Python's re supports (ASCII letters and
# digits); only used to learn merges from the ASCII corpus above.
PRETOKEN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
  """GPT-2's reversible map from the 256 byte values to printable characters."""
  bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) +
        list(range(ord("\u00ae"), ord("\u00ff") + 1)))
  cs = bs[:]
  n = 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return dict(zip(bs, [chr(c) for c in cs]))


def learn_merges(text, count):
  """Plain BPE over pre-tokens: merge the most frequent adjacent pair (ties: first sorted),
  also pairs seen once, until `count` merges fill the table."""
  b2u = bytes_to_unicode()
  freq = collections.Counter("".join(b2u[b] for b in w.encode("utf-8"))
                             for w in PRETOKEN.findall(text))
  vocab = {tuple(w): n for w, n in freq.items()}
  merges = []
  while len(merges) < count:
    pairs = collections.Counter()
    for symbols, n in vocab.items():
      for a, b in zip(symbols, symbols[1:]):
        pairs[(a, b)] += n
    if not pairs:
      break
    best = max(sorted(pairs), key=lambda p: pairs[p])
    merges.append(best)
    merged = {}
    for symbols, n in vocab.items():
      out, i = [], 0
      while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
          out.append(symbols[i] + symbols[i + 1])
          i += 2
        else:
          out.append(symbols[i])
          i += 1
      merged[tuple(out)] = merged.get(tuple(out), 0) + n
    vocab = merged
  return merges


def main():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "configs", "llada-starter-tiny")
  os.makedirs(out, exist_ok=True)
  tokens = list(bytes_to_unicode().values())
  merges = learn_merges(CORPUS, VOCAB_SIZE - len(SPECIAL) - len(tokens))
  for a, b in merges:
    tokens.append(a + b)
  vocab = {t: i for i, t in enumerate(tokens)}
  assert len(vocab) == len(tokens), "a merge result repeats"
  first_special = VOCAB_SIZE - len(SPECIAL)
  assert len(tokens) <= first_special
  added = [{"id": first_special + i, "content": s, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": True} for i, s in enumerate(SPECIAL)]
  byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                "use_regex": True}
  tokenizer = {
      "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
      "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None,
      "decoder": byte_level,
      "model": {"type": "BPE", "dropout": None, "unk_token": None,
                "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                "merges": [a + " " + b for a, b in merges]},
  }
  with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tokenizer, f, ensure_ascii=False, indent=1)
    f.write("\n")
  # LLaDA-8B-Instruct's template (tokenizer_config.json of GSAI-ML/LLaDA-8B-Instruct).
  chat_template = (
      "{% set loop_messages = messages %}{% for message in loop_messages %}"
      "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
      "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
      "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
      "{% endif %}")
  config = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>", "mask_token": "<|mdm_mask|>",
            "chat_template": chat_template, "model_max_length": 4096,
            "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
  with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
  print("%s: %d tokens (%d merges), specials %d-%d" %
        (out, VOCAB_SIZE, len(merges), first_special, VOCAB_SIZE - 1))


if __name__ == "__main__":
  main()
