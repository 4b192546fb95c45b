"""The n-gram model on toy data: normalisation of every smoothing at every order, agreement of the
scorer with the full distributions, nltk.lm agreement for add-k, both protocols, sampling, the
fit record, and clear errors for bad input."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from lmbench import models
from lmbench.corpora import EOS, Corpus, build_vocab
from lmbench.errors import UserError
from lmbench.evaluate import evaluate, resets
from lmbench.models.base import FitSettings
from lmbench.models.ngram import NgramConfig
from lmbench.ngram import tables


def make_corpus(train: list[list[str]], test: list[list[str]]) -> Corpus:
    """A word corpus from lines of words (each line gets its ``<eos>``); valid is the test split."""
    streams = {name: [w for line in lines for w in [*line, EOS]]
               for name, lines in (("train", train), ("valid", test), ("test", test))}
    vocab = build_vocab(streams["train"], 1, "word")
    splits = {name: vocab.encode(tokens) for name, tokens in streams.items()}
    chars = {name: max(1, sum(len(w) + 1 for w in tokens)) for name, tokens in streams.items()}
    return Corpus("toy", "word", vocab, splits, chars, "toy", {})


def build(corpus: Corpus, protocol: str = "sentence", run_dir=None, **options):
    model = models.build("ngram", OmegaConf.structured(NgramConfig(**options)), corpus)
    stats = model.fit(corpus, FitSettings(protocol=protocol, run_dir=run_dir))
    return model, stats


def contexts(lm) -> list[list[int]]:
    """Every history the model stores a backoff weight for (all entries below the top order,
    ``<s>``-anchored ones included), plus the empty history."""
    found, level = [[]], [[i] for i in range(lm.width)]
    for n in range(1, lm.order):
        found += level
        if n < lm.order - 1:
            level = [level[k // lm.width] + [k % lm.width] for k in lm.keys[n]]
    return found


def plain_counts(stream: np.ndarray, n: int, bos: int) -> Counter:
    """Every n-gram ending at each position that holds ``<s>`` at most as its first token."""
    grams = (tuple(stream[end - n + 1:end + 1].tolist()) for end in range(n - 1, len(stream)))
    return Counter(g for g in grams if bos not in g[1:] and (n > 1 or g[0] != bos))


def decoded(found: list[tables.Table], width: int) -> list[list[tuple]]:
    """Per order above 1, each table entry's tokens, decoded through the prefix chain."""
    orders, below = [], lambda i: (i,)
    for table in found[1:]:
        orders.append([below(k // width) + (k % width,) for k in table.keys.tolist()])
        below = orders[-1].__getitem__
    return orders


@st.composite
def segmented_streams(draw, max_tokens: int = 60):
    """A token stream over a vocabulary of 2 to 5 million ids (a few of them used, spread over the
    range, so n-grams repeat and packed keys pass 2**31), split into 1 to 4 counting pieces, in
    segments cut by hand, after every line end (the sentence protocol), or one (the stream protocol).
    Returns the pieces, the whole padded stream, the width (``<s>`` is ``width - 1``) and the order."""
    vocab = draw(st.integers(2, 5_000_000), label="vocab")
    used = draw(st.lists(st.integers(0, vocab - 1), min_size=1, max_size=5, unique=True), label="used")
    tokens = np.array(draw(st.lists(st.sampled_from(used), min_size=1, max_size=max_tokens)), dtype=np.int32)
    size = -(-len(tokens) // draw(st.integers(1, 4), label="pieces"))
    spans = [(a, a + size) for a in range(0, len(tokens), size)]
    protocol = draw(st.sampled_from(["cuts", "sentence", "stream"]), label="protocol")
    if protocol == "cuts":  # segments cut by hand: each piece padded where they start in it
        cuts = draw(st.lists(st.integers(0, len(tokens) - 1), max_size=6), label="cuts")
        starts = np.unique([0, *cuts])
        chunks = [tables.padded(tokens[a:b], starts[(starts >= a) & (starts < b)] - a, vocab)
                  for a, b in spans]
    else:
        line_end = draw(st.sampled_from(used), label="line_end") if protocol == "sentence" else None
        ends = np.flatnonzero(tokens[:-1] == line_end) + 1 if line_end is not None else []
        starts = np.concatenate([[0], ends]).astype(np.int64)
        chunks = list(tables.pieces((tokens[a:b] for a, b in spans), line_end, vocab))
    return chunks, tables.padded(tokens, starts, vocab), vocab + 1, draw(st.integers(1, 6), label="order")


@settings(max_examples=400, deadline=None)
@given(case=segmented_streams())
def test_chunked_counting_finds_every_ngram_once_with_its_count_and_suffix(case):
    """The tables, counted from 1 to 4 pieces padded one by one (segments and n-grams crossing
    piece boundaries) over vocabularies up to 5M ids, against a Counter of the padded stream's
    n-grams; keys decode through the prefix chain and suffixes to each n-gram's last n-1 tokens."""
    chunks, stream, width, order = case
    found = tables.count(chunks, order, width)
    seen = np.flatnonzero(found[0].counts)
    unigrams = dict(zip(((i,) for i in seen.tolist()), found[0].counts[seen].tolist()))
    assert unigrams == plain_counts(stream, 1, width - 1)
    orders = decoded(found, width)
    for n, (table, grams) in enumerate(zip(found[1:], orders), start=2):
        below = orders[n - 3].__getitem__ if n > 2 else lambda i: (i,)
        assert [below(i) for i in table.suffix.tolist()] == [g[1:] for g in grams]
        assert np.all(np.diff(table.keys) > 0)
        assert dict(zip(grams, table.counts.tolist())) == plain_counts(stream, n, width - 1)
        assert table.bos.tolist() == [g[0] == width - 1 for g in grams]


@settings(max_examples=200, deadline=None)
@given(case=segmented_streams(), data=st.data())
def test_lookup_finds_each_ngram_where_it_ends(case, data):
    """``lookup`` on a new stream of seen and unseen ids gives, per order and position, the table
    index of the n-gram ending there, or -1 where training never saw it."""
    chunks, stream, width, order = case
    found = tables.count(chunks, order, width)
    known = sorted(set(stream.tolist()) - {width - 1})
    words = data.draw(st.lists(st.sampled_from(known + [0, width - 2]), min_size=1, max_size=30))
    cuts = data.draw(st.lists(st.integers(0, len(words) - 1), max_size=4))
    scored = tables.padded(np.array(words, dtype=np.int32), np.unique([0, *cuts]), width - 1)
    ids = tables.lookup([pd.Index(t.keys) for t in found], scored, width)
    for n, (grams, at) in enumerate(zip(decoded(found, width), ids[1:]), start=2):
        index = {g: i for i, g in enumerate(grams)}
        expected = [index.get(tuple(scored[p - n + 1:p + 1].tolist()), -1)
                    if p >= n - 1 and width - 1 not in scored[p - n + 2:p + 1] else -1
                    for p in range(len(scored))]
        assert at.tolist() == expected


def test_a_large_vocabulary_counted_in_pieces_gives_the_one_piece_tables():
    """The issue's case in small: 1.3M types, keys past 2**31 from the second piece on (and, in 70
    pieces, ``KeyIds`` runs joined)."""
    tokens = np.random.default_rng(0).integers(0, 1_300_000, 30_000).astype(np.int32)
    whole, *pieced = (tables.count(tables.pieces(np.array_split(tokens, k), None, 1_300_000), 3, 1_300_001)
                      for k in (1, 7, 70))
    for other in pieced:
        for a, b in zip(whole, other):
            assert np.array_equal(a.keys, b.keys) and np.array_equal(a.counts, b.counts)
            assert np.array_equal(a.suffix, b.suffix)


def test_key_ids_number_keys_by_first_appearance_over_many_calls():
    """``KeyIds`` over 80 calls (runs joined up to the second level) numbers keys as a dict would,
    -1 staying -1."""
    rng = np.random.default_rng(0)
    numbering, expected = tables.KeyIds(), {}
    for _ in range(80):
        keys = np.concatenate([rng.integers(-1, 500, 100), rng.integers(0, 2**62, 100)])
        rng.shuffle(keys)
        ids = numbering.ids(keys, tables.MAX_KEY)
        assert ids.tolist() == [-1 if k < 0 else expected.setdefault(k, len(expected)) for k in keys.tolist()]
    assert len(numbering) == len(expected) and numbering.keys().tolist() == list(expected)
    assert numbering.levels[0] == 2


@pytest.mark.parametrize("corrupt, problem", [
    (lambda t: t[2].keys.__setitem__(1, t[2].keys[0]), "not distinct and sorted"),
    (lambda t: t[2].keys.__setitem__(-1, len(t[1].keys) * 9 + 1), "prefix index is outside"),
    (lambda t: t[1].suffix.__setitem__(0, 9), "suffix index is outside"),
    (lambda t: t[2].suffix.__setitem__(0, t[2].suffix[1]), "does not end with its n-gram's word"),
    (lambda t: t[2].counts.__setitem__(0, t[2].counts[0] + 1), "counts sum to"),
])
def test_a_corrupted_table_is_a_loud_error(corrupt, problem):
    stream = tables.padded(np.array([0, 1, 2, 0, 1, 3, 2, 2, 1], dtype=np.int32), np.array([0, 4]), 8)
    found = tables.count([stream], 3, 9)
    segments = tables.Segments(3)
    segments.add(stream == 8)
    tables.check(found, segments.occurrences())
    corrupt(found)
    with pytest.raises(tables.TableError, match=problem):
        tables.check(found, segments.occurrences())


def test_tables_do_not_depend_on_the_key_width():
    """Counts and suffixes are the same whatever the vocabulary's width (keys past 2**31 included)."""
    tokens = np.random.default_rng(0).integers(0, 64, 20_000).astype(np.int32)
    narrow, wide = (tables.count(tables.pieces([tokens], None, width - 1), 4, width) for width in (65, 2**22))
    for a, b in zip(narrow[1:], wide[1:]):
        assert np.array_equal(a.counts, b.counts) and np.array_equal(a.suffix, b.suffix)
        assert np.array_equal(a.keys % 65, b.keys % 2**22) and b.keys.max() > 2**31


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.integers(0, 2**63 - 1) | st.integers(0, 50), max_size=40))
def test_sort_with_order_sorts_keys_of_any_size(keys):
    """Packed with their positions while both fit in 63 bits, by argsort past that: the same sort."""
    keys = np.array(keys, dtype=np.int64)
    ordered, order = tables.sort_with_order(keys)
    assert ordered.tolist() == sorted(keys.tolist())
    assert sorted(order.tolist()) == list(range(len(keys))) and np.array_equal(keys[order], ordered)


# few types, <unk> among them, so that some contexts are followed by the whole vocabulary
lines = st.lists(st.lists(st.sampled_from(["a", "b", "c", "<unk>"]), max_size=7), min_size=1, max_size=10)
smoothings = st.sampled_from([{"smoothing": "kn"}, {"smoothing": "kn_backoff"},
                              {"smoothing": "katz", "katz_threshold": 1},
                              {"smoothing": "katz", "katz_threshold": 3}, {"smoothing": "katz"},
                              {"smoothing": "add_k", "add_k": 0.0}, {"smoothing": "add_k", "add_k": 0.5}])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=lines, test=lines, options=smoothings, protocol=st.sampled_from(["sentence", "stream"]),
       data=st.data())
def test_every_context_distribution_sums_to_one(train, test, options, protocol, data):
    corpus = make_corpus(train, test)
    longest = max(len(line) + 1 for line in train) if protocol == "sentence" else len(corpus.train)
    order = data.draw(st.integers(1, min(6, longest + 1)), label="order")
    model, _ = build(corpus, protocol, order=order, **options)
    for history in contexts(model.lm):
        total = math.fsum(np.exp(model.lm.distribution(history)))
        assert abs(total - 1) < 1e-9, (history, total)
    # the scorer's backoff lookups agree with the distributions, history by history
    if options.get("add_k") == 0.0:
        return  # maximum likelihood gives test tokens probability 0: covered below
    starts = resets(corpus, "test", protocol)
    scores = model.log_probs(corpus.test, starts, 1)
    bos = len(corpus.vocab)
    for i in range(len(corpus.test)):
        start = starts[starts <= i].max()
        expected = model.lm.distribution([bos, *corpus.test[start:i]])[corpus.test[i]]
        assert scores[i] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_maximum_likelihood_refuses_unseen_test_ngrams():
    corpus = make_corpus([["a", "b"], ["b", "a"]], [["a", "a"]])
    model, _ = build(corpus, order=2, smoothing="add_k", add_k=0.0)
    with pytest.raises(UserError, match="probability 0"):
        evaluate(model, corpus, "test", "sentence")


TOY = [s.split() for s in ["the cat sat on the mat", "the dog sat on the log", "a cat saw the dog",
                           "the mat saw a log", "a dog sat"]]


@pytest.mark.parametrize("k", [0.0, 0.1, 1.0])
def test_add_k_agrees_with_nltk_lidstone_and_mle(k):
    from nltk.lm import MLE, Lidstone
    from nltk.util import everygrams

    order = 3
    corpus = make_corpus(TOY, TOY[:2])
    model, _ = build(corpus, order=order, smoothing="add_k", add_k=k)
    words = [w if w != EOS else "</s>" for w in corpus.vocab.itos]
    padded = [["<s>"] * (order - 1) + line + ["</s>"] for line in TOY]
    reference = MLE(order) if k == 0 else Lidstone(k, order)
    # nltk's vocabulary: the words, </s> and its <UNK>, i.e. ours; <s> is looked up as <UNK>
    reference.fit([everygrams(line, max_len=order) for line in padded],
                  [w for line in TOY for w in line + ["</s>"]])
    for line in padded:
        for i in range(order - 1, len(line)):
            context = line[i - order + 1:i]
            history = [corpus.vocab.stoi[w] for w in context if w != "<s>"]
            ours = np.exp(model.lm.distribution([len(words)] * ("<s>" in context) + history))
            for w, p in enumerate(ours):
                assert p == pytest.approx(reference.score(words[w], context), rel=1e-12)


def test_katz_follows_its_definition(small_synthetic):
    """A bigram Katz model against Katz (1987) written out with dictionaries."""
    from collections import Counter

    k = 3
    model, stats = build(small_synthetic, "stream", order=2, smoothing="katz", katz_threshold=k)
    train = small_synthetic.train.tolist()
    vocab, bos = len(small_synthetic.vocab), len(small_synthetic.vocab)
    unigrams, bigrams = Counter(train), Counter(zip([bos] + train[:-1], train))

    def good_turing(counter):
        n = Counter(counter.values())
        common = (k + 1) * n[k + 1] / n[1]
        return {r: ((r + 1) * n[r + 1] / (r * n[r]) - common) / (1 - common) for r in range(1, k + 1)}

    def discounted(c, d):
        return d.get(c, 1.0) * c

    d1, d2 = good_turing(unigrams), good_turing(bigrams)
    assert all(0 < d < 1 for d in [*d1.values(), *d2.values()])  # no fallback on this corpus
    assert stats["ngram"]["estimates"][1]["coefficients"] == pytest.approx(list(d2.values()))
    p1 = {w: discounted(c, d1) / len(train) for w, c in unigrams.items()}
    unseen = (1 - sum(p1.values())) / (vocab - len(p1))
    p1 = np.array([p1.get(w, unseen) for w in range(vocab)])
    np.testing.assert_allclose(np.exp(model.lm.distribution([])), p1, rtol=1e-9)
    for h, _ in unigrams.most_common(5):
        seen = {w: c for (a, w), c in bigrams.items() if a == h}
        total = sum(seen.values())
        expected = {w: discounted(c, d2) / total for w, c in seen.items()}
        alpha = (1 - sum(expected.values())) / (1 - sum(p1[w] for w in seen))
        expected = [expected.get(w, alpha * p1[w]) for w in range(vocab)]
        np.testing.assert_allclose(np.exp(model.lm.distribution([h])), expected, rtol=1e-9)


def test_backoff_kneser_ney_follows_its_definition(small_synthetic):
    """Back-off Kneser-Ney written out for a bigram: a seen bigram keeps only its discounted count,
    an unseen one gets the Kneser-Ney unigram (the interpolated model's) times the context's weight."""
    from collections import Counter

    model, stats = build(small_synthetic, "stream", order=2, smoothing="kn_backoff")
    interpolated, _ = build(small_synthetic, "stream", order=2, smoothing="kn")
    train = small_synthetic.train.tolist()
    vocab, bos = len(small_synthetic.vocab), len(small_synthetic.vocab)
    bigrams = Counter(zip([bos] + train[:-1], train))
    d = [0.0, *stats["ngram"]["estimates"][1]["discounts"]]
    assert not stats["ngram"]["estimates"][1]["fallback"] and all(0 < x < 1.5 for x in d[1:])
    p1 = np.exp(interpolated.lm.distribution([]))
    np.testing.assert_allclose(np.exp(model.lm.distribution([])), p1, rtol=1e-12)
    for h, _ in Counter(train).most_common(5):
        seen = {w: c for (a, w), c in bigrams.items() if a == h}
        total = sum(seen.values())
        expected = {w: (c - d[min(c, 3)]) / total for w, c in seen.items()}
        alpha = (1 - sum(expected.values())) / (1 - sum(p1[w] for w in seen))
        expected = [expected.get(w, alpha * p1[w]) for w in range(vocab)]
        np.testing.assert_allclose(np.exp(model.lm.distribution([h])), expected, rtol=1e-9)
        assert not np.allclose(np.exp(interpolated.lm.distribution([h])), expected, rtol=1e-3)


def test_stream_protocol_carries_context_across_lines():
    # each line starts with the word that ended the previous one: only the stream model can know
    chain = [["a", "b"], ["b", "c"], ["c", "d"], ["d", "a"]] * 20
    corpus = make_corpus(chain, chain[:8])
    stream, _ = build(corpus, "stream", order=3)
    sentence, _ = build(corpus, "sentence", order=3)
    first = resets(corpus, "test", "sentence")[1:]  # line starts after the first line
    on_stream = evaluate(stream, corpus, "test", "stream", bootstrap_samples=0)[1][first]
    on_sentence = evaluate(sentence, corpus, "test", "sentence", bootstrap_samples=0)[1][first]
    assert np.all(on_stream < 0.1) and np.all(on_sentence > 1.0)
    # under the stream protocol only the split's first token sees <s>
    bos = len(corpus.vocab)
    log_p = stream.log_probs(corpus.test, np.array([0]), 1)
    history = [bos, *corpus.test[:first[0]]]
    assert log_p[first[0]] == pytest.approx(stream.lm.distribution(history)[corpus.test[first[0]]])


def test_fit_reports_storage_and_scoring_reports_sparsity_per_order(small_synthetic, tmp_path):
    model, stats = build(small_synthetic, "sentence", tmp_path, order=4, arpa=True)
    orders = stats["ngram"]["orders"]
    assert [o["order"] for o in orders] == [1, 2, 3, 4]
    assert [o["ngrams"] for o in orders] == model.lm.entries()
    assert sum(o["bytes"] for o in orders) == model.size_bytes() > 0
    unseen = {split: evaluate(model, small_synthetic, split, "sentence", bootstrap_samples=0)[0][
        "unseen_fraction_by_order"] for split in ("train", "test")}
    assert unseen["test"] == sorted(unseen["test"]) and 0 < unseen["test"][-1] < 1  # grows with the order
    assert unseen["train"] == [0, 0, 0, 0]  # every training n-gram was seen in training
    assert len(stats["ngram"]["estimates"]) == 4
    assert model.num_parameters() == sum(model.lm.entries()) + sum(model.lm.entries()[:-1])
    assert (tmp_path / "model.arpa").read_text().startswith("\\data\\\nngram 1=")


def test_order_ten_on_characters_falls_back_with_a_warning(tiny_char_corpus, caplog):
    with caplog.at_level(logging.WARNING):
        model, stats = build(tiny_char_corpus, "stream", order=10)
    assert "fallback discounts" in caplog.text
    assert any(e["fallback"] for e in stats["ngram"]["estimates"])
    result, _ = evaluate(model, tiny_char_corpus, "test", "stream")
    assert math.isfinite(result["ppl"]) and 1 < result["ppl"] < 5


def test_sampling_follows_the_model():
    corpus = make_corpus([["a", "b", "c"]] * 30 + [["a", "c", "b"]] * 10, [["a", "b", "c"]])
    model, _ = build(corpus, "sentence", order=3)
    ids = corpus.vocab.stoi
    greedy = model.sample(8, np.array([], dtype=np.int64), 0.0, None, np.random.default_rng(0))
    assert corpus.vocab.decode(greedy) == ["a", "b", "c", EOS] * 2  # <eos> restarts from <s>
    # after "a", b is about three times as likely as c; temperature sharpens or flattens that
    p_b = math.exp(model.lm.distribution([len(corpus.vocab), ids["a"]])[ids["b"]])
    rng = np.random.default_rng(1)
    for temperature, low, high in ((1.0, p_b - 0.04, p_b + 0.04), (0.3, 0.95, 1.0)):
        draws = [model.sample(1, np.array([ids["a"]]), temperature, None, rng)[0] for _ in range(1000)]
        assert low < np.mean(np.array(draws) == ids["b"]) < high
    assert {int(model.sample(1, np.array([ids["a"]]), 5.0, 1, rng)[0]) for _ in range(20)} == {ids["b"]}


def test_an_order_the_data_cannot_support_is_a_user_error(tiny_word_corpus):
    with pytest.raises(UserError, match="more than the training data supports"):
        build(tiny_word_corpus, "sentence", order=20)
    build(tiny_word_corpus, "stream", order=20)  # one long segment supports it


def test_empty_input_scores_nothing(tiny_word_corpus):
    model, _ = build(tiny_word_corpus, order=3)
    assert model.log_probs(np.array([], dtype=np.int32), np.array([0]), 8).shape == (0,)


def test_unseen_contexts_back_off_to_finite_scores(tiny_word_corpus):
    model, _ = build(tiny_word_corpus, order=4)
    unk = tiny_word_corpus.vocab.unk
    tokens = np.array([unk, unk, *tiny_word_corpus.test[:10]], dtype=np.int32)
    assert np.all(np.isfinite(model.log_probs(tokens, np.array([0]), 1)))


@pytest.mark.slow
def test_an_ngram_run_never_imports_torch(tiny_text_dir, tmp_path):
    # the whole command, as a user runs it: torch's import alone would double its start-up time
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules))\n"
        f"sys.argv = ['lmbench', 'model=ngram', 'corpus=file', 'corpus.path={tiny_text_dir}',\n"
        f"            'corpus.level=word', 'results_dir={tmp_path}', 'hydra.run.dir={tmp_path / 'run'}']\n"
        "runpy.run_module('lmbench', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "torch imported: False" in done.stdout
    assert (tmp_path / "run" / "record.json").exists()
