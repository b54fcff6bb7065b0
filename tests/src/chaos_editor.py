# One NETCONF client of the chaos round: edits one ietf-system leaf in the
# candidate datastore and commits it, again and again, with values that
# count up (chaos-<leaf>-<n>), over ncclient, each holding the candidate's
# lock. On any failure it moves to the
# next node's address. Each acknowledged commit prints "ok <n> <address>";
# a failed one "err <n> <reason>" (its fate is unknown: it may have
# committed). Runs until stdin closes.
import sys
import threading
import time

from ncclient import manager
from ncclient.operations import RPCError

leaf, addrs = sys.argv[1], sys.argv[2:]
NS = "urn:ietf:params:xml:ns:yang:ietf-system"
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()

n, i, m = 0, 0, None
while not done.is_set():
    addr = addrs[i % len(addrs)]
    try:
        if m is None:
            host, port = addr.rsplit(":", 1)
            m = manager.connect(host=host, port=int(port), username="operator",
                                password="halyard-demo", hostkey_verify=False,
                                look_for_keys=False, allow_agent=False, timeout=15)
        # The candidate is shared by the node's sessions: holding its lock,
        # the edit starts from running and only this edit is committed.
        try:
            m.lock(target="candidate")
        except RPCError as e:
            if e.tag == "lock-denied":
                time.sleep(0.05)
                continue
            raise
        n += 1
        config = ('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><system xmlns="%s"><%s>chaos-%s-%d</%s></system></config>'
                  % (NS, leaf, leaf, n, leaf))
        m.discard_changes()
        m.edit_config(target="candidate", config=config)
        m.commit()
        print("ok %d %s" % (n, addr), flush=True)
        m.unlock(target="candidate")
        time.sleep(0.2)
    except Exception as e:  # noqa: BLE001 - every failure moves on
        print("err %d %s" % (n, str(e).replace("\n", " ")[:200]), flush=True)
        try:
            if m is not None:
                m.close_session()
        except Exception:  # noqa: BLE001
            pass
        m = None
        i += 1
        time.sleep(0.5)
