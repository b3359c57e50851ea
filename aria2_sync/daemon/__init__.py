"""Finding and running aria2c: the binary (``binary``) and a private daemon (``process``).

``process`` runs the daemon; ``files`` keeps its state directory and files private; ``ownership``
picks its port and proves that the RPC listener is aria2c's; ``sweep`` locks its temporary
folder and removes the folders of owners that died. Kept light: importing this package loads
neither ``subprocess`` handling nor the daemon itself.
"""
