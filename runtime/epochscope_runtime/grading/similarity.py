"""How close an answer is to a reference text, in [0, 1]: one implementation for every caller.

Words are Unicode-aware (`normalize`): lower case, no punctuation, no articles, single spaces, so "café crème"
counts as two words (rouge-score's own tokenizer keeps only ASCII letters and digits, and would drop them).
Exact match, token F1 and ROUGE-1/2/L all count these words; BLEU and chrF are sacrebleu's, on the raw texts;
fuzzy_match counts characters of the raw texts (rapidfuzz's `fuzz.ratio`, without the dependency).
"""

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

import sacrebleu

from epochscope_schemas.graders import SimilarityMetric

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def words(text: str) -> list[str]:
    return normalize(text).split()


def token_f1(answer: str, reference: str) -> float:
    """Token F1 (SQuAD): the words the two texts share, as a bag."""
    return _word_f_measure(answer, reference, lambda a, r: (_overlap(a, r), len(a), len(r)))


def rouge_n(answer: str, reference: str, n: int) -> float:
    """ROUGE-N F-measure: the n-grams of words the two texts share."""

    def grams(a: list[str], r: list[str]) -> tuple[int, int, int]:
        answer_grams, reference_grams = _ngrams(a, n), _ngrams(r, n)
        return _overlap(answer_grams, reference_grams), len(answer_grams), len(reference_grams)

    return _word_f_measure(answer, reference, grams)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure: the longest common subsequence of words."""
    return _word_f_measure(answer, reference, lambda a, r: (_lcs(a, r), len(a), len(r)))


def fuzzy_ratio(answer: str, reference: str) -> float:
    """Indel similarity (rapidfuzz's `fuzz.ratio` / 100): twice the longest common subsequence of characters over
    both lengths. The subsequence is counted bit-parallel (Allison-Dix; Hyyro), one big-integer step per character
    of the reference, so long texts cost milliseconds, not a quadratic table."""
    if not answer and not reference:
        return 1.0
    positions: dict[str, int] = {}
    for index, char in enumerate(answer):
        positions[char] = positions.get(char, 0) | (1 << index)
    width = (1 << len(answer)) - 1
    unmatched = width
    for char in reference:
        matched = unmatched & positions.get(char, 0)
        unmatched = ((unmatched + matched) | (unmatched - matched)) & width
    common = len(answer) - unmatched.bit_count()
    return 2 * common / (len(answer) + len(reference))


def similarity(metric: SimilarityMetric, answer: str, reference: str) -> float:
    """The metric of the answer against the reference, in [0, 1]. Two texts with no words are the same (1)."""
    if metric == SimilarityMetric.EXACT_MATCH:
        return float(normalize(answer) == normalize(reference))
    if metric == SimilarityMetric.F1:
        return token_f1(answer, reference)
    if metric == SimilarityMetric.ROUGE_1:
        return rouge_n(answer, reference, 1)
    if metric == SimilarityMetric.ROUGE_2:
        return rouge_n(answer, reference, 2)
    if metric == SimilarityMetric.ROUGE_L:
        return rouge_l(answer, reference)
    if metric == SimilarityMetric.FUZZY_MATCH:
        return fuzzy_ratio(answer, reference)
    if not answer.strip() or not reference.strip():
        return float(answer.strip() == reference.strip())
    if metric == SimilarityMetric.BLEU:
        value = sacrebleu.sentence_bleu(answer, [reference]).score
    else:
        value = sacrebleu.sentence_chrf(answer, [reference]).score
    return min(max(value / 100.0, 0.0), 1.0)


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _overlap(answer: Sequence[object], reference: Sequence[object]) -> int:
    return sum((Counter(answer) & Counter(reference)).values())


def _lcs(answer: list[str], reference: list[str]) -> int:
    previous = [0] * (len(reference) + 1)
    for token in answer:
        current = [0]
        for j, other in enumerate(reference):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _word_f_measure(
    answer: str, reference: str, count: Callable[[list[str], list[str]], tuple[int, int, int]]
) -> float:
    """F1 of precision (common / answer's) and recall (common / reference's), from `count`'s (common, answer's,
    reference's); two texts without words are the same (1), one without words shares nothing (0)."""
    answer_words, reference_words = words(answer), words(reference)
    if not answer_words or not reference_words:
        return float(answer_words == reference_words)
    common, answer_count, reference_count = count(answer_words, reference_words)
    if common == 0:
        return 0.0
    precision, recall = common / answer_count, common / reference_count
    return 2 * precision * recall / (precision + recall)
