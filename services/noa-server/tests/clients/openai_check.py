"""Gets chat completions from noa-server with the official OpenAI Python client (PyPI `openai`),
whole and streamed, and a plain completion; prints one JSON object with what it saw and exits
non-zero when anything is missing.

    python openai_check.py BASE_URL [--token TOKEN]      (BASE_URL ends in /v1)
"""

import argparse
import json
import sys

from openai import OpenAI


def fail(message):
    print(f"openai_check: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("--token", default="none")
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.token, timeout=300, max_retries=0)

    models = [m.id for m in client.models.list().data]
    if not models:
        fail("/v1/models lists no model")
    messages = [{"role": "user", "content": "Name three colours."}]

    whole = client.chat.completions.create(
        model=models[0], messages=messages, max_tokens=16, temperature=0, seed=7
    )
    text = whole.choices[0].message.content
    if not text or not text.strip() or whole.choices[0].finish_reason not in ("stop", "length"):
        fail(f"chat completion gave {whole!r}")
    if whole.usage.completion_tokens < 1 or whole.usage.prompt_tokens < 1:
        fail(f"chat completion usage is {whole.usage!r}")

    pieces, finish = [], None
    stream = client.chat.completions.create(
        model=models[0], messages=messages, max_tokens=16, temperature=0, seed=7, stream=True
    )
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    streamed = "".join(pieces)
    if streamed != text:
        fail(f"the streamed text {streamed!r} differs from the whole one {text!r} (greedy, same seed)")
    if finish not in ("stop", "length"):
        fail(f"the stream ended without a finish reason ({finish!r})")

    completion = client.completions.create(model=models[0], prompt="Once upon a time", max_tokens=8)
    if not completion.choices[0].text:
        fail(f"completion gave {completion!r}")

    print(json.dumps({"models": models, "chat": text, "chunks": len(pieces), "completion": completion.choices[0].text}))


if __name__ == "__main__":
    main()
