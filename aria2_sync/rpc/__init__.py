"""Talking to aria2: the JSON-RPC transport, typed methods, and WebSocket notifications.

The bottom layer: it knows aria2's protocol and nothing about downloads' lives. ``transport``
sends calls (the envelope, the secret, aria2's errors) through ``channel`` (sessions, deadlines
and the watchdog, the capped read), retrying as ``retry`` says (what may be sent again, the
backoff); ``methods`` gives calls names and checks answers; ``notifications`` listens for aria2's
events.
"""
