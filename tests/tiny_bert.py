"""A tiny BERT and its tokenizer, built offline and saved as a model folder (tests of the text features)."""

from pathlib import Path

# WordPiece vocabulary: "unbelievable" is three sub-tokens (un ##believ ##able), "moviegoers" two.
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "good", "bad", "very", "un",
         "##believ", "##able", "##goers", "i", "liked", "it", "not", "a", "plot"]


def build_tiny_bert(folder: Path, hidden: int = 16) -> Path:
    """A randomly initialised 2-layer BERT (``hidden`` wide) and its tokenizer, saved with ``save_pretrained``.

    The tokenizer is built from a vocabulary dict: with transformers 5, ``BertTokenizerFast(vocab_file=...)`` is
    silently ignored and maps every word to [UNK] (DESIGN §9).
    """
    import torch
    import transformers

    tokenizer = transformers.BertTokenizerFast(vocab={word: i for i, word in enumerate(VOCAB)}, do_lower_case=True)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128)
    transformers.BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
