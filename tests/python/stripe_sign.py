"""Signs a Stripe webhook payload with the official `stripe` library.

Reads {"payload": str, "secret": str, "timestamp": int | null} as JSON on
stdin and prints the Stripe-Signature header value that
stripe.WebhookSignature.generate_signature_header computes, then checks it
with stripe.Webhook.construct_event (the verifier Stripe's users run), so a
test signs with the format's owner's code.
"""

import json
import sys

import stripe

req = json.load(sys.stdin)
header = stripe.WebhookSignature.generate_signature_header(
    req["payload"], req["secret"], timestamp=req.get("timestamp")
)
if req.get("timestamp") is None:
    stripe.Webhook.construct_event(req["payload"], header, req["secret"])
print(header)
