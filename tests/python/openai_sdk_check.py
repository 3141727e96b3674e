"""Drives a running CrossLogic gateway with the official `openai` SDK.

Usage: OPENAI_BASE_URL=http://host:port/v1 OPENAI_API_KEY=cl_... python3 openai_sdk_check.py
Prints one JSON object per case on stdout (what the client saw), for the
Rust end-to-end test to compare against the usage rows in PostgreSQL.
Exits non-zero if the SDK rejects anything.
"""

import json
import sys

import openai

client = openai.OpenAI(max_retries=0, timeout=30)
MESSAGES = [{"role": "user", "content": "Say hello to the integration test"}]


def emit(case, request_id, usage, **extra):
    print(json.dumps({"case": case, "request_id": request_id, "usage": usage, **extra}), flush=True)


def usage_dict(u):
    return None if u is None else {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens}


# 1. Chat completion, not streamed.
raw = client.chat.completions.with_raw_response.create(model="llama-3-8b", messages=MESSAGES, max_tokens=12)
chat = raw.parse()
assert chat.choices[0].message.content, "empty completion"
emit("chat", raw.headers["x-request-id"], usage_dict(chat.usage), text=chat.choices[0].message.content)

# 2. Streamed, the client does not ask for usage: it must not receive any.
stream = client.chat.completions.create(model="llama-3-8b", messages=MESSAGES, max_tokens=12, stream=True)
text, saw_usage = "", False
for chunk in stream:
    if chunk.usage is not None:
        saw_usage = True
    for choice in chunk.choices:
        text += choice.delta.content or ""
emit("chat_stream", stream.response.headers["x-request-id"], None, text=text, saw_usage=saw_usage)

# 3. Streamed with stream_options.include_usage: the last chunk carries usage.
stream = client.chat.completions.create(
    model="llama-3-8b", messages=MESSAGES, max_tokens=12, stream=True, stream_options={"include_usage": True}
)
last_usage = None
for chunk in stream:
    if chunk.usage is not None:
        last_usage = usage_dict(chunk.usage)
emit("chat_stream_usage", stream.response.headers["x-request-id"], last_usage)

# 4. Legacy completions.
raw = client.completions.with_raw_response.create(model="llama-3-8b", prompt="Once upon a time", max_tokens=5)
comp = raw.parse()
emit("completion", raw.headers["x-request-id"], usage_dict(comp.usage), text=comp.choices[0].text)

# 5. Embeddings.
raw = client.embeddings.with_raw_response.create(model="bge-large-en", input=["first text", "second text"])
emb = raw.parse()
emit(
    "embeddings",
    raw.headers["x-request-id"],
    {"prompt_tokens": emb.usage.prompt_tokens, "completion_tokens": 0},
    count=len(emb.data),
    dim=len(emb.data[0].embedding),
)

# 6. Models this key may use.
emit("models", None, None, ids=sorted(m.id for m in client.models.list()))

# 7. Errors arrive as the SDK's typed exceptions.
try:
    client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    sys.exit("expected NotFoundError")
except openai.NotFoundError as e:
    emit("error_model", None, None, code=e.code, status=e.status_code)
