"""Verifies one recorded webhook with the official Standard Webhooks library.

Reads {"secret", "body", "headers"} as JSON on stdin and prints "verified"
or "rejected" (any other output is a broken setup).
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

doc = json.load(sys.stdin)
try:
    Webhook(doc["secret"]).verify(doc["body"], doc["headers"])
except WebhookVerificationError:
    print("rejected")
else:
    print("verified")
