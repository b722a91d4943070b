"""Word-level tokenizers for small Wan pipelines (the toy model and the tests).

Real Wan uses UMT5's sentencepiece tokenizer; a word-level tokenizer with the same special tokens keeps the
pipeline code identical while making each toy word exactly one token, so maps are easy to read.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def build_word_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """Return a fast tokenizer with one id per word, UMT5's special tokens and an EOS appended.

    Ids: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, then ``words`` in the given order (duplicates dropped).
    Lower-cases and splits on whitespace and punctuation, so offsets map tokens back to prompt characters.
    """
    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for word in words:
        vocab.setdefault(word.lower(), len(vocab))
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=512
    )
