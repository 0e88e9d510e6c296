"""The 29 output characters, transcript encoding and greedy CTC decoding (both frameworks).

Labels are the v0.5 reference's `labels.json` (mlcommons/training speech_recognition/labels.json):
index 0 is the CTC blank `_`, then the apostrophe, A-Z, and the space (index 28). Transcripts are
upper-cased as the reference's `_preprocess_transcript` does; a character outside the labels is
dropped, as its `parse_transcript` drops it (LibriSpeech transcripts hold none).
"""

from __future__ import annotations

import numpy as np

LABELS = "_'ABCDEFGHIJKLMNOPQRSTUVWXYZ "
BLANK = 0
NUM_CLASSES = len(LABELS)  # 29
_INDEX = {char: index for index, char in enumerate(LABELS)}


def normalize_transcript(text: str) -> str:
    """Upper case, single spaces, no leading or trailing space (LibriSpeech's own form)."""
    return " ".join(text.upper().split())


def encode(text: str) -> np.ndarray:
    """Label indices of a transcript (blank never appears in a target)."""
    return np.array([_INDEX[char] for char in normalize_transcript(text) if char in _INDEX and char != "_"],
                    dtype=np.int32)


def decode_indices(indices) -> str:
    return "".join(LABELS[int(index)] for index in indices)


def greedy_decode(best_path: np.ndarray, length: int) -> str:
    """The best path (argmax label per output frame) to text: merge repeats, drop blanks.

    As the reference's GreedyDecoder (pytorch/decoder.py, remove_repetitions=True): a label equal
    to the frame before is a repeat unless a blank separates them; the result is stripped."""
    path = np.asarray(best_path[:length])
    if path.size == 0:
        return ""
    keep = np.ones(path.shape, dtype=bool)
    keep[1:] = path[1:] != path[:-1]
    return " ".join(decode_indices(path[keep & (path != BLANK)]).split())
