"""What people see: the ``aria2-sync`` command line and progress displays for terminals and
notebooks. Built on the public client API only.
"""
