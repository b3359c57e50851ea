"""Finding and running aria2c: the binary (``binary``) and a private daemon (``process``).

Kept light: importing this package loads neither ``subprocess`` handling nor the daemon itself.
"""
