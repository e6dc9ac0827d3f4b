"""The emulator's `/tokenize` counts like a real tokenizer: nothing for an empty prompt, and counts that add
up over texts split after a newline (what the context builder relies on when it sums its blocks)."""

from __future__ import annotations

import zlib

import httpx2
from hypothesis import given
from hypothesis import strategies as st

from agent.llm.tokens import ServerTokenCounter
from agent.testing.vllm_emulator import _TOKEN, VLLMEmulator, tokenize

_TEXT = st.text(alphabet=st.sampled_from(list("ab1 .,:|-\n\t_é")), max_size=40)


def test_an_empty_prompt_has_no_tokens() -> None:
    with VLLMEmulator() as emu:
        answer = httpx2.post(emu.root_url + "/tokenize", json={"model": "nemotron", "prompt": ""}).json()
    assert answer["count"] == 0 and answer["tokens"] == []


@given(_TEXT, _TEXT)
def test_counts_add_up_over_a_split_after_a_newline(head: str, tail: str) -> None:
    head += "\n"
    assert len(tokenize(head)) + len(tokenize(tail)) == len(tokenize(head + tail))


def test_the_server_counter_sums_blocks_to_the_whole_prompt() -> None:
    blocks = [
        "system rules: hold, buy, sell\n",
        "2025-01-01 00:00 | 100.5 | 101 |\n",
        "\n",
        "  the tail? yes\n",
    ]
    with VLLMEmulator() as emu:
        counter = ServerTokenCounter(emu.base_url)
        parts = [counter.count(b) for b in blocks]
        whole = counter.count("".join(blocks))
    assert sum(parts) == whole > 0


def _plain(text: str) -> list[int]:
    """The emulator's tokenizer without its per-line memo: every piece of the regex, hashed."""
    return [zlib.crc32(p.encode("utf-8")) & 0xFFFFF for p in _TOKEN.findall(text)]


@given(st.text(alphabet=st.sampled_from(list("ab1 .,:\n\r\x0b\t\u2028é")), max_size=60))
def test_the_per_line_memo_gives_the_plain_tokenization(text: str) -> None:
    assert tokenize(text) == _plain(text)
    assert tokenize(text) == _plain(text)  # again, from the memo
