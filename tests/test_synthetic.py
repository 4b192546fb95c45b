"""The synthetic corpus and its oracle: seeded generation, well-formed spans, exact probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from lmbench.compose import compose
from lmbench.config import Level, SyntheticCorpusConfig, validate
from lmbench.corpora import EOS, UNK, Corpus, Vocab, load_corpus, synthetic
from lmbench.corpora.synthetic import SyntheticProcess, load_synthetic
from lmbench.errors import CorpusError, UserError
from lmbench.models.oracle import Oracle


def synthetic_config(**overrides):
    settings = dict(name="synthetic", level=Level.word, train_tokens=20_000, valid_tokens=2_000,
                    test_tokens=5_000)
    return OmegaConf.structured(SyntheticCorpusConfig(**{**settings, **overrides}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        return load_corpus(synthetic_config())


@pytest.fixture(scope="module")
def oracle(corpus):
    return Oracle(None, corpus)


def test_generation_is_seeded_and_splits_have_exact_lengths():
    cfg = synthetic_config(train_tokens=3_000, valid_tokens=1_000, test_tokens=1_234)
    first, again = load_synthetic(cfg), load_synthetic(cfg)
    other = load_synthetic(synthetic_config(train_tokens=3_000, valid_tokens=1_000, test_tokens=1_234,
                                            seed=7))
    assert first.splits == again.splits and first.meta == again.meta
    assert first.splits["train"] != other.splits["train"]
    assert first.meta["synthetic"]["lexicon"] != other.meta["synthetic"]["lexicon"]
    assert {s: len(t) for s, t in first.splits.items()} == {"train": 3_000, "valid": 1_000, "test": 1_234}
    assert first.splits["train"][:1_000] != first.splits["valid"]  # splits use distinct seeds


def test_spans_are_well_formed_and_latents_match(corpus, oracle):
    process = oracle.process
    openers = {o: k for k, (o, _) in enumerate(process.delimiters)}
    closers = {c: k for k, (_, c) in enumerate(process.delimiters)}
    sampled = corpus.vocab.decode(oracle.sample(2_000, np.array([], dtype=np.int64), 1.0, None,
                                                np.random.default_rng(0)))
    for tokens in (corpus.vocab.decode(corpus.test), sampled):
        latents = process.latents(tokens)
        stack: list[tuple[int, int]] = []
        for i, token in enumerate(tokens):
            assert latents["depth"][i] == len(stack) <= process.max_depth
            if token == EOS:
                assert not stack, "a sentence ends only outside every span"
            elif token in openers:
                stack.append((openers[token], i))
            elif token in closers:
                kind, start = stack.pop()
                assert closers[token] == kind, "a closer matches the innermost opener"
                assert latents["distance"][i] == i - start
        assert latents["inside"].any() and (latents["distance"] > 0).any()


def test_oracle_beats_an_add_one_unigram(corpus, oracle):
    counts = np.bincount(corpus.train, minlength=len(corpus.vocab)) + 1.0
    unigram = np.log(counts / counts.sum())[corpus.test]
    exact = oracle.log_probs(corpus.test, np.array([0]), 64)
    assert np.exp(-exact.mean()) < 0.8 * np.exp(-unigram.mean())


def test_generation_follows_the_exact_distribution():
    """Counts of <eos>, each delimiter, any opener, any closer, each word class and each class's
    commonest word in generated text match the sums of their exact probabilities along the way."""
    process = SyntheticProcess(load_synthetic(synthetic_config(train_tokens=1_000)).meta["synthetic"])
    tokens = process.generate(40_000, np.random.default_rng(3))
    index, k = np.arange(len(process.tokens)), len(process.delimiters)
    cls = np.r_[np.full(process.first_word, -1), process.word_class]  # -1: <eos> or a delimiter
    commonest = (cls >= 0) & np.r_[True, np.diff(cls) != 0]
    events = np.vstack([np.eye(len(process.tokens))[:process.first_word],
                        [(1 <= index) & (index <= k), (k < index) & (cls < 0)],
                        [cls == c for c in range(process.num_classes)],
                        [commonest & (cls == c) for c in range(process.num_classes)]])
    expected, variance, count = 0.0, 0.0, 0.0
    state = process.initial_state()
    for token in tokens:
        p = events @ process.next_distribution(state)
        expected, variance = expected + p, variance + p * (1 - p)
        count = count + events[:, process.index[token]]
        state = process.step(state, token)
    assert np.all(np.abs(count - expected) < 4.5 * np.sqrt(variance))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_distribution_sums_to_one_and_matches_log_probs(corpus, oracle, data):
    size = len(corpus.vocab)
    if data.draw(st.booleans(), label="real text"):
        start = data.draw(st.integers(0, len(corpus.test) - 30), label="start")
        ids = corpus.test[start:start + data.draw(st.integers(1, 30), label="length")]
    else:
        ids = np.array(data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=30)))
    scores = oracle.log_probs(ids, np.array([0]), 1)
    for i in range(len(ids)):
        p = oracle.distribution(ids[:i])
        assert p.dtype == np.float64 and abs(p.sum() - 1.0) < 1e-9 and p.min() >= 0
        assert np.exp(scores[i]) == pytest.approx(p[ids[i]], rel=1e-12, abs=0)


def test_starts_reset_to_the_initial_state(corpus, oracle):
    ids = corpus.test[:2_000]
    cuts = np.unique(np.random.default_rng(0).integers(1, len(ids), 30))
    starts = np.concatenate([[0], cuts])
    pieces = [oracle.log_probs(ids[a:b], np.array([0]), 1) for a, b in zip(starts, [*cuts, len(ids)])]
    np.testing.assert_allclose(oracle.log_probs(ids, starts, 8), np.concatenate(pieces), rtol=1e-12)
    # <eos> returns the process to its initial state, so the sentence protocol scores like the stream
    np.testing.assert_allclose(oracle.log_probs(ids, corpus.line_starts("test"), 8),
                               oracle.log_probs(ids, np.array([0]), 8), rtol=1e-12)


def test_unk_marginalises_over_the_words_the_vocabulary_lacks(tmp_path, monkeypatch):
    """p(line with <unk>) = the sum over every unseen word w of p(line with w in its place)."""
    monkeypatch.setenv("LMBENCH_CACHE", str(tmp_path))
    small = load_corpus(synthetic_config(train_tokens=3_000, test_tokens=3_000))
    model = Oracle(None, small)
    process, ids, unk = model.process, small.test, small.vocab.unk
    line_starts = small.line_starts("test")
    # first <unk> of a line, followed by five in-vocabulary tokens
    line_of = {j: line_starts[line_starts <= j][-1] for j in np.flatnonzero(ids == unk)}
    j = next(j for j, a in line_of.items() if np.all(ids[a:j] != unk) and np.all(ids[j + 1:j + 6] != unk))
    line = ids[line_of[j]:j + 6]
    before, after = small.vocab.decode(line[:-6]), small.vocab.decode(line[-5:])

    def log_p(state, tokens):
        total = 0.0
        for token in tokens:
            total += np.log(process.next_distribution(state)[process.index[token]])
            state = process.step(state, token)
        return total

    state = process.initial_state()
    prefix = log_p(state, before)
    for token in before:
        state = process.step(state, token)
    unseen = [w for w in process.words if w not in small.vocab.stoi]
    marginal = np.logaddexp.reduce([log_p(state, [w, *after]) for w in unseen])
    assert model.log_probs(line, np.array([0]), 1).sum() == pytest.approx(prefix + marginal, rel=1e-10)


def test_oracle_needs_a_synthetic_corpus():
    ids = np.array([2, 0], dtype=np.int32)
    plain = Corpus("tiny", "word", Vocab([EOS, UNK, "a"]), {"train": ids, "valid": ids, "test": ids},
                   {"train": 2, "valid": 2, "test": 2}, "fingerprint", {})
    with pytest.raises(UserError, match="model=oracle needs corpus=synthetic"):
        Oracle(None, plain)


def test_a_num_classes_above_the_limit_is_refused_by_its_rule():
    with pytest.raises(UserError, match=r"corpus.num_classes=1000000 is out of range: it must be an integer "
                                        r"in \[1, 4,000\]"):
        validate(compose("corpus.num_words=1000000", "corpus.num_classes=1000000"))


def test_word_tables_above_the_limit_are_refused_before_anything_is_drawn(monkeypatch):
    cfg = compose("corpus.num_words=1000000", "corpus.num_classes=4000")
    validate(cfg)  # each option is in range: only together are they too large
    monkeypatch.setattr(synthetic, "pseudo_words", None)  # drawing the lexicon would fail the test
    with pytest.raises(CorpusError, match="4,001,000,000 entries, above the limit of 20,000,000"):
        load_corpus(cfg.corpus)


def test_uniforms_drawn_in_chunks_are_the_numbers_of_one_draw(monkeypatch):
    monkeypatch.setattr(synthetic, "UNIFORMS_CHUNK", 7)  # a 10^8-token split no longer holds 3 x 10^8 floats
    chunked = list(synthetic.uniforms(1_000, np.random.default_rng(5)))
    assert chunked == np.random.default_rng(5).random((1_000, 3)).tolist()  # the corpora drawn before
