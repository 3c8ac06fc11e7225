"""Time to the first visible text of a reply, with streaming and without (the baseline), through a real sandbox.

A fake model (an OpenAI-compatible server on 127.0.0.1, tests/fakes/openai.py) streams 200 tokens over 2 s;
the agent runs the openai provider in a bwrap sandbox and reaches the model through the host's gateway.
For each sample, in milliseconds from the person's message:

    model_first_token   the model wrote its first token (the fake server's clock)
    web_first_text      the reply's first text appeared in the web chat (measured in Chromium)
    channel_first_text  the reply's first text reached the chat app's server (Telegram's fake Bot API)
    baseline_first_text the web chat's first text with streaming turned off (NANOCLAW_STREAMING_OFF=all):
                        the whole reply, after the model finished

Target: first visible text at most 50 ms after the model's first token, in the browser and in the chat app.

    python -m benchmarks.streaming --json
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from dataclasses import replace
from typing import Any

from benchmarks._harness import emit, percentile, progress, summary, temp_home
from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, messaging_groups, wirings
from nanoclaw.host.app import Host

TOKENS, SECONDS = 200, 2.0
ANSWER = " ".join(f"token{i}" for i in range(TOKENS))
DM = 424242  # the person's private chat with the bot on the fake Telegram
CHROMIUM = "/usr/bin/chromium"
# In the page: send a message and note (epoch ms) when it was sent and when the reply first showed text.
SEND = """(text) => new Promise((resolve) => {
    const now = () => performance.timeOrigin + performance.now();
    const known = new Set([...document.querySelectorAll('#messages .msg.assistant')]);
    const observer = new MutationObserver(() => {
        const fresh = [...document.querySelectorAll('#messages .msg.assistant')].find(
            (m) => !known.has(m) && m.querySelector('.body') && m.querySelector('.body').textContent.trim());
        if (fresh) { window.__first = now(); observer.disconnect(); }
    });
    window.__first = null;
    observer.observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
    document.getElementById('text').value = text;
    window.__sent = now();
    document.getElementById('composer').requestSubmit();
    resolve(window.__sent);
})"""


def settings(home: Any, telegram: Any, streaming_off: str) -> Settings:
    base = Settings(home=home, provider="mock", runtime="", web_port=0, log_level="WARNING", egress_allow_private=True,
                    streaming_off=streaming_off, idle_timeout=600.0)
    return replace(base, extra={"OPENAI_API_KEY": "sk-bench", "TELEGRAM_BOT_TOKEN": "123:bench",
                                "TELEGRAM_API_BASE": telegram.api_base, "TELEGRAM_FILE_BASE": telegram.file_base})


async def start_host(oai: Any, telegram: Any, streaming_off: str) -> Host:
    home = temp_home()
    host = Host(settings(home, telegram, streaming_off))
    agent_groups.set_model(host.conn, "main", "openai", "bench-model", oai.base_url)
    await host.start()
    chat = messaging_groups.upsert(host.conn, "telegram", str(DM), name="Bench", is_dm=True)
    wirings.wire(host.conn, chat.id, "main", trigger="dm")
    return host


async def web_sample(page: Any, oai: Any) -> tuple[float, float]:
    """(model first token, first visible text) in ms after the message, for one reply in the browser."""
    tokens = len(oai.first_token_at)
    finals = "document.querySelectorAll('#messages .msg.assistant:not(.streaming)').length"
    before = await page.evaluate(finals)
    sent = await page.evaluate(SEND, f"sample {time.time()}")
    await until(page, "window.__first !== null")
    first = await page.evaluate("window.__first")
    await until(page, f"{finals} > {before} && !document.querySelector('#messages .msg.streaming')")
    await wait_for(lambda: len(oai.first_token_at) > tokens)
    return oai.first_token_at[tokens] * 1000 - sent, first - sent


async def until(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll the page (its CSP forbids the string evaluation wait_for_function would use)."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never showed: {expression}")
        await asyncio.sleep(0.01)


async def channel_sample(telegram: Any, oai: Any, person: dict[str, Any]) -> tuple[float, float]:
    """The same through Telegram: the first text is the first message the bot's reply put on the server."""
    tokens, before = len(oai.first_token_at), len(telegram.sent)
    sent = time.time()
    await telegram.user_message(DM, person, f"sample {sent}")
    await wait_for(lambda: len(telegram.sent) > before)
    first = telegram.sent[before].at
    await wait_for(lambda: telegram.sent[before].text.endswith(f"token{TOKENS - 1}"))  # finished: the next may start
    await wait_for(lambda: len(oai.first_token_at) > tokens)
    return (oai.first_token_at[tokens] - sent) * 1000, (first - sent) * 1000


async def wait_for(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the reply did not come in time")
        await asyncio.sleep(0.002)


async def measure(oai: Any, telegram: Any, browser: Any, streaming_off: str, samples: int) -> dict[str, list[float]]:
    host = await start_host(oai, telegram, streaming_off)
    person = {"id": DM, "is_bot": False, "first_name": "Bench"}
    out: dict[str, list[float]] = {"token_web": [], "web": [], "token_channel": [], "channel": []}
    try:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(host.web.login_link)
        await until(page, "document.getElementById('conn').textContent === 'connected'")
        await web_sample(page, oai)  # starts the runner (a cold start is not what this measures)
        await channel_sample(telegram, oai, person)
        for _ in range(samples):
            token, first = await web_sample(page, oai)
            out["token_web"].append(token)
            out["web"].append(first)
            token, first = await channel_sample(telegram, oai, person)
            out["token_channel"].append(token)
            out["channel"].append(first)
        await context.close()
    finally:
        await host.stop()
        shutil.rmtree(host.settings.home.parent, ignore_errors=True)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tests.fakes.openai import FakeOpenAI, Step
    from tests.fakes.telegram_server import FakeTelegram

    with FakeOpenAI(responder=lambda _request: Step.stream(ANSWER, TOKENS, SECONDS)) as oai:
        telegram = FakeTelegram("123:bench")
        await telegram.start()
        telegram.add_chat(DM, "private", "Bench")
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                progress(f"streaming: {args.samples} replies in the web chat and in Telegram…")
                streamed = await measure(oai, telegram, browser, "", args.samples)
                progress(f"baseline, streaming off: {args.samples} replies each…")
                whole = await measure(oai, telegram, browser, "all", args.samples)
                await browser.close()
        finally:
            await telegram.stop()
    tokens = streamed["token_web"] + streamed["token_channel"]
    web_after = [f - t for f, t in zip(streamed["web"], streamed["token_web"])]
    channel_after = [f - t for f, t in zip(streamed["channel"], streamed["token_channel"])]
    result: dict[str, Any] = {
        "model_first_token_ms": round(percentile(tokens, 50), 1),
        "web_first_text_p50_ms": round(percentile(streamed["web"], 50), 1),
        "channel_first_text_p50_ms": round(percentile(streamed["channel"], 50), 1),
        "baseline_first_text_p50_ms": round(percentile(whole["web"], 50), 1),
        "baseline_channel_first_text_p50_ms": round(percentile(whole["channel"], 50), 1),
        "web_after_first_token_p50_ms": round(percentile(web_after, 50), 1),
        "channel_after_first_token_p50_ms": round(percentile(channel_after, 50), 1),
        "model_first_token_web_ms": round(percentile(streamed["token_web"], 50), 1),
        "model_first_token_channel_ms": round(percentile(streamed["token_channel"], 50), 1),
        "model_tokens": TOKENS, "model_seconds": SECONDS,
    }
    result.update(summary("web_first_text", streamed["web"]))
    result.update(summary("channel_first_text", streamed["channel"]))
    result["speedup_p50"] = round(result["baseline_first_text_p50_ms"] / max(result["web_first_text_p50_ms"], 1e-3), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--samples", type=int, default=7, help="replies measured per channel and mode [7]")
    args = parser.parse_args()
    emit(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
