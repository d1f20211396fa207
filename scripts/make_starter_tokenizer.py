#!/usr/bin/env python3
"""Generates configs/starter-tiny/tokenizer/: a small CLIP-format BPE tokenizer (vocab.json,
merges.txt, special_tokens_map.json, tokenizer_config.json) for the random-weight starter model.

The vocabulary is CLIP's byte-level alphabet (the 256 symbols of bytes_to_unicode, each also with
the end-of-word marker "</w>"), then the results of the merges (at most 256, each seen at least
twice) learned here by plain BPE on a short built-in English text, then <|startoftext|> and
<|endoftext|>: the same layout as openai/clip-vit-large-patch14's tokenizer, only much smaller.
Every text encodes (unknown words fall back to bytes). Standard library only; the output is
deterministic.

Usage: python3 scripts/make_starter_tokenizer.py [OUT_DIR]
       (default: configs/starter-tiny/tokenizer)
"""
import collections
import json
import os
import re
import sys

NUM_MERGES = 256

# Product-photo prompts and plain English: the words the starter model is most likely to see.
CORPUS = """
a red ceramic mug on a wooden table, studio lighting. a photo of a product on a white background.
a close up photograph of a leather bag with soft shadows. the bottle stands on a marble counter in
the morning light. a pair of running shoes on a concrete floor, high contrast, sharp focus.
a glass of orange juice next to fresh fruit on the kitchen table. the watch is shown from the side
with a dark background and warm light. a blue cotton shirt folded on a bed. a minimal scene with a
plant, a lamp and a book. the camera is placed at eye level and the colors are natural and bright.
a cup of coffee, a notebook and a pen on a desk by the window. the product is centered in the frame.
an advertisement for a new phone, clean and modern, professional photography, soft studio light.
"""


def bytes_to_unicode():
  """CLIP's (and GPT-2's) reversible map from the 256 byte values to printable characters."""
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


def words(text):
  """Lower-cased words as CLIP's pre-tokenizer sees them, mapped to byte-level symbols."""
  b2u = bytes_to_unicode()
  for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text.lower()):
    yield "".join(b2u[b] for b in w.encode("utf-8"))


def learn_merges(text, count):
  """Plain BPE: repeatedly merge the most frequent adjacent pair (ties: first in sorted order)."""
  freq = collections.Counter(words(text))
  vocab = {}
  for w, n in freq.items():
    symbols = list(w[:-1]) + [w[-1] + "</w>"]
    vocab[tuple(symbols)] = n
  merges = []
  for _ in range(count):
    pairs = collections.Counter()
    for symbols, n in vocab.items():
      for a, b in zip(symbols, symbols[1:]):
        pairs[(a, b)] += n
    if not pairs:
      break
    best = max(sorted(pairs), key=lambda p: pairs[p])
    if pairs[best] < 2:
      break
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
  out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "configs", "starter-tiny",
                                                           "tokenizer")
  os.makedirs(out, exist_ok=True)
  alphabet = list(bytes_to_unicode().values())
  tokens = alphabet + [s + "</w>" for s in alphabet]
  merges = learn_merges(CORPUS, NUM_MERGES)
  for a, b in merges:
    if a + b not in tokens:
      tokens.append(a + b)
  tokens += ["<|startoftext|>", "<|endoftext|>"]
  vocab = {t: i for i, t in enumerate(tokens)}

  with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
    json.dump(vocab, f, ensure_ascii=False)
  with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n")
    for a, b in merges:
      f.write(a + " " + b + "\n")
  special = {
      "bos_token": "<|startoftext|>",
      "eos_token": "<|endoftext|>",
      "pad_token": "<|endoftext|>",
      "unk_token": "<|endoftext|>",
  }
  with open(os.path.join(out, "special_tokens_map.json"), "w", encoding="utf-8") as f:
    json.dump(special, f, indent=2)
    f.write("\n")
  config = dict(special)
  config.update({
      "add_prefix_space": False,
      "clean_up_tokenization_spaces": True,
      "do_lower_case": True,
      "errors": "replace",
      "model_max_length": 77,
      "tokenizer_class": "CLIPTokenizer",
  })
  with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
  print("%s: %d tokens (%d merges), bos %d, eos %d" %
        (out, len(vocab), len(merges), vocab["<|startoftext|>"], vocab["<|endoftext|>"]))


if __name__ == "__main__":
  main()
