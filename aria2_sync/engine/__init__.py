"""The life of downloads: records and their bookkeeping, observing statuses, restarts, futures,
the monitor loop and the threads that run them.

It sits between the facade (:class:`aria2_sync.Aria2Client`) and the layers below it
(``rpc``, ``state``); nothing here imports the facade or the user interfaces.
"""
