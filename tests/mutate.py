"""Apply each known mutation of the package in a scratch copy and run the tests that must kill it.

A test suite is only as good as the bugs it catches. Each entry of ``MUTATIONS`` breaks one
guarantee of the design in the smallest way a careless change would (a guard removed, a redaction
dropped, a grace ignored) and names the tests that must fail because of it. This script copies the
repository to a temporary directory, applies one mutation at a time there (the working tree is never
touched), runs the named tests, and reports which mutations were killed::

    python tests/mutate.py            # every mutation (first checks the tests pass unmutated)
    python tests/mutate.py grace      # the mutations whose name contains "grace"
    python tests/mutate.py --list     # names and guarantees only
    python tests/mutate.py --check    # only check that every mutation still applies (no tests)
    python tests/mutate.py --show 30 g7-   # also print the end of each run's report (why it died)

It exits 0 when every mutation selected was killed, 1 when one survived, 2 when a mutation no
longer applies (its ``before`` text is not in the file exactly once: update the entry with the
code) or a test run gave no verdict (pytest could not run the tests: a wrong test id, a collection
error; or skipped them all, e.g. the /proc tests where /proc does not tell), and 3 when the named tests already fail on the unmutated code (a kill would mean nothing).
``tests/MUTATIONS.rst`` lists the same table for readers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What the scratch copy needs: the package, the tests and the examples the tests import.
COPIED = ("aria2_sync", "tests", "examples", "setup.cfg", "setup.py")
#: One mutation's test run is bounded; a hang counts as a kill only if pytest-timeout reports it.
RUN_TIMEOUT = 600
#: pytest's exit code when tests ran and some failed: the only code that counts as a kill.
TESTS_FAILED = 1


@dataclass(frozen=True)
class Mutation:
    name: str
    guarantee: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]


# Test modules, to keep the table readable.
_CLIENT = "tests/test_client.py::"
_CLIENT_H = "tests/test_client_hardening.py::"
_DAEMON_H = "tests/test_daemon_hardening.py::"
_GUARANTEES = "tests/test_guarantees.py::"
_INPUT_H = "tests/test_input_hardening.py::"
_MONITOR = "tests/test_monitor.py::"
_MONITOR_H = "tests/test_monitor_hardening.py::"
_OWN = "tests/test_own_files.py::"
_POLICY = "tests/test_policy.py::"
_RESTARTS = "tests/test_restarts.py::"
_STATE = "tests/test_state.py::"
_STORE_H = "tests/test_store_hardening.py::"
_REDIS = "tests/test_redis_store.py::"
_TRANSPORT = "tests/test_transport.py::"
_TRANSPORT_H = "tests/test_transport_hardening.py::"
_WEB_H = "tests/test_web_hardening.py::"

_RESET_TWICE = _RESTARTS + "test_a_download_reset_twice_resumes_under_the_same_gid"
_INTEGRITY = "tests/test_integrity.py::"
_CHAINS = "tests/test_chains.py::"
_POOL_MEMBERS = "tests/test_pool_members.py::"


def _m(name: str, guarantee: str, path: str, before: str, after: str, *tests: str) -> Mutation:
    return Mutation(name, guarantee, path, before, after, tuple(tests))


MUTATIONS: tuple[Mutation, ...] = (
    # -- 1. a handle never goes stale ------------------------------------------------------------
    _m(
        "g1-restart-under-a-new-gid",
        "1: a restart keeps the caller's GID",
        "aria2_sync/engine/restarts.py",
        "send_add(self.rpc, record.uris, options, old_gid, source, self.add_attempts)\n"
        "            return old_gid",
        "gid = new_gid()\n"
        "            send_add(self.rpc, record.uris, options, gid, source, self.add_attempts)\n"
        "            return gid",
        _RESET_TWICE,
    ),
    _m(
        "g1-new-gid-not-rebound",
        "1: when aria2 refuses the old GID, the old handle resolves to the new one",
        "aria2_sync/engine/restarts.py",
        "self.ledger.rebind(record, gid)",
        "pass",
        _RESTARTS + "test_an_evicted_result_falls_back_to_a_new_gid_and_old_handles_keep_working",
    ),
    _m(
        "g1-shared-control-on-a-stale-gid",
        "1: with shared state, a control reaches the daemon GID another process gave the download",
        "aria2_sync/client_controls.py",
        "        if record is not None and not record.finished:\n            self._engine.refresh([record])\n",
        "",
        _STATE + "test_a_control_reaches_the_gid_another_process_gave_a_parked_download",
    ),
    _m(
        "g1-shared-event-for-a-new-gid-unheard",
        "1: with shared state, an aria2 event for a GID another process gave a parked download reads it",
        "aria2_sync/engine/monitor.py",
        "named = self.ledger.named(urgent) if urgent and self.ledger.store is not None else []",
        "named = []",
        _STATE + "test_an_aria2_event_for_a_gid_another_process_gave_a_parked_download_reads_it_at_once",
    ),
    # -- 2. one restart in flight (the once-only guards, each alone) ---------------------
    _m(
        "g2-guard-scheduled-job",
        "2: a scheduled restart coming due during an explicit one does nothing",
        "aria2_sync/engine/record.py",
        "if self._restart_state is not RestartState.SCHEDULED or self._run != run:",
        "if self._run != run:",
        _RESTARTS + "test_a_scheduled_restart_coming_due_during_an_explicit_one_does_nothing",
    ),
    _m(
        "g2-guard-explicit-restart",
        "2: an explicit restart during a running one does nothing",
        "aria2_sync/engine/record.py",
        "if self._cancelled or self._run != run or self._restart_state is RestartState.RESTARTING:",
        "if self._cancelled or self._run != run:",
        _RESTARTS + "test_an_explicit_restart_during_a_running_scheduled_one_does_nothing",
    ),
    _m(
        "g2-guard-cross-process-claim",
        "2/13: a restart claimed by one process is not done again by another",
        "aria2_sync/engine/ledger.py",
        "return self.store is None or self.store.claim_restart(record.gid, run, self.LEASE_SECONDS)",
        "return True",
        _STATE + "test_a_restart_claimed_by_one_process_is_not_done_again_by_the_other[sqlite]",
    ),
    _m(
        "g2-guard-one-schedule",
        "2: many pollers of one failure schedule one restart",
        "aria2_sync/engine/record.py",
        "                or self._restart_state is not RestartState.IDLE\n                or self._gave_up is not None\n                or self._run != run\n            ):\n                return None",
        "                or self._gave_up is not None\n                or self._run != run\n            ):\n                return None",
        _GUARANTEES + "test_a_failure_read_many_times_schedules_one_restart",
    ),
    _m(
        "g2-failure-counted-per-poll",
        "2: a failure joins the download's attempts once, however often it is read",
        "aria2_sync/engine/record.py",
        "if self._cancelled or self._run != run or self.failure_recorded:",
        "if self._cancelled or self._run != run:",
        _RESET_TWICE,
        _RESTARTS + "test_sixteen_pollers_trigger_exactly_one_restart",
    ),
    _m(
        "g2-steady-plan-kept-across-a-shared-restart",
        "2: a read of a run that is over never stands for the new run (a restart another process made)",
        "aria2_sync/engine/record.py",
        '                return None\n            self._steady = None\n            if row["current_gid"]',
        '                return None\n            if row["current_gid"]',
        "tests/test_engine_record.py::test_a_run_another_process_moved_to_is_the_one_read_next",
    ),
    # -- 3. resume, never re-fetch ---------------------------------------------------------------
    _m(
        "g3-restart-deletes-the-control-file",
        "3: a restart keeps the .aria2 control file (resumes with a Range request)",
        "aria2_sync/engine/restarts.py",
        "options = self._options_for_restart(record, status)\n",
        "options = self._options_for_restart(record, status)\n"
        "            _stale = _target_path(record)\n"
        "            if _stale and os.path.exists(_stale + '.aria2'):\n"
        "                os.remove(_stale + '.aria2')\n",
        _RESET_TWICE,
    ),
    _m(
        "g3-forgotten-complete-file-fetched-again",
        "3: a finished download the daemon forgot is taken from disk, not fetched again",
        "aria2_sync/engine/tracker.py",
        "path = complete_file_on_disk(record)",
        "path = None",
        _GUARANTEES + "test_a_finished_download_the_daemon_forgot_is_not_fetched_again",
    ),
    # -- 4. no duplicate downloads ---------------------------------------------------------------
    _m(
        "g4-no-client-side-gid",
        "4: adds carry a GID chosen by the client",
        "aria2_sync/rpc/methods.py",
        'options = {**options, "gid": gid}',
        "options = dict(options)",
        _CLIENT + "test_a_lost_adduri_answer_does_not_duplicate_the_download",
    ),
    _m(
        "g4-lost-add-sent-again",
        "4: after a lost addUri answer the GID is looked up before adding again",
        "aria2_sync/rpc/methods.py",
        "return  # the lost call did add it",
        "continue  # the lost call did add it",
        _CLIENT + "test_a_lost_adduri_answer_does_not_duplicate_the_download",
    ),
    # -- 5. batches and what counts as failed -----------------------------------------------------
    _m(
        "g5-is-completed-ignores-a-pending-restart",
        "5: a batch is not completed while a restart is pending (issue 12, row 1)",
        "aria2_sync/engine/tracker.py",
        "unresolved += 1  # (a pending restart or not: no outcome yet)",
        "unresolved += not pending",
        _RESTARTS + "test_a_batch_is_not_completed_while_a_restart_is_pending",
    ),
    _m(
        "g5-is-completed-while-an-explicit-restart-runs",
        "5: a batch is not completed while an explicit restart of its failed download runs",
        "aria2_sync/engine/tracker.py",
        "unresolved += pending",
        "unresolved += False",
        _GUARANTEES + "test_a_batch_is_not_completed_while_an_explicit_restart_of_a_failed_download_runs",
    ),
    _m(
        "g5-finished-download-read-as-steady",
        "5: a download with an outcome is counted by it, never as still running (lock-free reads)",
        "aria2_sync/engine/record.py",
        '{self._outcome.value}")\n        self._steady = None',
        '{self._outcome.value}")',
        "tests/test_engine_record.py::test_a_steady_download_is_looked_at_again_after_a_cancel_or_an_outcome",
    ),
    _m(
        "g5-failed-before-the-budget-is-spent",
        "5: a restartable error with budget left is not a failure",
        "aria2_sync/engine/record.py",
        "if self._gave_up is not None or not auto_restart:",
        "if True:",
        _GUARANTEES + "test_a_restartable_failure_read_without_auto_restart_is_not_failed",
    ),
    # -- 6. the restart policy -------------------------------------------------------------------
    _m(
        "g6-permanent-errors-restarted",
        "6: permanent errors (404 -> code 3) are not restarted",
        "aria2_sync/policy.py",
        "return code is not None and code in self.restartable_codes",
        "return code is not None",
        _POLICY + "test_permanent_errors_do_not_restart_and_say_why",
        _RESTARTS + "test_a_404_is_not_restarted",
    ),
    _m(
        "g6-restart-backoff-from-2x",
        "6: the k-th restart waits base_delay * 2**(k-1)",
        "aria2_sync/policy.py",
        "self.base_delay * (2 ** max(0, restart_number - 1))",
        "self.base_delay * (2 ** max(0, restart_number))",
        _POLICY + "test_backoff_doubles_from_the_base_and_is_capped",
    ),
    _m(
        "g6-budget-off-by-one",
        "6: a download is restarted at most max_restarts times",
        "aria2_sync/policy.py",
        "if restarts_done >= self.max_restarts:",
        "if restarts_done > self.max_restarts:",
        _POLICY + "test_the_budget_is_spent_after_max_restarts",
    ),
    # -- 7. the daemon going away is a state -----------------------------------------------------
    _m(
        "g7-grace-ignored",
        "7: futures fail only after disconnect_grace (issue 12, row 5)",
        "aria2_sync/engine/monitor.py",
        "if now - self._offline_since > self.disconnect_grace:",
        "if now - self._offline_since > 0:",
        _MONITOR + "test_futures_fail_only_after_the_grace_period[2.0]",
    ),
    _m(
        "g7-connection-error-says-nothing-to-check",
        "7: a connection error says what to check",
        "aria2_sync/errors.py",
        '"Check that aria2c is running with --enable-rpc, that the RPC port in rpc_url is "\n'
        '                "right (aria2\'s default is 6800), and that no firewall blocks it."',
        '"Check your setup."',
        _TRANSPORT + "test_connection_refused_is_retried_on_the_documented_schedule",
    ),
    _m(
        "g7-monitor-dies-on-a-non-connection-trouble",
        "7: any failed tick is an outage the monitor outlives",
        "aria2_sync/engine/monitor.py",
        "        except Exception as error:\n            return self._went_offline(error)",
        "        except (Aria2ConnectionError, Aria2AuthError) as error:\n            return self._went_offline(error)",
        _MONITOR_H + "test_a_proxy_answering_html_is_one_outage_that_fails_futures_after_the_grace",
    ),
    _m(
        "g7-monitor-stops-at-an-outage",
        "7: the monitor waits for the daemon and re-syncs",
        "aria2_sync/engine/monitor.py",
        "return self._went_offline(error)",
        "raise",
        _MONITOR + "test_the_batch_survives_a_daemon_crash_and_restart",
    ),
    # -- 8. transport retries only what is safe --------------------------------------------------
    _m(
        "g8-read-errors-retried-for-mutating-calls",
        "8: a lost answer is retried only for read-only methods",
        "aria2_sync/rpc/retry.py",
        "read=max_retries if read_only else False,",
        "read=max_retries,",
        _TRANSPORT + "test_lost_answers_are_not_retried_for_mutating_methods",
    ),
    _m(
        "g8-connection-errors-not-retried",
        "8: connection errors are always retried",
        "aria2_sync/rpc/retry.py",
        "connect=max_retries,",
        "connect=0,",
        _TRANSPORT + "test_connection_refused_is_retried_on_the_documented_schedule",
    ),
    _m(
        "g8-multicall-read-only-if-any-call-is",
        "8: a multicall is read-only only if every call in it is",
        "aria2_sync/rpc/transport.py",
        "read_only = all(method in READ_ONLY_METHODS for method, _ in calls)",
        "read_only = any(method in READ_ONLY_METHODS for method, _ in calls)",
        _TRANSPORT + "test_a_multicall_is_read_only_only_if_every_call_is",
    ),
    _m(
        "g8-http-error-answers-retried",
        "8: HTTP 400/500 answers (aria2's errors) are never retried",
        "aria2_sync/rpc/retry.py",
        "status=0,",
        "status=3, status_forcelist=(400, 500, 502, 503),",
        _TRANSPORT + "test_aria2_errors_are_mapped_and_never_retried",
    ),
    _m(
        "g8-every-call-retried-as-read-only",
        "8: an answer broken off mid-body is retried only for read-only methods",
        "aria2_sync/rpc/transport.py",
        "retry = channel.retries[read_only]",
        "retry = channel.retries[True]",
        _TRANSPORT + "test_an_answer_cut_short_is_retried_only_for_read_only_methods",
    ),
    _m(
        "g8-backoff-from-2x",
        "8: the n-th transport retry waits retry_delay * 2**(n-1)",
        "aria2_sync/rpc/retry.py",
        "retry_delay * 2 ** (retry - 1)",
        "retry_delay * 2 ** retry",
        _TRANSPORT + "test_backoff_schedule_starts_at_the_base_delay_and_doubles",
    ),
    # -- 9. bounded memory -----------------------------------------------------------------------
    _m(
        "g9-keep-finished-only-at-the-tick",
        "9: keep_finished is a hard bound, applied as outcomes arrive",
        "aria2_sync/engine/ledger.py",
        "over = self._finished_hint > self._prune_at",
        "over = False",
        _CLIENT_H + "test_quick_batches_never_keep_more_finished_records_than_the_bound",
    ),
    _m(
        "g9-keep-seconds-ignored",
        "9: finished downloads are forgotten after keep_seconds",
        "aria2_sync/engine/ledger.py",
        "expired = self.keep_seconds is not None and now - done_at > self.keep_seconds",
        "expired = False",
        _GUARANTEES + "test_finished_downloads_are_forgotten_after_keep_seconds",
    ),
    # -- 10. the secret --------------------------------------------------------------------------
    _m(
        "g10-decode-snippet-not-scrubbed",
        "10: an answer echoing the secret is quoted without it (issue 12, row 2)",
        "aria2_sync/rpc/transport.py",
        'snippet = self._scrub(content[:200].decode("utf-8", "replace"))[:60].strip()',
        'snippet = content[:200].decode("utf-8", "replace")[:60].strip()',
        _TRANSPORT_H + "test_an_answer_echoing_the_secret_is_scrubbed_from_the_error",
    ),
    _m(
        "g10-rpc-error-message-not-scrubbed",
        "10: an aria2 error message echoing the secret is quoted without it",
        "aria2_sync/rpc/transport.py",
        'message = self._scrub(str(error.get("message", "")))',
        'message = str(error.get("message", ""))',
        _TRANSPORT_H + "test_an_error_message_echoing_the_secret_is_scrubbed",
    ),
    _m(
        "g10-log-tail-not-redacted",
        "10: the daemon's log tail is quoted redacted (issue 12, row 3)",
        "aria2_sync/daemon/process.py",
        "return redact_text(tail, [self.secret])",
        "return tail",
        _DAEMON_H + "test_log_tail_and_daemon_errors_quote_no_credentials",
    ),
    _m(
        "g10-secret-logged-at-debug-in-a-restart",
        "10: no log line holds the secret (issue 12, row 4: the per-test secret check)",
        "aria2_sync/engine/restarts.py",
        "old_gid = record.current_gid\n",
        "old_gid = record.current_gid\n"
        '            logger.debug("restart through token:%s", self.rpc.transport._secret)\n',
        _RESET_TWICE,
    ),
    _m(
        "g10-repr-shows-the-secret",
        "10: no repr holds the secret",
        "aria2_sync/rpc/transport.py",
        'secret = ", secret=***" if self._secret else ""',
        'secret = f", secret={self._secret}" if self._secret else ""',
        _TRANSPORT + "test_repr_hides_the_secret",
    ),
    _m(
        "g10-chained-error-keeps-the-request",
        "10: a chained requests exception keeps no request (its body holds the token)",
        "aria2_sync/rpc/transport.py",
        "current.request = None",
        "pass",
        _TRANSPORT_H + "test_a_connection_error_keeps_no_secret",
        _TRANSPORT_H + "test_a_timeout_keeps_no_secret",
    ),
    _m(
        "g10-tls-certificate-unchecked",
        "10: an https daemon's certificate is always checked (the secret goes only to the daemon named)",
        "aria2_sync/rpc/channel.py",
        "self.verify: str | bool = ca_file or True",
        "self.verify: str | bool = ca_file or False",
        "tests/test_tls.py::test_without_the_certificate_the_first_call_fails_at_once_saying_what_to_give",
    ),
    _m(
        "g10-tls-notifications-trust-the-environment",
        "10: the wss:// notifications trust what the calls trust, not the environment",
        "aria2_sync/rpc/notifications.py",
        "connection = sockets.create_connection((host, port), self._read_timeout)\n        try:\n",
        "return websocket.create_connection(self.url, timeout=self._read_timeout)\n"
        "        connection = sockets.create_connection((host, port), self._read_timeout)\n        try:\n",
        "tests/test_tls.py::test_the_notifications_trust_what_the_calls_trust_and_no_proxy_of_the_environment",
    ),
    # -- 12. no file written by two downloads: a restart overwrites only its own file ------------
    _m(
        "g12-any-newer-file-taken-for-own",
        "12: another writer's file made after the add is never overwritten",
        "aria2_sync/engine/ownfiles.py",
        "if info.st_size == 0 and info.st_mtime >= record.added_at - 0.5:",
        "if info.st_mtime >= record.added_at - 0.5:",
        _OWN + "test_a_file_another_writer_creates_after_the_add_is_never_overwritten",
    ),
    _m(
        "g12-identity-not-compared",
        "12: our partial file swapped for another writer's is not overwritten",
        "aria2_sync/engine/ownfiles.py",
        "if known is not None and _identity(info) == known:",
        "if known is not None:",
        _OWN + "test_our_partial_file_swapped_for_another_writers_file_is_not_overwritten",
    ),
    _m(
        "g12-finished-file-of-another-size-taken",
        "12: a file aria2 refuses is taken as the finished download only at the size it was seen downloading",
        "aria2_sync/engine/ownfiles.py",
        "if not stat.S_ISREG(info.st_mode) or info.st_size != last.total_length:",
        "if not stat.S_ISREG(info.st_mode):",
        "tests/test_finished_before_a_crash.py::test_other_files_that_aria2_refuses_stay_a_failure",
    ),
    _m(
        "g12-finished-file-refused-as-exists",
        "12: a download finished just before aria2c died is complete after its session is restored",
        "aria2_sync/engine/tracker.py",
        "progress = self._finished_before_a_crash(record, progress)",
        "pass",
        "tests/test_finished_before_a_crash.py::"
        "test_a_download_completed_just_before_a_crash_is_complete_after_the_session_restore",
    ),
    _m(
        "g12-overwrite-not-proved-again",
        "12: the proof is checked again when the restart's options are built",
        "aria2_sync/engine/restarts.py",
        'if str((status or {}).get("errorCode")) == "13" and self.own_leftover(record) is not None:',
        'if str((status or {}).get("errorCode")) == "13":',
        _OWN + "test_a_file_replaced_between_the_decision_and_the_restart_is_not_overwritten",
    ),
    # -- 13. claims are leases -------------------------------------------------------------------
    _m(
        "g13-live-lease-taken",
        "13: a live lease is not taken by another holder",
        "aria2_sync/state/sqlite.py",
        "OR lease_until < ?)",
        "OR lease_until > ?)",
        _STATE + "test_restarts_are_claimed_once[sqlite]",
    ),
    _m(
        "g13-lease-never-expires",
        "13: a lease expires with its holder",
        "aria2_sync/state/sqlite.py",
        "OR lease_until < ?)",
        "OR (lease_until < ? AND 0))",
        _STATE + "test_restarts_are_claimed_once[sqlite]",
    ),
    _m(
        "g13-redis-live-lease-taken",
        "13: a live lease is not taken by another holder (Redis store)",
        "aria2_sync/state/redis_scripts.py",
        "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end",
        "",
        _STATE + "test_restarts_are_claimed_once[redis]",
    ),
    _m(
        "g13-redis-lease-never-expires",
        "13: a lease expires with its holder (Redis store)",
        "aria2_sync/state/redis_scripts.py",
        "redis.call('SET', KEYS[2], ARGV[1], 'PX', ms)",
        "redis.call('SET', KEYS[2], ARGV[1])",
        _REDIS + "test_a_killed_lease_holder_blocks_the_restart_only_until_its_lease_runs_out",
    ),
    _m(
        "g13-redis-failure-recorded-twice",
        "13: a failure joins the shared history once per run (Redis store)",
        "aria2_sync/state/redis_scripts.py",
        "if run == tonumber(ARGV[1]) and failed < run then",
        "if run == tonumber(ARGV[1]) then",
        _STATE + "test_restarts_are_claimed_once[redis]",
    ),
    # -- 15. loopback only; private files, never through symlinks --------------------------------
    _m(
        "g15-rpc-listens-on-all-interfaces",
        "15: the private daemon listens on loopback only",
        "aria2_sync/daemon/process.py",
        '"rpc-listen-all": "false",',
        '"rpc-listen-all": "true",',
        _GUARANTEES + "test_the_private_daemon_listens_on_loopback_only",
    ),
    _m(
        "g15-state-file-not-private",
        "15: the state file and its companions are 0600",
        "aria2_sync/state/sqlite.py",
        "FILE_MODE = 0o600",
        "FILE_MODE = 0o644",
        _STORE_H + "test_the_file_and_its_companions_are_private",
    ),
    _m(
        "g15-state-file-follows-symlinks",
        "15: a symlink in place of the state file is refused, not followed",
        "aria2_sync/state/sqlite.py",
        'flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)',
        'flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)',
        _STORE_H + "test_a_planted_symlink_is_not_followed",
    ),
    _m(
        "g15-daemon-files-follow-symlinks",
        "15: a symlink planted as the daemon's session or log is refused, not followed",
        "aria2_sync/daemon/files.py",
        'SAFE_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)',
        'SAFE_OPEN = getattr(os, "O_CLOEXEC", 0)',
        _DAEMON_H + "test_a_symlink_planted_as_session_or_log_is_refused_and_not_followed",
    ),
    _m(
        "g15-daemon-files-not-private",
        "15: the daemon's session and log files are created 0600",
        "aria2_sync/daemon/files.py",
        "fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | SAFE_OPEN, 0o600)",
        "fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | SAFE_OPEN, 0o644)",
        _GUARANTEES + "test_the_daemon_creates_its_session_and_log_files_private",
    ),
    _m(
        "g15-state-dir-open-to-group",
        "15: a state_dir open to group or others is refused",
        "aria2_sync/daemon/files.py",
        'if os.name != "nt" and stat.S_IMODE(info.st_mode) & 0o077:',
        'if os.name != "nt" and stat.S_IMODE(info.st_mode) & 0o002:',
        _DAEMON_H + "test_a_state_dir_open_to_others_is_refused_with_the_fix",
    ),
    # -- the security and reliability fixes of issues 10 and 11 ----------------------------------
    _m(
        "sec-line-breaks-in-option-values",
        "10.8: CR/LF in option values are refused (header injection)",
        "aria2_sync/validation.py",
        '_LINE_BREAKS = re.compile(r"[\\r\\n\\x00]")',
        '_LINE_BREAKS = re.compile(r"[\\x00]")',
        _INPUT_H + "test_line_breaks_and_nul_in_option_values_are_refused",
    ),
    _m(
        "sec-out-climbs-out-of-dir",
        "10.8: out cannot leave dir with '..'",
        "aria2_sync/validation.py",
        'if ".." in parts:',
        'if parts[0] == "..":',
        _INPUT_H + "test_out_cannot_leave_dir",
    ),
    _m(
        "sec-out-absolute-path",
        "10.8: out cannot be an absolute path",
        "aria2_sync/validation.py",
        'if value.startswith(("/", "\\\\")) or os.path.isabs(value) or re.match(r"[A-Za-z]:", value):',
        'if re.match(r"[A-Za-z]:", value):',
        _INPUT_H + "test_out_cannot_leave_dir",
    ),
    _m(
        "sec-url-policy-loopback-only",
        "10.10: the web examples refuse every non-public address (metadata, private, ...)",
        "examples/web_downloads.py",
        "if not _is_public(address):",
        "if address.is_loopback:",
        _WEB_H + "test_the_default_policy_refuses_internal_hosts_credentials_and_other_schemes",
    ),
    _m(
        "sec-url-policy-credentials",
        "10.10: the web examples refuse URLs with credentials",
        "examples/web_downloads.py",
        'if "@" in parts.netloc:',
        "if False:",
        _WEB_H + "test_the_default_policy_refuses_internal_hosts_credentials_and_other_schemes",
    ),
    _m(
        "sec-own-file-proof-skipped",
        "10.7: a restart overwrites an error-13 file only with proof it is the download's",
        "aria2_sync/engine/ownfiles.py",
        "    if info.st_size == 0 and info.st_mtime >= record.added_at - 0.5:\n        return path\n    return None",
        "    return path",
        _OWN + "test_a_file_another_writer_creates_after_the_add_is_never_overwritten",
    ),
    _m(
        "sec-port-proof-ignores-wildcard-listeners",
        "10.1: a foreign listener on 0.0.0.0 or :: also counts as taking the port",
        "aria2_sync/daemon/ownership.py",
        "if (exact | other) - mine:",
        "if exact - mine:",
        _GUARANTEES + "test_a_foreign_wildcard_listener_counts_as_taking_the_port",
    ),
    _m(
        "sec-port-proof-not-acted-on",
        "10.1: the secret is never sent to a foreign listener on the daemon's port",
        "aria2_sync/daemon/process.py",
        'if owner == "foreign":',
        "if False:",
        _DAEMON_H + "test_a_listener_that_appears_after_the_port_check_is_caught_before_the_secret_is_sent",
    ),
    _m(
        "sec-port-precheck-removed",
        "10.1: a port someone listens on is refused before aria2c is launched",
        "aria2_sync/daemon/process.py",
        "if ownership.port_in_use(self.host, self.port):",
        "if False:",
        _DAEMON_H + "test_without_proc_aria2c_is_told_to_exit_when_ipv4_is_taken",
    ),
    _m(
        "rel-watchdog-cuts-nothing",
        "11.1: timeout bounds a whole exchange (a dripped answer ends at the deadline)",
        "aria2_sync/rpc/channel.py",
        "channel.cut(_DEADLINE)",
        "pass",
        _TRANSPORT_H + "test_an_answer_dripped_a_byte_at_a_time_ends_at_the_deadline",
    ),
    _m(
        "rel-announced-answer-size-unbounded",
        "11.6: an answer announced larger than max_answer_bytes is not read",
        "aria2_sync/rpc/channel.py",
        "if length is not None and length > limit:",
        "if False:",
        _GUARANTEES + "test_an_answer_announced_past_max_answer_bytes_is_refused_before_reading",
    ),
    _m(
        "rel-unannounced-answer-size-unbounded",
        "11.6: an answer growing past max_answer_bytes stops being read",
        "aria2_sync/rpc/channel.py",
        "if size > limit:",
        "if False:",
        _TRANSPORT_H + "test_an_answer_past_max_answer_bytes_is_refused_without_reading_it_all[False]",
    ),
    _m(
        "rel-failing-store-asked-by-every-read",
        "11: a store that fails is left alone for a while by the reads of others' changes",
        "aria2_sync/engine/ledger.py",
        "return self._store_failing and time.monotonic() < self._store_rest_until",
        "return False",
        _STATE + "test_a_store_that_fails_is_left_alone_for_a_while_by_the_calls_that_read_it",
    ),
    _m(
        "rel-closed-transport-reconnects",
        "11.1: a closed transport opens no new connection (not even a retry's)",
        "aria2_sync/rpc/channel.py",
        '        if self.closing.is_set():\n            raise ClosedPoolError(pool, "the aria2 transport is closed")',
        '        if False:\n            raise ClosedPoolError(pool, "the aria2 transport is closed")',
        _TRANSPORT_H + "test_close_during_a_backoff_opens_no_new_connection",
        _TRANSPORT_H + "test_a_closed_transport_takes_no_connection_even_for_a_retry_under_way",
    ),
    _m(
        "rel-closed-client-future-pending",
        "11.2: a future asked for after close() fails at once",
        "aria2_sync/engine/core.py",
        "if self.closed and not future.done():",
        "if False:",
        _CLIENT_H + "test_futures_asked_for_after_close_fail_at_once",
    ),
    _m(
        "rel-close-leaves-futures-pending",
        "11.2: close() fails the futures nothing would resolve",
        "aria2_sync/engine/core.py",
        '("fail the pending futures", self.fail_pending_futures),',
        "",
        _MONITOR + "test_closing_fails_futures_nothing_would_resolve",
    ),
    # -- 14. a download given a checksum is complete only when verified -------------------------
    _m(
        "g14-checksum-not-sent",
        "14: the checksum= argument reaches aria2 as its checksum option",
        "aria2_sync/safety.py",
        '        merged["checksum"] = checksum\n',
        "",
        _INTEGRITY + "test_a_right_checksum_completes_and_the_result_says_it_was_verified",
        _INTEGRITY + "test_a_wrong_checksum_fails_with_its_own_error_after_one_restart_from_scratch",
    ),
    _m(
        "g14-mismatch-is-a-plain-failure",
        "14: a mismatch (error 32) is its own failure, ChecksumMismatch",
        "aria2_sync/errors.py",
        "if str(error_code) == CHECKSUM_ERROR_CODE:",
        "if False:",
        _INTEGRITY + "test_a_wrong_checksum_fails_with_its_own_error_after_one_restart_from_scratch",
    ),
    _m(
        "g14-mismatch-restarted-like-any-failure",
        "14: a mismatch is restarted at most checksum_restarts times (once), not max_restarts",
        "aria2_sync/policy.py",
        "allowed = min(self.checksum_restarts, self.max_restarts)",
        "allowed = self.max_restarts",
        _INTEGRITY + "test_a_wrong_checksum_fails_with_its_own_error_after_one_restart_from_scratch",
    ),
    _m(
        "g14-mismatch-counted-against-all-restarts",
        "14: checksum_restarts counts the restarts after a mismatch, not the network restarts before",
        "aria2_sync/engine/restarts.py",
        "checksum_restarts_done=record.restarts_after(CHECKSUM_ERROR)",
        "checksum_restarts_done=None",
        "tests/test_checksum_restarts.py::test_a_mismatch_gets_its_one_restart_whatever_came_before",
    ),
    # -- 11. one handle through the follow chain ---------------------------------------------------
    _m(
        "g11-cancel-batch-leaves-the-payload",
        "11: cancel_batch removes a payload aria2 started under a GID of its own, as cancel_download does",
        "aria2_sync/engine/cancel.py",
        "self._sweep(list(zip(live, gids)))",
        "pass",
        "tests/test_chain_cancels.py::test_cancel_batch_removes_the_payloads_the_client_has_not_seen_yet",
    ),
    # -- 15. nothing listens beyond loopback unless the user asks ------------------------------
    _m(
        "g15-torrent-url-followed-by-default",
        "15: a .torrent at a plain URL is saved as a file, no BitTorrent port opened, unless follow=True",
        "aria2_sync/safety.py",
        'merged[key] = "true" if follow else "false"',
        'merged[key] = "true"',
        _INTEGRITY + "test_a_torrent_at_a_url_is_saved_as_a_file_by_default_and_opens_no_port",
    ),
    _m(
        "g15-peer-discovery-on",
        "15: the embedded daemon runs without DHT, local peer discovery and peer exchange",
        "aria2_sync/daemon/process.py",
        "        options.update(self.PEER_DISCOVERY_OFF)\n",
        "",
        _INTEGRITY + "test_the_embedded_daemon_has_peer_discovery_off_unless_asked",
    ),
    # -- 14. a result names every file it completed, and what vouches for them ------------------
    _m(
        "g14-torrent-result-names-one-file",
        "14: a torrent's result names every selected payload file in paths",
        "aria2_sync/engine/following.py",
        "paths = tuple(f.path for f in last.files if f.path and f.selected)",
        "paths = (last.file_path,) if last.file_path else ()",
        _CHAINS + "test_a_multi_file_torrent_gets_only_the_files_selected",
    ),
    _m(
        "g14-metalink-batch-first-file-only",
        "14: every file of a metalink becomes a download of its batch",
        "aria2_sync/engine/chains.py",
        "        for entry in entries:\n",
        "        for entry in entries[:1]:\n",
        _CHAINS + "test_a_metalink_of_several_files_is_one_batch_of_downloads",
    ),
    _m(
        "g16-pool-fails-over-at-once",
        "16: a silent daemon of a pool is failed over only after failover_after",
        "aria2_sync/rpc/members.py",
        "        if self._clock() - member.last_answer <= self.failover_after:\n",
        "        if False:\n",
        _POOL_MEMBERS
        + "test_a_silent_daemon_is_failed_over_only_after_failover_after_and_is_up_once_it_answers",
    ),
    _m(
        "g16-pool-fails-over-a-refusing-daemon",
        "16: a daemon that refuses the secret is reported, never failed over",
        "aria2_sync/rpc/members.py",
        "        if member.trouble == REFUSED:\n            return REFUSED\n",
        "",
        _POOL_MEMBERS + "test_a_daemon_refusing_the_secret_is_never_failed_over",
    ),
    _m(
        "g16-pool-places-on-a-silent-daemon",
        "16: a daemon that does not answer is taken out of placement",
        "aria2_sync/rpc/members.py",
        "candidates = [m for m in self.members if m.trouble is None and m not in exclude]",
        "candidates = [m for m in self.members if m not in exclude]",
        _POOL_MEMBERS + "test_a_daemon_in_trouble_gets_nothing_new_and_none_answering_places_nowhere",
    ),
    _m(
        "g16-pool-move-not-shared",
        "12/16: a download moved by one process is removed from its old daemon by another that reaches it",
        "aria2_sync/engine/core.py",
        "            self.ledger.on_home = self.rpc.note_home",
        "            self.ledger.on_home = None",
        "tests/test_pool_shared.py::test_a_download_moved_by_a_process_cut_off_from_its_daemon_is_removed_there_by_one_that_is_not",
    ),
    _m(
        "g16-pool-refusal-fails-over",
        "16: a daemon that refuses the secret is never failed over, however late it refuses",
        "aria2_sync/rpc/members.py",
        "                member.last_answer = self._clock()  # (a refusal is an answer: no failover clock)\n",
        "",
        "tests/test_pool.py::test_downloads_on_a_daemon_that_starts_refusing_the_secret_are_not_re_homed",
    ),
    _m(
        "g16-pool-add-stops-at-a-refusing-daemon",
        "16: an add that meets a daemon refusing the secret goes to one that answers",
        "aria2_sync/rpc/placing.py",
        "                if isinstance(answer, (Aria2ConnectionError, Aria2AuthError)):\n",
        "                if isinstance(answer, Aria2ConnectionError):\n",
        "tests/test_pool.py::test_adds_that_meet_a_daemon_refusing_the_secret_go_to_the_one_that_answers",
    ),
    _m(
        "g18-changed-options-lost-on-restart",
        "18: options changed on a download stay with it through a restart",
        "aria2_sync/engine/record.py",
        "            self._options = {**self._options, **changes}\n",
        "            pass\n",
        "tests/test_controls.py::test_a_speed_limit_set_on_the_fly_slows_the_download_and_survives_its_restart",
    ),
    _m(
        "g18-delete-files-only-the-file",
        "18: cancel_download(delete_files=True) deletes the control file too",
        "aria2_sync/client_controls.py",
        '        for target in (path, path + ".aria2"):\n',
        "        for target in (path,):\n",
        "tests/test_controls.py::test_cancel_with_delete_files_removes_this_download_s_file_and_control_file_only",
    ),
)


def _scratch_copy(into: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, into / name)


def _apply(scratch: Path, mutation: Mutation) -> None:
    target = scratch / mutation.path
    text = target.read_text(encoding="utf-8")
    count = text.count(mutation.before)
    if count != 1:
        raise LookupError(
            f"{mutation.name}: the text to mutate occurs {count} times in {mutation.path} "
            "(expected once); update tests/mutate.py with the code"
        )
    target.write_text(text.replace(mutation.before, mutation.after), encoding="utf-8")


#: With ``--show``, how many lines of each test run's report are printed (why it was killed).
_SHOW_LINES = 0


def _run_tests(scratch: Path, tests: Sequence[str]) -> tuple[int | None, str]:
    """Run ``tests`` in ``scratch``: pytest's exit code (None if it ran out of time), a summary.

    The scratch copy comes first on ``sys.path`` (``PYTHONPATH``, and pytest's rootdir), so the
    mutated package is the one imported, also by the subprocesses the tests start.
    """
    env = dict(os.environ, PYTHONPATH=str(scratch), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(
            command,
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"no verdict within {RUN_TIMEOUT} s"
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    if _SHOW_LINES:
        print("\n".join("    | " + line for line in lines[-_SHOW_LINES:]))
    summary = lines[-1] if lines else f"exit {done.returncode}"
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    if failed:  # (which test, and pytest's one-line reason: for a baseline that fails, above all)
        summary += "".join(f"\n    {line[:300]}" for line in failed)
    return done.returncode, summary


def check(mutations: Sequence[Mutation]) -> int:
    """Check that every mutation applies to the code as it is (no tests run)."""
    stale = 0
    for mutation in mutations:
        text = (ROOT / mutation.path).read_text(encoding="utf-8")
        count = text.count(mutation.before)
        if count != 1:
            print(f"STALE     {mutation.name}: occurs {count} times in {mutation.path}")
            stale += 1
    print(f"{len(mutations) - stale} of {len(mutations)} mutations apply")
    return 2 if stale else 0


def baseline(mutations: Sequence[Mutation]) -> int:
    """Run every killing test once on the unmutated copy: they must pass, or a kill means nothing."""
    tests = list(dict.fromkeys(test for mutation in mutations for test in mutation.tests))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aria2_sync-unmutated-") as scratch_dir:
        scratch = Path(scratch_dir)
        _scratch_copy(scratch)
        code, summary = _run_tests(scratch, tests)
    print(f"unmutated ({time.monotonic() - started:.0f} s, {len(tests)} test ids): {summary}", flush=True)
    if code != 0:
        print("the killing tests must pass on the unmutated code first", file=sys.stderr)
        return 3
    return 0


def run(mutations: Sequence[Mutation]) -> int:
    survived: list[str] = []
    no_verdict: list[str] = []
    for mutation in mutations:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="aria2_sync-mutant-") as scratch_dir:
            scratch = Path(scratch_dir)
            _scratch_copy(scratch)
            try:
                _apply(scratch, mutation)
            except LookupError as error:
                print(f"STALE     {error}")
                return 2
            code, summary = _run_tests(scratch, mutation.tests)
        if code == TESTS_FAILED:
            verdict = "killed"
        elif code == 0 and "skipped" in summary and "passed" not in summary:
            verdict = "SKIPPED"  # the killing tests cannot run here (e.g. no /proc): no verdict
            no_verdict.append(mutation.name)
        elif code == 0:
            verdict = "SURVIVED"
            survived.append(mutation.name)
        else:  # interrupted, internal or usage error, no tests collected, out of time
            verdict = "NO VERDICT"
            no_verdict.append(mutation.name)
        print(f"{verdict:9} {mutation.name} ({time.monotonic() - started:.0f} s): {summary}", flush=True)
    killed = len(mutations) - len(survived) - len(no_verdict)
    print(f"{killed} of {len(mutations)} mutations killed")
    if survived:
        print("survived: " + ", ".join(survived))
    if no_verdict:
        print("no verdict (the tests could not run, or were skipped): " + ", ".join(no_verdict))
    return 1 if survived else 2 if no_verdict else 0


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("select", nargs="*", help="run only mutations whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutations and stop")
    parser.add_argument("--check", action="store_true", help="check that every mutation applies")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip running the killing tests on the unmutated code first",
    )
    parser.add_argument(
        "--show",
        type=int,
        default=0,
        metavar="N",
        help="print the last N lines of each test run's report (why a mutation was killed)",
    )
    args = parser.parse_args(argv)
    global _SHOW_LINES
    _SHOW_LINES = args.show
    chosen = [m for m in MUTATIONS if not args.select or any(s in m.name for s in args.select)]
    if args.list:
        for mutation in chosen:
            print(f"{mutation.name}: {mutation.guarantee}")
        return 0
    if not chosen:
        print("no mutation matches", file=sys.stderr)
        return 2
    if args.check:
        return check(chosen)
    started = time.monotonic()
    if not args.no_baseline:
        status = baseline(chosen)
        if status:
            return status
    status = run(chosen)
    print(f"total {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
