"""Map words and phrases of a prompt to the text-encoder tokens that carry them.

Tokens are found through the tokenizer's character offsets, so the same code serves UMT5's sentencepiece pieces
(``▁soc`` ``cer``) and word-level tokenizers. A word's map is the sum of its tokens' probabilities; every
occurrence of a repeated word is its own entry (``cat``, ``cat (2)``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ..errors import PromptTooLongError, WordNotFoundError

MAX_TEXT_TOKENS = 512
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_MARKER = re.compile(r"\(([^()]+)\)")


@dataclass
class WordEntry:
    """One captured word or phrase occurrence."""

    label: str
    text: str
    char_span: tuple[int, int]
    token_indices: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def strip_markers(prompt: str) -> tuple[str, list[str]]:
    """Remove ``(word)`` markers; return the clean prompt and the marked words in order."""
    marked = [m.group(1).strip() for m in _MARKER.finditer(prompt)]
    return _MARKER.sub(lambda m: m.group(1), prompt), marked


def prompt_words(text: str) -> list[str]:
    """The words of a prompt as a user would list them (punctuation dropped)."""
    return _WORD.findall(text)


def _occurrences(text: str, phrase: str) -> list[tuple[int, int]]:
    pattern = r"(?<![\w])" + r"\s+".join(re.escape(p) for p in phrase.split()) + r"(?![\w])"
    return [m.span() for m in re.finditer(pattern, text, flags=re.IGNORECASE)]


def _labelled(items: list[tuple[str, tuple[int, int]]], text: str) -> list[WordEntry]:
    seen: dict[str, int] = {}
    entries = []
    for phrase, span in items:
        key = phrase.lower()
        seen[key] = seen.get(key, 0) + 1
        label = phrase if seen[key] == 1 else f"{phrase} ({seen[key]})"
        entries.append(WordEntry(label=label, text=text[span[0]:span[1]], char_span=span))
    return entries


def resolve_words(text: str, words: list[str] | None, tokenizer) -> tuple[list[WordEntry], int]:
    """Resolve ``words`` (None: every word) in ``text`` to token indices; return entries and real token count.

    Raises a clear error for a word that is absent, or whose tokens fall beyond the encoder's 512 tokens.
    """
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True, truncation=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if len(ids) > MAX_TEXT_TOKENS:
        raise PromptTooLongError(
            f"the prompt needs {len(ids)} tokens but Wan's text encoder reads only {MAX_TEXT_TOKENS}; "
            "shorten it (words past the limit would be silently dropped by the pipeline)"
        )
    tokens = tokenizer.convert_ids_to_tokens(ids)
    if words is None:
        items = [(m.group(0), m.span()) for m in _WORD.finditer(text)]
    else:
        items = []
        for phrase in words:
            spans = _occurrences(text, phrase.strip())
            if not spans:
                raise WordNotFoundError(
                    f"'{phrase}' is not in the prompt {text!r}; its words are: {', '.join(prompt_words(text))}"
                )
            items.extend((phrase.strip(), span) for span in spans)
        items.sort(key=lambda item: item[1][0])
    entries = _labelled(items, text)
    for entry in entries:
        a, b = entry.char_span
        idx = [i for i, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
        if not idx:
            raise WordNotFoundError(f"'{entry.text}' has no token of its own in {text!r}; choose a longer span")
        entry.token_indices = idx
        entry.tokens = [tokens[i] for i in idx]
    return entries, len(ids)
