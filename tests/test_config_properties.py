"""Property tests over the config schemas: every option's declared rule refuses the values it names,
every numeric option has a rule, and every numeric option, given nan, inf, a negative or a huge
value, either runs correctly or is refused before any data is read, never a traceback."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from conftest import ROOT, TINY, TINY_NETWORKS
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, FloatNode, IntegerNode, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lmbench.compose import compose
from lmbench.config import leaves, schema_nodes, validate
from lmbench.errors import UserError
from lmbench.runs import run as run_module

LOCAL = {"synthetic": [], "file": ["corpus.path=@TINY@"]}  # corpora that need no download
BAD = {float: ["nan", "inf", "-inf", "-1.0", "1e300"], int: ["nan", "-1", str(2**63), str(10**30)]}


def numeric_leaves(cfg, prefix: str = ""):
    """(key, type) of every int or float option below ``cfg``, null-valued ones included."""
    for key, node in ((k, cfg._get_node(k)) for k in cfg):
        if isinstance(node, DictConfig) and not node._is_none():
            yield from numeric_leaves(node, f"{prefix}{key}.")
        elif isinstance(node, ListConfig) and not node._is_none():
            for i in range(len(node)):
                if isinstance(node._get_node(i), (IntegerNode, FloatNode)):
                    yield f"{prefix}{key}[{i}]", float if isinstance(node._get_node(i), FloatNode) else int
        elif isinstance(node, (IntegerNode, FloatNode)):
            yield f"{prefix}{key}", float if isinstance(node, FloatNode) else int


def numeric_options() -> list[tuple[str, str, str, type]]:
    """(group, option, key, type) of every int and float option: the shared ones (seed, train.*,
    eval.*, published.*) once, with a trained model, and each model's and corpus's own under every
    option of its group."""
    found = []
    for group, options in (("", [""]), ("model", None), ("corpus", None)):
        for option in options or sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")):
            chosen = [f"{group}={option}"] if group else []
            cfg = compose(*chosen, *(["corpus.path=x"] if option == "file" else []))
            for key, kind in numeric_leaves(cfg):
                if key.startswith(f"{group}.") if group else not key.startswith(("model.", "corpus.")):
                    found.append((group or "model", option or "lstm", key, kind))
    return found


OPTIONS = numeric_options()


def declared_rules() -> list[tuple[tuple[str, ...], str, object]]:
    """(overrides choosing a schema, dotted key, a value its rule must refuse) for every rule of
    every schema the root config and each option of the model and corpus groups reach."""
    found, seen = [], set()
    for group, options in (("", [""]), ("model", None), ("corpus", None)):
        for option in options or sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")):
            chosen = (f"{group}={option}",) if group else ()
            chosen += ("corpus.path=x",) if option == "file" else ()
            for prefix, node, fields in schema_nodes(compose(*chosen)):
                for name, f in (fields or {}).items():
                    rule = f.metadata.get("rule")
                    if rule and (OmegaConf.get_type(node), name) not in seen:
                        seen.add((OmegaConf.get_type(node), name))
                        found += [(chosen, prefix + name, bad) for bad in rule.refused]
    return found


def spelled(value) -> str:
    """A value as a command-line override spells it."""
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)


RULES = declared_rules()


@pytest.mark.parametrize("chosen, key, value", RULES, ids=[f"{k}={spelled(v)}" for _, k, v in RULES])
def test_every_declared_rule_refuses_the_values_it_names(chosen, key, value):
    with pytest.raises(UserError, match=rf"{re.escape(key)}=.* is out of range: it must be "):
        validate(compose(*chosen, f"{key}={spelled(value)}"))


def test_every_numeric_option_declares_a_rule_with_values_to_refuse():
    ruled = {key for _, key, _ in RULES}
    for _, _, key, _ in OPTIONS:
        assert key.split("[")[0] in ruled, f"{key} has no rule (config.option) or no refused values"
    assert {"seed", "train.threads", "published.metric", "model.discount_fallback"} <= ruled


def override(cfg, key: str, value: str) -> str:
    """``key=value``; an element of a list (``corpus.fractions[1]``) replaces that element."""
    if "[" not in key:
        return f"{key}={value}"
    name, index = key[:-1].split("[")
    items = [str(v) for v in OmegaConf.select(cfg, name)]
    items[int(index)] = value
    return f"{name}=[{','.join(items)}]"


def test_the_options_cover_every_family_and_corpus():
    keys = {k for _, _, k, _ in OPTIONS}
    for key in ("seed", "train.lr", "eval.bootstrap_samples", "model.hidden_size", "model.forget_bias",
                "model.add_k", "model.discount_fallback[0]", "corpus.mean_distance", "corpus.fractions[1]",
                "corpus.split_tokens[0]", "corpus.seed", "corpus.max_unpacked_mb"):
        assert key in keys, key


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(OPTIONS), pick=st.integers(0, 4))
def test_bad_numbers_are_refused_before_data_or_run_correctly(option, pick, tiny_text_dir, tmp_path_factory,
                                                              monkeypatch):
    group, name, key, kind = option
    value = BAD[kind][pick % len(BAD[kind])]
    base = [f"{group}={name}"] + [o.replace("@TINY@", str(tiny_text_dir)) for o in LOCAL.get(name, [])]
    change = override(compose(*base), key, value)
    refused = None
    try:
        cfg = compose(*base, change)
        validate(cfg)
    except (HydraException, OmegaConfBaseException, UserError) as error:
        refused = str(error)
    if refused is not None:
        assert refused.strip()  # a message; any other exception than these fails the test
        return
    # accepted: the value must be a sensible one, and the job must run (or stop with a clear error)
    assert not (isinstance(given := dict(leaves(cfg)).get(key), float) and not math.isfinite(given))
    if group == "corpus" and name not in LOCAL:
        pytest.skip(f"{key}={value} accepted on corpus={name}, which needs its files to run")
    tmp = tmp_path_factory.mktemp("run")
    tiny = TINY if group != "corpus" or name == "synthetic" else []  # debug=tiny sizes the synthetic corpus
    small = TINY_NETWORKS.get(name, []) if group == "model" else []
    cfg = compose(*base, *tiny, *small, change, f"results_dir={tmp}")
    monkeypatch.chdir(tmp)
    try:
        record = run_module.run(cfg, tmp / "job")
    except UserError as error:  # found once the data is known (an order too high for it, ...)
        assert str(error).strip()
        return
    assert record["status"] in ("ok", "diverged"), record.get("error")


def string_options() -> list[tuple[str, str, str]]:
    """(group, option, key) of every string option of the root config and of each model and corpus
    (``results_dir``, itself a root, left out; the optional ones named, as null has no type)."""
    found = {("model", "unigram", key) for key in ("experiment", "published.row", "published.source")}
    for group, options in (("", [""]), ("model", None), ("corpus", None)):
        for option in options or sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")):
            chosen = [f"{group}={option}"] if group else []
            cfg = compose(*chosen, *(["corpus.path=x"] if option == "file" else []))
            own = (f"{group}.",) if group else ("",)
            found |= {(group or "model", option or "unigram", key) for key, value in leaves(cfg)
                      if isinstance(value, str) and key != "results_dir" and key.startswith(own)
                      and (group or not key.startswith(("model.", "corpus.")))}
    return sorted(found)


STRINGS = string_options()
ESCAPE = "/tmp/lmbench-escape-check"
STRANGE = ["../escape", "../../escape", ESCAPE, "", "x" * 3000, "Zürich ✓ Ω", "a/b", "..", "~"]


def test_the_string_options_cover_names_paths_and_files():
    keys = {key for _, _, key in STRINGS}
    assert {"corpus.name", "corpus.path", "corpus.encoding", "corpus.errors", "corpus.files.train.path",
            "model.name", "experiment"} <= keys, keys


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(STRINGS), value=st.sampled_from(STRANGE))
def test_no_string_value_writes_outside_the_results_and_the_cache(option, value, tiny_text_dir,
                                                                  tmp_path_factory, monkeypatch):
    """``../``, absolute paths, empty, very long and unicode values in every string option: refused
    with a message, or the job runs, and nothing is written outside ``results_dir`` and the cache."""
    group, name, key = option
    tmp = tmp_path_factory.mktemp("strings")
    monkeypatch.setenv("LMBENCH_CACHE", str(tmp / "cache"))
    monkeypatch.chdir(tmp)
    base = [f"{group}={name}"] + [o.replace("@TINY@", str(tiny_text_dir)) for o in LOCAL.get(name, [])]
    tiny = TINY if group != "corpus" or name == "synthetic" else []
    try:
        cfg = compose(*base, *tiny, f"{key}='{value}'", f"results_dir={tmp / 'results'}")
        validate(cfg)
        if group != "corpus" or name in LOCAL:
            run_module.run(cfg, tmp / "results" / "job")
    except (HydraException, OmegaConfBaseException, UserError) as error:
        assert str(error).strip()
    roots = ("results", "cache")
    outside = [p for p in tmp.rglob("*") if p.is_file() and p.relative_to(tmp).parts[0] not in roots]
    assert not outside and not Path(ESCAPE).exists(), (key, value, outside)
