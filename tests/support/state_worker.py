"""A second process for the shared-state tests: adds or watches a batch through a state file.

    python -m tests.support.state_worker add   DB RPC_URL ITEMS_JSON   (prints the batch id, then
                                                                       watches until killed)
    python -m tests.support.state_worker watch DB RPC_URL BATCH_ID     (prints the final counts)
    python -m tests.support.state_worker claim DB - GID                (claims run 0's restart with
                                                                       a 2 s lease, prints "claimed",
                                                                       then waits to be killed)

The RPC secret comes from $ARIA2_RPC_SECRET (never on a command line).
"""

import json
import os
import sys
import threading

from aria2_sync import Aria2Client


def _client(db: str, rpc_url: str) -> Aria2Client:
    return Aria2Client(
        rpc_url,
        os.environ.get("ARIA2_RPC_SECRET"),
        verbose=False,
        state=db,
        retry_delay=0.0,
        poll_interval=0.02,
        notifications=False,
        max_retries=5,
    )


def main(argv):
    mode, db, rpc_url, arg = argv[1:5]
    if mode == "claim":  # a process that dies holding a restart's lease
        from aria2_sync.state import open_store

        store = open_store(db)
        print("claimed" if store.claim_restart(arg, 0, 2.0) else "refused", flush=True)
        threading.Event().wait(120)
        return 0
    client = _client(db, rpc_url)
    if mode == "add":
        with open(arg) as handle:
            items = [tuple(item) for item in json.load(handle)]
        batch_id = client.add_batch_downloads(items, options={"max-tries": 1, "retry-wait": 0})
        print(batch_id, flush=True)
        threading.Event().wait(120)  # keep watching until the test kills this process
        return 0
    progress = client.wait_for_batch(arg, timeout=120)
    print(
        json.dumps(
            {
                "is_completed": progress.is_completed,
                "completed": progress.completed_count,
                "failed": progress.failed_count,
                "retry_counts": {p.gid: p.retry_count for p in progress.downloads},
            }
        ),
        flush=True,
    )
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
