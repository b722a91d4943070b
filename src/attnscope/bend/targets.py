"""Which text tokens a bend's target names: words, phrases, repeated-word labels, lists, and objects.

The syntax is capture's (:func:`attnscope.capture.words.resolve_words`): a word (``circle``), a phrase (``red
circle``: every token of it), the label of a repeated word's later occurrence (``cat (2)``), or a list of these.
An ``object`` target adds the prompt's end-of-sequence token (``eos``) and, on request, the padding sink (every
padding key: Wan does not mask the zero-padded text context, and its identical keys take real mass).

With the prompt's text and tokenizer, phrases resolve exactly as capture resolves them. Without them (a caller
that only hands over label -> token indices), a phrase resolves when its words are consecutive words of the
prompt, and the end-of-sequence token is the last real token of each call (``prompt_tokens - 1``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import AttnscopeError
from .recipe import BendRecipeError

__all__ = ["TargetResolver", "eos_row", "prompt_without", "split_label"]

_LABEL = re.compile(r"^(.*\S)\s+\((\d+)\)$")
_CONNECTORS = {"and", "or", "with", ","}


def split_label(label: str) -> tuple[str, int]:
    """``"cat (2)"`` -> ("cat", 2); ``"red circle"`` -> ("red circle", 1)."""
    m = _LABEL.match(label)
    return (m.group(1), int(m.group(2))) if m else (label, 1)


def prompt_without(prompt: str, phrases: list[str]) -> str:
    """The prompt with each phrase's text taken out (``cat (2)``: the second ``cat``) and the connectors left
    dangling by it dropped: "a red circle and a green square" without "a red circle" -> "a green square".

    Raises BendRecipeError when a phrase is not in the prompt's text (then give ``eos_prompt`` yourself).
    """
    text = prompt
    for name in phrases:
        base, occurrence = split_label(name)
        found = list(re.finditer(rf"(?<!\w){re.escape(base)}(?!\w)", text, flags=re.IGNORECASE))
        if len(found) < occurrence:
            raise BendRecipeError(f"eos: edited: {name!r} is not in the prompt's text {prompt!r}; give the prompt "
                                  "without it as eos_prompt")
        hit = found[occurrence - 1]
        text = text[:hit.start()] + " " + text[hit.end():]
    words = re.sub(r"\s*,\s*", " , ", text).split()
    kept: list[str] = []
    for word in words:
        if word.lower() in _CONNECTORS and (not kept or kept[-1].lower() in _CONNECTORS):
            if kept:
                kept[-1] = word  # ", and" -> "and": the later connector joins what is left
            continue
        kept.append(word)
    while kept and kept[-1].lower() in _CONNECTORS:
        kept.pop()
    return " ".join(kept).replace(" , ", ", ")


def eos_row(text: str, encode: Callable, tokenizer, embedder):
    """The end-of-sequence row of ``text``'s context as the transformer's text projection gives it: the whole
    encoded context through ``embedder``, as the transformer does it, then its EOS row."""
    raw = encode(text)  # (L, C_text), zero-padded like the prompt's own
    eos = len(tokenizer(text, add_special_tokens=True)["input_ids"]) - 1
    weight = next(embedder.parameters())
    return embedder(raw.unsqueeze(0).to(device=weight.device, dtype=weight.dtype))[0][eos]


class TargetResolver:
    """Resolves target names to token indices for one prompt.

    ``words``: label -> token indices of every word of the prompt (and captured entries), in prompt order, as the
    trace builds it. ``prompt`` + ``tokenizer`` (optional) resolve phrases through capture's own code; ``resolve``
    (optional) is any callable mapping a list of names to {label: token indices} the same way.
    """

    def __init__(self, words: dict[str, list[int]], prompt: str | None = None, tokenizer=None,
                 resolve: Callable[[list[str]], dict[str, list[int]]] | None = None) -> None:
        self.words = {label: list(tokens) for label, tokens in words.items()}
        self.prompt = prompt
        self.tokenizer = tokenizer
        self.resolve = resolve
        if resolve is None and prompt is not None and tokenizer is not None:
            self.resolve = self._capture_resolve

    def _capture_resolve(self, names: list[str]) -> dict[str, list[int]]:
        from ..capture.words import resolve_words

        entries, _ = resolve_words(self.prompt, names, self.tokenizer)
        return {e.label: e.token_indices for e in entries}

    @property
    def prompt_words(self) -> list[str]:
        """The prompt's word labels, for messages."""
        return list(self.words)

    def tokens(self, name: str) -> list[int]:
        """Token indices of one word / phrase / label; raises KeyError with no message when absent."""
        if name in self.words:
            return self.words[name]
        base, occurrence = split_label(name)
        if self.resolve is not None:
            try:
                found = self.resolve([base])
            except AttnscopeError:
                raise KeyError(name) from None
            want = base if occurrence == 1 else f"{base} ({occurrence})"
            for label, tokens in found.items():
                if label.lower() == want.lower():
                    return list(tokens)
            raise KeyError(name)
        return self._consecutive(base, occurrence)

    def _consecutive(self, phrase: str, occurrence: int) -> list[int]:
        """A phrase as consecutive single words of the prompt (the fallback without a tokenizer)."""
        singles = sorted(((split_label(label)[0].lower(), tokens) for label, tokens in self.words.items()
                          if tokens and " " not in split_label(label)[0]), key=lambda item: min(item[1]))
        parts = phrase.lower().split()
        seen = 0
        for start in range(len(singles) - len(parts) + 1):
            run = singles[start:start + len(parts)]
            if [w for w, _ in run] != parts:
                continue
            tokens = [t for _, ts in run for t in ts]
            if any(b != a + 1 for a, b in zip(tokens, tokens[1:], strict=False)):
                continue  # not adjacent in the token sequence
            seen += 1
            if seen == occurrence:
                return tokens
        raise KeyError(phrase)

    def eos(self) -> int | None:
        """The end-of-sequence token's index when the tokenizer says so; None: take the call's last real token."""
        if self.tokenizer is None or self.prompt is None:
            return None
        ids = self.tokenizer(self.prompt, add_special_tokens=True)["input_ids"]
        eos_id = getattr(self.tokenizer, "eos_token_id", None)
        return len(ids) - 1 if eos_id is not None and ids and ids[-1] == eos_id else None

    def check(self, names: list[str], where: str) -> list[int]:
        """Tokens of every name (in order, no repeats); a missing one raises BendRecipeError naming the words."""
        out: list[int] = []
        for name in names:
            try:
                tokens = self.tokens(name)
            except KeyError:
                raise BendRecipeError(
                    f"{where}: word {name!r} is not in the prompt; the prompt's words are: "
                    f"{', '.join(self.prompt_words)} (a phrase of consecutive words, a repeated word's label like "
                    f"'cat (2)' or a list [red, circle] also work)") from None
            out.extend(t for t in tokens if t not in out)
        return out
