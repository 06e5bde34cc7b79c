"""An upper bound of the tokens a text costs, without its model's tokenizer (what the budget reserves).

A byte-level BPE (Qwen, GPT) or a SentencePiece vocabulary with byte fallback (Gemma, ERNIE) never
spends more than one token per UTF-8 byte, and spends that on exactly the text a flat "bytes / 2"
rule undercounts: digits (split one by one), rare CJK, emoji, combining marks, private-use
characters, punctuation runs, random letters (base64, hex, identifiers). So the text is read in
pieces, each counted at what it may cost at most:

- a digit, a punctuation mark or a control character: 1;
- a run of non-ASCII characters: its UTF-8 bytes (the byte-fallback worst case; common Chinese costs
  about a fifth of that, the price of bounding rare characters and emoji);
- a lower-case or Capitalised word of up to 16 letters: 0.6 a letter, rounded up (random words of
  that shape cost 0.57 a letter on average in Qwen 2.5 and Gemma 3); any other letter run (mixed
  case, all capitals, longer): 1 a letter;
- a space before a letter: 0.5 (it joins the word after it); any other whitespace: 1 a character.

Measured against the Qwen 2.5, Gemma 3 and MiniLM tokenizers on base64, hex, long digits, code,
random ASCII, rare and common CJK, emoji (ZWJ sequences too), Thai, Hindi, Arabic, combining marks
and private-use text, the bound is at or above the real count on each
(``tests/core/record/test_token_bound.py``); ordinary English costs about 2.8 times, common Chinese
about 5 times, what it is bounded at (a reservation, settled to the real count).
"""

from __future__ import annotations

import math
import re

__all__ = ["token_bound"]

_PIECES = re.compile(r" ?[A-Za-z]+|[^\x00-\x7f]+|[\s\S]")
#: the longest letter run still counted as a word
WORD_LETTERS = 16
#: tokens a word may cost per letter
WORD_RATE = 0.6


def _word_like(run: str) -> bool:
    return len(run) <= WORD_LETTERS and (run.islower() or (run[0].isupper() and run[1:].islower()))


def token_bound(text: str) -> int:
    """Tokens ``text`` may cost at most in any common tokenizer (see the module's rules)."""
    halves = 0  # counted in half tokens: a single space is half of one
    for piece in _PIECES.findall(text):
        letters = piece.lstrip(" ")
        if letters[:1].isascii() and letters[:1].isalpha():  # a word, and the space it joins
            halves += len(piece) - len(letters)
            halves += 2 * (math.ceil(WORD_RATE * len(letters)) if _word_like(letters) else len(letters))
        elif not piece.isascii():
            halves += 2 * len(piece.encode("utf-8"))
        else:  # a digit, a punctuation mark, a control character or whitespace
            halves += 2
    return -(-halves // 2)
