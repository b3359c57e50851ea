"""Talking to aria2: the JSON-RPC transport, typed methods, and WebSocket notifications.

The bottom layer: it knows aria2's protocol and nothing about downloads' lives. ``transport``
sends calls (retries, deadlines, the secret); ``methods`` gives them names and checks answers;
``notifications`` listens for aria2's events.
"""
